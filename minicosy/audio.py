"""Audio front end: loading, checking, and the two log-mel feature extractors.

Stage: the shared front end of every CosyVoice 2 component (docs/paper_vs_code.md §1).

* ``load_audio(path, sample_rate)``: any WAV/FLAC/OGG that libsndfile reads → float32 mono
  at the requested rate (stereo is averaged, other rates are resampled with librosa).
* ``log_mel(wav)``: the flow/vocoder feature — 24 kHz → 80 × 50 Hz log-mel, computed with
  ``torch.stft`` and a librosa (Slaney) filterbank so it runs on CPU and CUDA tensors and is
  differentiable (the vocoder's mel loss backpropagates through it).
* ``tokenizer_features(wav)``: the speech-tokenizer feature — 16 kHz → 80 × 100 Hz log-mel.

Why not ``librosa.feature.melspectrogram``? It is CPU/NumPy only, not differentiable, and its
first call in a process JIT-compiles for ~25 s. We keep librosa for the filterbank only and
test that our result equals ``librosa.feature.melspectrogram`` with the same parameters.

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §2.
    [2] Mehta et al., "Matcha-TTS", arXiv 2309.03199 — ``mel_spectrogram`` (reflect padding by
        (n_fft − hop)/2, no centring, magnitude with a 1e-9 floor, Slaney mel, log-clamp 1e-5),
        the convention the official CosyVoice code uses.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from minicosy.config import MelConfig

# ----------------------------------------------------------------------------- checks


def check_waveform(wav, name: str = "audio") -> None:
    """Raise ``ValueError`` with an actionable message if ``wav`` is not a usable waveform.

    Accepts a NumPy array or a torch tensor of shape ``(T,)`` or ``(B, T)``, floating point,
    finite, non-empty.
    """
    if isinstance(wav, torch.Tensor):
        dtype_ok = wav.is_floating_point()
        dtype = str(wav.dtype)
        finite = bool(torch.isfinite(wav).all()) if wav.numel() else True
    elif isinstance(wav, np.ndarray):
        dtype_ok = np.issubdtype(wav.dtype, np.floating)
        dtype = str(wav.dtype)
        finite = bool(np.isfinite(wav).all()) if wav.size else True
    else:
        raise ValueError(f"{name}: expected a NumPy array or torch tensor, got {type(wav).__name__}.")
    if not dtype_ok:
        hint = " (integer PCM: divide by 32768 for int16)" if "int" in dtype else ""
        raise ValueError(f"{name}: expected a floating-point waveform in [-1, 1], got dtype {dtype}{hint}.")
    if wav.ndim not in (1, 2):
        raise ValueError(
            f"{name}: expected shape (T,) or (B, T), got {tuple(wav.shape)}; "
            "downmix multi-channel audio with load_audio() or wav.mean(axis=-1)."
        )
    if wav.shape[-1] == 0:
        raise ValueError(f"{name}: the waveform is empty (0 samples).")
    if not finite:
        raise ValueError(f"{name}: the waveform contains NaN or Inf values.")


# ----------------------------------------------------------------------------- loading


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read an audio file as float32 mono at ``sample_rate``.

    Args:
        path: a WAV, FLAC or OGG file readable by libsndfile.
        sample_rate: the rate to return, in Hz (resampled with ``librosa.resample`` if needed).

    Returns:
        wav: ``(T,)`` float32 in [-1, 1].

    Raises:
        ValueError: missing, unreadable, empty or non-finite audio, or a bad ``sample_rate``.
    """
    import soundfile as sf

    path = Path(path)
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}.")
    if not path.is_file():
        raise ValueError(f"audio file not found: {path}")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (T, C)
    except Exception as exc:  # libsndfile raises its own error types
        raise ValueError(f"cannot read audio file {path}: {exc}. Use a WAV/FLAC/OGG file.") from exc
    if data.shape[0] == 0:
        raise ValueError(f"audio file {path} holds no samples.")
    wav = data.mean(axis=1)  # downmix: the average of the channels
    if sr != sample_rate:
        import librosa

        wav = librosa.resample(wav, orig_sr=sr, target_sr=int(sample_rate))
    wav = np.ascontiguousarray(wav, dtype=np.float32)
    check_waveform(wav, name=str(path))
    return wav


def save_audio(path: str | Path, wav, sample_rate: int) -> None:
    """Write a mono waveform (NumPy or tensor, ``(T,)``) as 16-bit PCM WAV or FLAC."""
    import soundfile as sf

    if isinstance(wav, torch.Tensor):
        wav = wav.detach().float().cpu().numpy()
    check_waveform(wav)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(wav, -1.0, 1.0), int(sample_rate), subtype="PCM_16")


# ----------------------------------------------------------------------------- log-mel


@lru_cache(maxsize=8)
def _mel_basis_np(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    import librosa

    # Slaney-style mel scale and area normalisation (librosa's defaults), as in Matcha/CosyVoice.
    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)


_CACHE: dict = {}


def _basis_and_window(cfg: MelConfig, device: torch.device, dtype: torch.dtype):
    key = (cfg, str(device), dtype)
    if key not in _CACHE:
        # built as normal tensors even when the first call is under torch.inference_mode (synthesis):
        # an inference tensor in the cache would break every later training step that uses it
        with torch.inference_mode(False):
            basis = torch.from_numpy(_mel_basis_np(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax))
            window = torch.hann_window(cfg.win_length, periodic=True)
            _CACHE[key] = (basis.to(device=device, dtype=dtype), window.to(device=device, dtype=dtype))
    return _CACHE[key]


