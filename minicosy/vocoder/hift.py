"""Vocoder: 80-bin log-mel (50 Hz) → 24 kHz waveform, HiFT-style, plus a Griffin-Lim baseline.

Stage: the last block of CosyVoice 2 (docs/paper_vs_code.md §1–2). A mel spectrogram keeps the magnitude of
the short-time spectrum on a warped frequency axis and throws the phase away; a vocoder has to
invent a waveform whose mel matches. Two ways are implemented here:

* :func:`minicosy.vocoder.griffinlim.griffin_lim` — the classic signal-processing answer, no training:
  undo the filterbank, then alternate projections for a phase [3, 4] (in its own module).
* :class:`Vocoder` — HiFT [1, 2]: a neural-source-filter (NSF) vocoder with an iSTFT head.

  1. an **F0 predictor** (a conv stack on the mel) estimates the pitch of every frame;
  2. an **NSF harmonic source** [5] turns F0 into a sum of sines (fundamental + harmonics, noise
     where unvoiced) at 24 kHz: the periodic skeleton a GAN vocoder otherwise struggles to learn;
  3. an **upsampling stack** (transposed convs + Snake [6] residual blocks, HiFi-GAN style [7])
     brings the mel from 50 Hz to the frame rate of a small STFT, fed at every level with
     down-sampled STFT frames of the source;
  4. an **iSTFT head** [8] predicts log-magnitude and phase of that STFT, and ``torch.istft``
     makes the waveform: the last, most expensive upsampling steps become one FFT.

  Paper/official sizes: upsampling ``[8, 5, 3]`` (×120) then a 16-point iSTFT with hop 4 (×4):
  ×480 in all, see :meth:`VocoderConfig.paper`. The ``tiny`` preset (:meth:`VocoderConfig.tiny`)
  has a single ×4 level (50 → 200 Hz) and lets a 480-point iSTFT (hop 120) do the rest, with the
  harmonic source's own STFT phase under the predicted one (``source_phase=True``), so it trains
  on two CPU cores. The bare ``VocoderConfig()`` is the tiny preset, as for every stage.

* :meth:`Vocoder.stream` — chunked synthesis with the three caches of the official streaming
  runtime: a **mel cache** (left context frames), a **source cache** (F0 of trusted frames and the
  running phase of the harmonic source, so sines stay continuous), an **audio cache** (the
  held-back tail of each chunk, cross-faded with its recomputation at the next join).

Training (discriminators, losses, data cache, the loop) lives in :mod:`minicosy.vocoder.train`,
the measured table in :mod:`minicosy.vocoder.evaluate`.

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §2 (the vocoder is CosyVoice's HiFT).
    [2] Li et al., "HiFTNet: A Fast High-Quality Neural Vocoder with Harmonic-plus-Noise Filter
        and Inverse Short Time Fourier Transform", arXiv 2309.09493.
    [3] Griffin & Lim, "Signal estimation from modified short-time Fourier transform", IEEE TASSP 1984.
    [4] Perraudin, Balazs & Søndergaard, "A fast Griffin-Lim algorithm", WASPAA 2013.
    [5] Wang, Takaki & Yamagishi, "Neural source-filter waveform models", arXiv 1904.12088.
    [6] Ziyin, Hartwig & Ueda, "Neural networks fail to learn periodic functions and how to fix
        it" (Snake), NeurIPS 2020; used by BigVGAN, arXiv 2206.04658.
    [7] Kong, Kim & Bae, "HiFi-GAN", arXiv 2010.05646.
    [8] Kaneko et al., "iSTFTNet", arXiv 2203.02395.

Deliberate differences from the official code are marked ``# simplification:``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from minicosy.audio import check_mel
from minicosy.checkpoint import CheckpointMixin
from minicosy.config import StageConfig

WEIGHTS_NAME, CONFIG_NAME = "vocoder.safetensors", "vocoder.json"  # the files in a checkpoint folder


# ----------------------------------------------------------------------------- config


@dataclass
class VocoderConfig(StageConfig):
    """Sizes of the HiFT-style generator. ``prod(upsample_rates) * istft_hop`` must be 480.

    The bare constructor is :meth:`tiny` (what ``Vocoder()`` builds and the committed checkpoint
    holds); :meth:`paper` gives the sizes of CosyVoice 2's HiFT.
    """

    what = "vocoder config"

    n_mels: int = 80
    sample_rate: int = 24000
    hop_length: int = 480  # samples per mel frame (50 Hz)
    base_channels: int = 128  # channels after conv_pre; halved at every upsampling level
    upsample_rates: tuple = (4,)  # 50 Hz → 200 Hz STFT frames (paper: 8, 5, 3 → 6 kHz)
    upsample_kernel_sizes: tuple = (8,)
    resblock_kernel_sizes: tuple = (3, 7)  # one Snake residual block per kernel, averaged
    resblock_dilations: tuple = ((1, 3, 5), (1, 3, 5))
    source_resblock_kernel_sizes: tuple = (7,)  # one per upsampling level
    istft_n_fft: int = 480  # paper: 16
    istft_hop: int = 120  # paper: 4
    # False (HiFT, the paper preset): the head's phase is sin(b) alone. True (tiny preset): the phase of
    # the harmonic source's own STFT plus sin(b), and the source enters the network as its log-magnitude.
    source_phase: bool = True
    n_harmonics: int = 8  # sines at k·F0, k = 1..n_harmonics+1
    sine_amp: float = 0.1  # NSF α
    noise_std: float = 0.003  # NSF σ (voiced frames); unvoiced frames get noise of std α/3
    voiced_threshold: float = 10.0  # Hz: below this a frame counts as unvoiced
    f0_channels: int = 64
    f0_layers: int = 3
    f0_scale: float = 100.0  # the F0 head predicts Hz / 100, so its output starts at a sensible scale
    audio_limit: float = 0.99
    # Streaming: the tiny generator sees ±14 mel frames, so 24 frames of left context and 12 held back
    # make the recomputed join exact (paper() sets the same); only the cross-fade differs from offline.
    stream_context: int = 24  # frames of mel kept as left context between chunks (the mel cache)
    stream_lookahead: int = 12  # frames of audio held back per chunk and cross-faded at the join

    def __post_init__(self):
        self.upsample_rates = tuple(self.upsample_rates)
        self.upsample_kernel_sizes = tuple(self.upsample_kernel_sizes)
        self.resblock_kernel_sizes = tuple(self.resblock_kernel_sizes)
        self.resblock_dilations = tuple(tuple(d) for d in self.resblock_dilations)
        self.source_resblock_kernel_sizes = tuple(self.source_resblock_kernel_sizes)
        if math.prod(self.upsample_rates) * self.istft_hop != self.hop_length:
            raise ValueError(f"prod(upsample_rates) * istft_hop = {math.prod(self.upsample_rates)} * "
                             f"{self.istft_hop} must equal hop_length = {self.hop_length}.")

    @property
    def upsample_factor(self) -> int:
        return math.prod(self.upsample_rates)

    @classmethod
    def tiny(cls, **overrides) -> "VocoderConfig":
        """≈ 0.8 M parameters, trained on one CPU thread (docs/results.md gives the run); the bare constructor.

        One 4× upsampling level to 200 Hz and an iSTFT head of 480 points, hop 120, with the
        source's phase (``source_phase=True``). A 480-point STFT resolves harmonics (50 Hz bins),
        so the network only has to learn a magnitude per bin while the source supplies phases
        that stay coherent from frame to frame; ``scripts/vocoder_head_ceiling.py`` measures the
        ceiling of this head (``results/vocoder_head_ceiling.json``). HiFT's 16-point head (the paper
        preset) needs the network to build that structure in the waveform.
        # simplification: the source-phase head replaces HiFT's sin(b) phase for the tiny preset.
        """
        return cls(**overrides)

    @classmethod
    def paper(cls, **overrides) -> "VocoderConfig":
        """The sizes of CosyVoice 2's HiFT (official config): ≈ 21 M parameters."""
        return cls(**{"base_channels": 512, "upsample_rates": (8, 5, 3), "upsample_kernel_sizes": (16, 11, 7),
                      "resblock_kernel_sizes": (3, 7, 11), "resblock_dilations": ((1, 3, 5),) * 3,
                      "source_resblock_kernel_sizes": (7, 7, 11), "istft_n_fft": 16, "istft_hop": 4,
                      "source_phase": False, "f0_channels": 512, "f0_layers": 5, **overrides})

    @classmethod
    def legacy_defaults(cls) -> dict:
        """The field defaults before ``minicosy-checkpoint-1`` (×40 upsampling, a 48-point head with hop
        12, HiFT's sin(b) phase): a vocoder.json of that time that lacks a field meant these."""
        return cls.tiny(base_channels=64, upsample_rates=(8, 5), upsample_kernel_sizes=(16, 11),
                        source_resblock_kernel_sizes=(7, 11), istft_n_fft=48, istft_hop=12, source_phase=False,
                        stream_context=16, stream_lookahead=8).to_dict()


