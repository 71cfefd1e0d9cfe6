"""Griffin-Lim: the no-training baseline vocoder, from the same 80-bin log-mel.

Stage: the classic answer to "a mel has no phase" (docs/paper_vs_code.md §2, "Vocoder": the baseline that the
HiFT-style :class:`minicosy.vocoder.hift.Vocoder` must beat). Two steps:

1. **Undo the mel filterbank.** ``mel = M·|X|`` with ``M`` the 80 × 961 Slaney filterbank loses
   detail (80 numbers per frame for 961 bins); :func:`mel_to_magnitude` finds a non-negative
   ``|X|`` whose mel is as close as possible (least squares, multiplicative updates).
2. **Find a phase** [1]: alternate between "keep these magnitudes" and "be the STFT of a real
   signal" (iSTFT then STFT), with the momentum term of fast Griffin-Lim [2].

The STFT here is exactly the front end's (:func:`minicosy.audio.mel_spectrogram`): reflect
padding by (n_fft − hop)/2 and frames without centring, so ``T`` samples ↔ ``T // 480`` frames;
:func:`istft_frames` is its least-squares inverse (windowed overlap-add).

References:
    [1] Griffin & Lim, "Signal estimation from modified short-time Fourier transform", IEEE TASSP 1984.
    [2] Perraudin, Balazs & Søndergaard, "A fast Griffin-Lim algorithm", WASPAA 2013.
    [3] Lee & Seung, "Algorithms for non-negative matrix factorization", NeurIPS 2000
        (the multiplicative update used for the non-negative fit).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from minicosy.audio import _mel_basis_np, check_mel, stft_frames
from minicosy.config import MelConfig


def istft_frames(spec: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """Least-squares inverse of :func:`stft_frames` (windowed overlap-add): → (B, F·hop)."""
    B, _, n = spec.shape
    window = torch.hann_window(cfg.win_length, device=spec.device, dtype=spec.real.dtype)
    frames = torch.fft.irfft(spec, n=cfg.n_fft, dim=1) * window[:, None]  # (B, n_fft, n)
    total = (n - 1) * cfg.hop_length + cfg.n_fft
    y = F.fold(frames, (1, total), (1, cfg.n_fft), stride=(1, cfg.hop_length))[:, 0, 0]
    env = F.fold((window ** 2)[None, :, None].expand(1, -1, n), (1, total), (1, cfg.n_fft),
                 stride=(1, cfg.hop_length))[:, 0, 0]
    y = y / env.clamp(min=1e-8)
    return y[:, cfg.pad:cfg.pad + n * cfg.hop_length]


def mel_to_magnitude(mel: torch.Tensor, cfg: MelConfig | None = None, n_iter: int = 30) -> torch.Tensor:
    """Undo the mel filterbank: log-mel (B, 80, F) → linear magnitude (B, n_fft//2+1, F).

    Non-negative least squares  min_{S ≥ 0} ‖M·S − exp(logmel)‖² by multiplicative updates
    S ← S ⊙ (Mᵀ·mel) / (Mᵀ·M·S)   [3], started from the clamped pseudo-inverse.
    """
    cfg = cfg or MelConfig.flow()
    basis = torch.from_numpy(_mel_basis_np(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax))
    basis = basis.to(mel.device, torch.float64)  # (80, bins)
    m = mel.double().exp()
    S = (torch.linalg.pinv(basis) @ m).clamp(min=1e-6)
    mt_m, mt_y = basis.T @ basis, basis.T @ m
    for _ in range(n_iter):
        S = S * mt_y / (mt_m @ S + 1e-12)
    return S.float()


@torch.no_grad()
def griffin_lim(mel, n_iter: int = 32, momentum: float = 0.99, cfg: MelConfig | None = None,
                seed: int = 0) -> torch.Tensor:
    """Griffin-Lim from a log-mel: ``(B, 80, F)`` → ``(B, F·480)`` (``(80, F)`` → ``(F·480,)``).

    Alternate projections   [1], with the momentum of [2] (in librosa's form, m = momentum):
        x ← iSTFT(S ⊙ e^{i∠c}),   t ← STFT(x),   c ← t − m/(1+m)·t_prev

    Args:
        mel: log-mel from :func:`minicosy.audio.log_mel`.
        n_iter: iterations (32 is the baseline docs/results.md reports).
        momentum: 0 → the original algorithm; 0.99 → fast Griffin-Lim (librosa's default).
        seed: random initial phase.
    """
    cfg = cfg or MelConfig.flow()
    squeeze = isinstance(mel, (torch.Tensor, np.ndarray)) and mel.ndim == 2
    mel = check_mel(mel, cfg.n_mels)
    S = mel_to_magnitude(mel, cfg)  # (B, bins, F)
    g = torch.Generator().manual_seed(seed)
    angles = torch.exp(2j * math.pi * torch.rand(S.shape, generator=g)).to(S.device)
    prev = torch.zeros_like(angles)
    for _ in range(n_iter):
        x = istft_frames(S * angles, cfg)  # keep the magnitudes, take the phase of c
        t = stft_frames(x, cfg)  # be the STFT of a real signal
        c = t - (momentum / (1 + momentum)) * prev if momentum else t
        angles = c / (c.abs() + 1e-16)
        prev = t
    x = istft_frames(S * angles, cfg).clamp(-1, 1)
    return x[0] if squeeze else x