def stft_frames(x: torch.Tensor, cfg: MelConfig, window: torch.Tensor | None = None) -> torch.Tensor:
    """The project's one STFT framing: ``(B, T)`` → complex ``(B, n_fft//2+1, T // hop)``.

    Reflect-pad by ``(n_fft − hop)/2`` on both sides and frame without centring, so ``T``
    samples give exactly ``T // hop`` frames, frame ``t`` centred on sample ``t·hop + hop/2``.
    The mel front end, Griffin-Lim and the log-spectral distance all frame audio this way.
    """
    if window is None:
        window = torch.hann_window(cfg.win_length, device=x.device, dtype=x.dtype)
    x = torch.nn.functional.pad(x.unsqueeze(1), (cfg.pad, cfg.pad), mode="reflect").squeeze(1)
    return torch.stft(x, cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length,
                      window=window, center=False, return_complex=True)


def mel_spectrogram(wav, cfg: MelConfig | None = None) -> torch.Tensor:
    """Linear-amplitude mel spectrogram (before the log).

    Args:
        wav: ``(T,)`` or ``(B, T)`` float waveform at ``cfg.sample_rate`` (NumPy or tensor;
            a tensor keeps its device).
        cfg: the front end; default :meth:`MelConfig.flow` (24 kHz, hop 480, 80 bins).

    Returns:
        mel: ``(n_mels, T // hop)`` or ``(B, n_mels, T // hop)``.
    """
    cfg = cfg or MelConfig.flow()
    check_waveform(wav)
    x = torch.from_numpy(np.asarray(wav)) if isinstance(wav, np.ndarray) else wav
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()  # half precision STFTs are not supported on CPU
    squeeze = x.ndim == 1
    if squeeze:
        x = x.unsqueeze(0)  # (1, T)
    if x.shape[-1] + 2 * cfg.pad < cfg.n_fft or x.shape[-1] <= cfg.pad:
        raise ValueError(
            f"audio too short: {x.shape[-1]} samples, need at least {max(cfg.n_fft - 2 * cfg.pad, cfg.pad + 1)} "
            f"at {cfg.sample_rate} Hz for one mel frame."
        )
    basis, window = _basis_and_window(cfg, x.device, x.dtype)
    spec = stft_frames(x, cfg, window)  # (B, n_fft//2+1, frames)
    # |X| with a tiny floor so the gradient exists where the spectrum is exactly zero   [Matcha]
    mag = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-9)
    mel = torch.matmul(basis, mag)  # (B, n_mels, frames)
    return mel[0] if squeeze else mel


def log_mel(wav, cfg: MelConfig | None = None) -> torch.Tensor:
    """The 80-bin log-mel used by the flow and the vocoder.

    ``log_mel(wav) = log(clamp(mel(wav), 1e-5))`` with the 24 kHz / hop 480 parameters of
    docs/paper_vs_code.md §1 by default.

    Args:
        wav: ``(T,)`` → returns ``(80, T // 480)``; ``(B, T)`` → ``(B, 80, T // 480)``.
            NumPy arrays become CPU tensors; tensors stay on their device (CPU or CUDA).
        cfg: another :class:`MelConfig` (e.g. :meth:`MelConfig.tokenizer`).
    """
    cfg = cfg or MelConfig.flow()
    return torch.log(torch.clamp(mel_spectrogram(wav, cfg), min=cfg.log_floor))


def tokenizer_features(wav) -> torch.Tensor:
    """16 kHz speech-tokenizer features: ``(T,)`` → ``(80, T // 160)`` at 100 frames/s."""
    return log_mel(wav, MelConfig.tokenizer())


def duration(wav, sample_rate: int) -> float:
    """Length of a ``(T,)`` waveform in seconds."""
    return float(wav.shape[-1]) / float(sample_rate)


def check_mel(mel, n_mels: int = 80, name: str = "mel") -> torch.Tensor:
    """Validate a log-mel and return it as a float tensor ``(B, n_mels, F)``.

    Raises:
        ValueError: not an array/tensor, wrong rank, wrong number of bins, no frames, NaN/Inf,
            or values that look like a linear (not log) mel.
    """
    if isinstance(mel, np.ndarray):
        mel = torch.from_numpy(mel)
    if not isinstance(mel, torch.Tensor):
        raise ValueError(f"{name}: expected a torch tensor or NumPy array, got {type(mel).__name__}.")
    if not mel.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point log-mel, got dtype {mel.dtype}.")
    if mel.ndim == 2:
        mel = mel.unsqueeze(0)
    if mel.ndim != 3:
        raise ValueError(f"{name}: expected shape (n_mels, frames) or (B, n_mels, frames), got "
                         f"{tuple(mel.shape)}. Compute it with minicosy.audio.log_mel(wav).")
    if mel.shape[1] != n_mels:
        hint = (" It looks transposed: use mel.transpose(-1, -2)." if mel.shape[2] == n_mels else "")
        raise ValueError(f"{name}: expected {n_mels} mel bins in dim 1, got shape {tuple(mel.shape)}.{hint}")
    if mel.shape[2] == 0:
        raise ValueError(f"{name}: the mel has 0 frames; give at least one 20 ms frame.")
    if not bool(torch.isfinite(mel).all()):
        raise ValueError(f"{name}: the mel contains NaN or Inf values; check the upstream model's output.")
    return mel.float()