# ----------------------------------------------------------------------------- building blocks


class Snake(nn.Module):
    """Snake activation, one learned frequency α per channel   [6]

    snake(x) = x + sin²(α·x) / α — a ReLU-like ramp plus a periodic ripple, which lets a conv
    net represent periodic waveforms without having to learn them from piecewise-linear parts.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x + (1/α)·sin²(αx)   [6, Eq. 3]
        return x + torch.sin(self.alpha * x).pow(2) / (self.alpha + 1e-9)


class ResBlock(nn.Module):
    """HiFi-GAN residual block (type 1) with Snake instead of leaky ReLU, as in HiFT."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple):
        super().__init__()
        self.convs1 = nn.ModuleList(nn.Conv1d(channels, channels, kernel_size, dilation=d,
                                              padding=d * (kernel_size - 1) // 2) for d in dilations)
        self.convs2 = nn.ModuleList(nn.Conv1d(channels, channels, kernel_size,
                                              padding=(kernel_size - 1) // 2) for _ in dilations)
        self.acts1 = nn.ModuleList(Snake(channels) for _ in dilations)
        self.acts2 = nn.ModuleList(Snake(channels) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, L) → (B, C, L)
        for c1, c2, a1, a2 in zip(self.convs1, self.convs2, self.acts1, self.acts2):
            x = x + c2(a2(c1(a1(x))))
        return x


class F0Predictor(nn.Module):
    """F0 (Hz) per mel frame: a conv stack + linear head, ``(B, 80, F) → (B, F)``.

    # simplification: HiFT's ConvRNNF0Predictor is the same conv stack (5 × 512 in the paper preset).
    """

    def __init__(self, cfg: VocoderConfig):
        super().__init__()
        layers, c_in = [], cfg.n_mels
        for _ in range(cfg.f0_layers):
            layers += [nn.Conv1d(c_in, cfg.f0_channels, 3, padding=1), nn.ELU()]
            c_in = cfg.f0_channels
        self.net = nn.Sequential(*layers)
        self.head = nn.Linear(cfg.f0_channels, 1)
        self.scale = cfg.f0_scale

    @property
    def receptive_field(self) -> int:
        """Frames of context the prediction depends on, on each side."""
        return sum(1 for m in self.net if isinstance(m, nn.Conv1d))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        h = self.net(mel).transpose(1, 2)  # (B, F, C)
        return self.head(h).squeeze(-1).abs() * self.scale  # (B, F), Hz ≥ 0


class HarmonicSource(nn.Module):
    """Neural-source-filter excitation from F0   [5], [2 §2.1]

    For harmonic k = 1..K+1 at sample n (frame F0 repeated over its 480 samples):

        φ_k[n] = 2π · frac(k · Σ_{m≤n} f0[m] / sr + θ_k)
        e_k[n] = α·sin(φ_k[n]) · v[n] + σ_n · ε_k[n],  σ_n = σ if voiced else α/3

    then a learned linear merge and tanh give one excitation channel. The phase sum runs in
    float64 and wraps to [0, 1) cycles, so it stays exact for minutes of audio and a stream can
    carry it from chunk to chunk (the "source cache").
    """

    def __init__(self, cfg: VocoderConfig, noise_len: int = 1 << 15):
        super().__init__()
        self.cfg = cfg
        self.n = cfg.n_harmonics + 1
        self.merge = nn.Linear(self.n, 1)
        g = torch.Generator().manual_seed(1234)
        # Fixed start phases θ_k (θ_1 = 0) and, at inference, a fixed noise table indexed by the
        # absolute sample position: a stream then reproduces offline synthesis sample for sample.
        theta = torch.rand(self.n, generator=g, dtype=torch.float64)
        theta[0] = 0.0
        self.register_buffer("theta", theta, persistent=False)
        self.register_buffer("noise_table", torch.randn(noise_len, self.n, generator=g), persistent=False)

    def forward(self, f0: torch.Tensor, phase0: torch.Tensor | None = None, offset: int = 0):
        """Args:
            f0: (B, F) Hz per mel frame.
            phase0: (B,) cycles of the fundamental before the first sample (float64), default 0.
            offset: absolute sample index of the first sample (selects the fixed noise).

        Returns:
            source: (B, 1, F·hop); cycles: (B, F·hop) float64 running phase of the fundamental.
        """
        cfg, hop = self.cfg, self.cfg.hop_length
        f0_s = f0.detach().double().repeat_interleave(hop, dim=1)  # (B, T)
        cycles = torch.cumsum(f0_s / cfg.sample_rate, dim=1)
        if phase0 is not None:
            cycles = cycles + phase0.to(cycles)[:, None]
        k = torch.arange(1, self.n + 1, device=f0.device, dtype=torch.float64)
        # φ_k = 2π·frac(k·cycles + θ_k)   [5]
        phase = torch.frac(cycles[..., None] * k + self.theta.to(cycles)) * (2 * math.pi)  # (B, T, K+1)
        voiced = (f0_s > cfg.voiced_threshold).float()[..., None]  # (B, T, 1)
        sines = cfg.sine_amp * torch.sin(phase).float() * voiced
        T = f0_s.shape[1]
        if self.training:
            noise = torch.randn(f0.shape[0], T, self.n, device=f0.device)
        else:
            idx = (torch.arange(T, device=f0.device) + offset) % self.noise_table.shape[0]
            noise = self.noise_table[idx].unsqueeze(0).expand(f0.shape[0], -1, -1)
        amp = voiced * cfg.noise_std + (1 - voiced) * cfg.sine_amp / 3
        excitation = sines + amp * noise
        source = torch.tanh(self.merge(excitation)).transpose(1, 2)  # (B, 1, T)
        return source, cycles


# ----------------------------------------------------------------------------- generator


class HiFTGenerator(nn.Module):
    """mel ``(B, 80, F)`` → waveform ``(B, F·480)``; see the module docstring for the four parts."""

    def __init__(self, cfg: VocoderConfig):
        super().__init__()
        self.cfg = cfg
        self.f0_predictor = F0Predictor(cfg)
        self.source = HarmonicSource(cfg)
        n_fft, C = cfg.istft_n_fft, cfg.base_channels
        self.conv_pre = nn.Conv1d(cfg.n_mels, C, 7, padding=3)
        self.ups, self.source_downs, self.source_blocks = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        self.resblocks = nn.ModuleList()
        rates = cfg.upsample_rates
        for i, (u, k) in enumerate(zip(rates, cfg.upsample_kernel_sizes)):
            c_out = C // 2 ** (i + 1)
            # kernel 2u (even u) or 2u+1 (odd u) with padding (k-u)//2 gives exactly L·u samples
            self.ups.append(nn.ConvTranspose1d(C // 2 ** i, c_out, k, stride=u, padding=(k - u) // 2))
            stride = math.prod(rates[i + 1:])  # source STFT frames per frame of this level
            src_ch = n_fft // 2 + 1 if cfg.source_phase else n_fft + 2  # log|S| or (Re S, Im S)
            if stride > 1:
                self.source_downs.append(nn.Conv1d(src_ch, c_out, 2 * stride, stride=stride,
                                                   padding=stride // 2))
            else:
                self.source_downs.append(nn.Conv1d(src_ch, c_out, 1))
            self.source_blocks.append(ResBlock(c_out, cfg.source_resblock_kernel_sizes[i], (1, 3, 5)))
            for kr, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilations):
                self.resblocks.append(ResBlock(c_out, kr, d))
        c_last = C // 2 ** len(rates)
        self.conv_post = nn.Conv1d(c_last, n_fft + 2, 7, padding=3)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

        # |X| = exp(a) is clipped at 100 for HiFT's 16-point head; a longer window sums more samples
        self.log_mag_max = 4.6 + math.log(max(1.0, n_fft / 48))

    def _stft(self, x: torch.Tensor) -> torch.Tensor:  # (B, T) → complex (B, n_fft/2+1, T/hop + 1)
        cfg = self.cfg
        return torch.stft(x, cfg.istft_n_fft, cfg.istft_hop, cfg.istft_n_fft, window=self.window,
                          center=True, return_complex=True)

    def decode(self, mel: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        """The filter: mel + source → waveform. mel (B, 80, F), source (B, 1, F·hop) → (B, F·hop)."""
        cfg, nk = self.cfg, len(self.cfg.resblock_kernel_sizes)
        S = self._stft(source.squeeze(1))  # (B, n_fft/2+1, F·U + 1) complex
        if cfg.source_phase:
            s = torch.log(S.abs() + 1e-4)  # the harmonic pattern; the phase goes to the head
        else:
            s = torch.cat([S.real, S.imag], dim=1)  # HiFT: (B, n_fft+2, F·U + 1)
        x = self.conv_pre(mel)  # (B, C, F)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, 0.1))  # (B, C/2^(i+1), F·u_0···u_i)
            if i == len(self.ups) - 1:
                x = F.pad(x, (1, 0), mode="reflect")  # one more frame: the iSTFT has F·U + 1 frames
            x = x + self.source_blocks[i](self.source_downs[i](s))  # fuse the harmonic source
            x = sum(self.resblocks[i * nk + j](x) for j in range(nk)) / nk
        x = self.conv_post(F.leaky_relu(x))  # (B, n_fft+2, F·U + 1)
        half = cfg.istft_n_fft // 2 + 1
        # iSTFT head   [8]: |X| = exp(a) (clipped), ∠X = sin(b) as in HiFT, or ∠S + sin(b)
        mag = torch.exp(x[:, :half].clamp(max=self.log_mag_max))
        phase = torch.sin(x[:, half:])
        if cfg.source_phase:
            phase = phase + torch.angle(S).detach()  # coherent harmonics from the first step
        spec = torch.polar(mag.float(), phase.float())
        wav = torch.istft(spec, cfg.istft_n_fft, cfg.istft_hop, cfg.istft_n_fft,
                          window=self.window.float(), center=True, length=mel.shape[-1] * cfg.hop_length)
        return wav.clamp(-cfg.audio_limit, cfg.audio_limit)

    def forward(self, mel: torch.Tensor, f0_source: torch.Tensor | None = None):
        """Offline path. Returns ``wav (B, F·hop)`` and the predicted ``f0 (B, F)``.

        Args:
            mel: (B, 80, F) log-mel.
            f0_source: (B, F) Hz to drive the harmonic source instead of the prediction. Training
                passes the pYIN targets here (teacher forcing, as in NSF [5]): HiFT drives the source
                with the detached prediction from step 0, but on our CPU budget a source driven by an
                untrained F0 head is noise, and the generator learns to ignore it for good (the merge
                weights decay to zero). Inference always uses the predicted F0.
        """
        f0 = self.f0_predictor(mel)
        source, _ = self.source(f0 if f0_source is None else f0_source)  # F0 enters detached
        return self.decode(mel, source), f0


# ----------------------------------------------------------------------------- public wrapper


class Vocoder(CheckpointMixin, nn.Module):
    """HiFT-style vocoder: ``Vocoder.from_pretrained()(log_mel(wav))`` ≈ ``wav``.

    Call it on a log-mel ``(B, 80, F)`` (or ``(80, F)``) to get ``(B, F·480)`` (or ``(F·480,)``)
    samples at 24 kHz, on the device of its weights.

    Checkpoint: :class:`~minicosy.checkpoint.CheckpointMixin` — the generator's weights, fp16 by
    default (``DEFAULT_CHECKPOINT/vocoder`` by default).
    """

    stage, config_class, save_dtype = "vocoder", VocoderConfig, torch.float16
    train_hint = "Train one with `minicosy train vocoder --preset tiny`."

    def __init__(self, cfg: VocoderConfig | None = None):
        super().__init__()
        self.cfg = cfg or VocoderConfig()
        self.generator = HiFTGenerator(self.cfg)
        self.meta: dict = {}

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.generator.parameters())

    @torch.no_grad()
    def forward(self, mel, return_f0: bool = False):
        """Synthesise. ``mel (B, 80, F)`` → ``wav (B, F·480)``; also ``f0 (B, F)`` if asked."""
        squeeze = isinstance(mel, (torch.Tensor, np.ndarray)) and mel.ndim == 2
        mel = check_mel(mel, self.cfg.n_mels).to(self.device)
        was_training = self.training
        self.eval()
        wav, f0 = self.generator(mel)
        self.train(was_training)
        if squeeze:
            wav, f0 = wav[0], f0[0]
        return (wav, f0) if return_f0 else wav

    # ------------------------------------------------------------------ streaming

    @torch.no_grad()
    def stream(self, mel_chunks: Iterable, context: int | None = None,
               lookahead: int | None = None) -> Iterator[torch.Tensor]:
        """Synthesise chunk by chunk; yields audio as soon as it is final.

        Per chunk, the generator runs on ``[mel cache | new frames]``. The first frames of its
        output (the context) were emitted before and are dropped; the last ``lookahead`` frames
        (computed without right context) are held back in the audio cache and, at the next
        chunk, cross-faded with their recomputation (a Hann fade-in/fade-out pair that sums to
        one). F0 of frames that lacked context is taken from the previous chunk and the
        harmonic source continues from the carried phase, so sines never jump.

        Args:
            mel_chunks: iterable of ``(B, 80, n)`` or ``(80, n)`` log-mels, ``n ≥ 1``.
            context: mel-cache frames (default ``cfg.stream_context``).
            lookahead: held-back frames per chunk (default ``cfg.stream_lookahead``).

        Yields:
            ``(B, samples)`` (or ``(samples,)``) pieces; concatenated they have ``480·Σn`` samples.
        """
        C = self.cfg.stream_context if context is None else int(context)
        H = self.cfg.stream_lookahead if lookahead is None else int(lookahead)
        rf = self.generator.f0_predictor.receptive_field
        if H < 2 * rf - 1 or C < H + 1 or C < 2 * rf:
            raise ValueError(f"stream needs lookahead ≥ {2 * rf - 1} and context ≥ max(lookahead + 1, {2 * rf}) "
                             f"frames; got context={C}, lookahead={H}.")
        hop, gen = self.cfg.hop_length, self.generator
        was_training = self.training
        self.eval()
        mel_cache = f0_cache = phase0 = tail = None
        pending, squeeze = [], None
        pos = 0  # absolute frame index of the first frame of the mel cache
        emitted = 0  # absolute samples yielded so far

        def run(new: torch.Tensor, final: bool):
            nonlocal mel_cache, f0_cache, phase0, tail, pos, emitted
            mel_in = new if mel_cache is None else torch.cat([mel_cache, new], dim=2)  # (B, 80, n_in)
            n_in = mel_in.shape[2]
            f0 = gen.f0_predictor(mel_in)  # (B, n_in)
            if f0_cache is not None:  # first rf frames lacked left context now: use the old estimate
                k = min(rf, f0_cache.shape[1])
                f0 = torch.cat([f0_cache[:, :k], f0[:, k:]], dim=1)
            if phase0 is None:
                phase0 = torch.zeros(mel_in.shape[0], dtype=torch.float64, device=mel_in.device)
            source, cycles = gen.source(f0, phase0=phase0, offset=pos * hop)
            wav = gen.decode(mel_in, source)  # (B, n_in·hop), absolute samples [pos·hop, ...)
            a = emitted - pos * hop  # first sample not yet yielded, relative to this run
            end = n_in * hop if final else (n_in - H) * hop
            pieces = []
            if tail is not None:
                # Cross-fade over the first half of the held-back tail, where the old samples
                # had the most right context; the second half comes from the new run alone.
                L = max(1, tail.shape[1] // 2)
                # w_in[i] = sin²(π/2 · (i + ½)/L), w_out = 1 − w_in: a fade pair that sums to one
                w_in = torch.sin(0.5 * math.pi * (torch.arange(L, device=wav.device) + 0.5) / L) ** 2
                pieces.append(tail[:, :L] * (1 - w_in) + wav[:, a:a + L] * w_in)
                a += L
            pieces.append(wav[:, a:end])
            tail = None if final else wav[:, end:]
            out = torch.cat(pieces, dim=1)
            emitted += out.shape[1]
            # update the caches for the next chunk
            keep = min(C, n_in)
            mel_cache, f0_cache = mel_in[:, :, n_in - keep:], f0[:, n_in - keep:]
            phase0 = cycles[:, (n_in - keep) * hop - 1] if n_in > keep else phase0
            pos += n_in - keep
            return out

        for chunk in mel_chunks:
            sq = isinstance(chunk, (torch.Tensor, np.ndarray)) and chunk.ndim == 2
            squeeze = sq if squeeze is None else squeeze
            pending.append(check_mel(chunk, self.cfg.n_mels, name="mel chunk").to(self.device))
            new = torch.cat(pending, dim=2)
            if new.shape[2] <= H:  # too short to emit anything yet: wait for more frames
                continue
            pending = []
            out = run(new, final=False)
            if out.shape[1]:
                yield out[0] if squeeze else out
        if pending or tail is not None:
            if pending:
                out = run(torch.cat(pending, dim=2), final=True)
            else:  # flush: the held-back tail is final as it is
                out, tail = tail, None
            if out.shape[1]:
                yield out[0] if squeeze else out
        self.train(was_training)

    # ------------------------------------------------------------------ save / load

    def checkpoint_module(self) -> nn.Module:
        return self.generator  # the discriminators live in the trainer; the generator is the vocoder

    def checkpoint_extra(self) -> dict:
        return {"num_parameters": self.num_parameters()}

    def save(self, path: str | Path, half: bool = True, meta: dict | None = None) -> Path:
        """Write ``vocoder.safetensors`` (fp16 by default) and ``vocoder.json`` into folder ``path``
        (made if need be) and return the folder: :meth:`save_pretrained` with a folder. ``meta``: the
        notes to store (default: this model's own, e.g. the training record of a loaded checkpoint)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.save_pretrained(path, meta if meta is not None else self.meta,
                             dtype=torch.float16 if half else torch.float32)
        return path
