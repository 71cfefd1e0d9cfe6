"""Vocal-tract-length perturbation (VTLP): move the formants, keep the pitch and the timing.

Stage: data (docs/paper_vs_code.md §3), the second kind of pseudo-speaker of corpus v3. The first
kind, ``sox pitch`` (``p±k`` in ``minicosy.data.corpus.VARIANTS``), is a time-stretch followed by a
resample: *every* frequency is scaled by the same factor, so pitch and formants move together —
a resampled recording of one vocal tract. A speaker differs from another in the two separately:
the pitch comes from the larynx, the formants (the resonances of the spectral envelope) from the
length of the vocal tract, and a longer tract lowers all formants by about the same factor [1].
VTLP warps only the envelope's frequency axis [2]:

    Y(t, f) = X(t, f) · E(t, f / α) / E(t, f)

where ``X`` is the short-time spectrum, ``E`` its spectral envelope (cepstrally smoothed
magnitude [3]) and ``α`` the warp factor: ``α > 1`` moves the formants up (a shorter tract),
``α < 1`` down. The harmonics stay where they are (the fine structure ``X / E`` is kept, phase
included), so F0 and duration are unchanged; only the resonances they pass through move. Jaitly &
Hinton [2] warp the mel filterbank of the recogniser's features; we warp the waveform instead,
because the corpus stores audio for every stage.

# simplification: the envelope is a low-quefrency cepstral lifter (2 ms), not a true-envelope or
# LPC fit; it blurs formants a little, which is harmless for a warp of a few per cent.
# simplification: the gain E(f/α)/E(f) is clipped to ±20 dB so that bands an engine left empty
# (above its own bandwidth) are not amplified into noise.

Everything is NumPy with fixed frame settings, so the output is a deterministic function of the
input samples.

References:
    [1] Fant, "Acoustic Theory of Speech Production", Mouton 1960 (formants scale with tract length).
    [2] Jaitly & Hinton, "Vocal Tract Length Perturbation (VTLP) improves speech recognition",
        ICML Workshop on Deep Learning for Audio, Speech and Language 2013.
    [3] Oppenheim & Schafer, "Discrete-Time Signal Processing", ch. 13 (cepstral smoothing).
"""

from __future__ import annotations

import numpy as np

FRAME_S = 0.032     # analysis window: 32 ms, a few pitch periods of a low voice
LIFTER_S = 0.002    # envelope = cepstrum below 2 ms quefrency (pitch periods are ≥ 2.5 ms)
MAX_GAIN_DB = 20.0  # clip of the envelope ratio


def _frames(sr: int) -> tuple[int, int]:
    n_fft = 1 << int(np.ceil(np.log2(FRAME_S * sr)))
    return n_fft, n_fft // 4


def _stft(wav: np.ndarray, n_fft: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Hann-windowed frames of the edge-padded signal → ``(n_frames, n_fft // 2 + 1)`` spectra."""
    win = np.hanning(n_fft + 1)[:-1]  # periodic Hann: overlaps at hop n_fft/4 sum to a constant
    x = np.pad(wav.astype(np.float64), (n_fft // 2, n_fft // 2 + n_fft))
    n = 1 + (len(x) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]  # (n_frames, n_fft)
    return np.fft.rfft(x[idx] * win, axis=1), win


def _istft(spec: np.ndarray, win: np.ndarray, hop: int, length: int) -> np.ndarray:
    """Weighted overlap-add inverse of :func:`_stft`, cut back to ``length`` samples."""
    n_fft = len(win)
    frames = np.fft.irfft(spec, n=n_fft, axis=1) * win  # (n_frames, n_fft)
    total = hop * (len(frames) - 1) + n_fft
    out, norm = np.zeros(total), np.zeros(total)
    for i, fr in enumerate(frames):
        out[i * hop: i * hop + n_fft] += fr
        norm[i * hop: i * hop + n_fft] += win ** 2
    out /= np.maximum(norm, 1e-8)
    return out[n_fft // 2: n_fft // 2 + length]


def log_envelope(spec: np.ndarray, sr: int) -> np.ndarray:
    """Cepstrally smoothed log-magnitude envelope of each frame.

    Args:
        spec: ``(n_frames, n_bins)`` complex spectra (``n_bins = n_fft // 2 + 1``).
        sr: sample rate in Hz.

    Returns:
        ``(n_frames, n_bins)`` natural-log envelope.
    """
    n_fft = 2 * (spec.shape[1] - 1)
    ceps = np.fft.irfft(np.log(np.abs(spec) + 1e-8), n=n_fft, axis=1)  # (n_frames, n_fft)
    keep = max(2, int(LIFTER_S * sr))
    lifter = np.zeros(n_fft)
    lifter[:keep] = 1.0
    lifter[1:keep] = 2.0  # fold the symmetric negative quefrencies onto the positive ones
    lifter[-(keep - 1):] = 0.0
    return np.fft.rfft(ceps * lifter, axis=1).real


def warp_formants(wav: np.ndarray, sr: int, alpha: float) -> np.ndarray:
    """Scale the formant frequencies of ``wav`` by ``alpha``; pitch and duration stay.

    ``Y(t, f) = X(t, f) · E(t, f/α) / E(t, f)``  (module docstring).

    Args:
        wav: ``(T,)`` float waveform.
        sr: its sample rate in Hz.
        alpha: warp factor, e.g. 1.08 (formants 8 % up) or 0.92 (8 % down); must lie in [0.7, 1.4].

    Returns:
        ``(T,)`` float32 waveform, same length and rate (not normalised).
    """
    if not 0.7 <= alpha <= 1.4:
        raise ValueError(f"alpha={alpha}: use a warp factor in [0.7, 1.4] (beyond, speech stops sounding human).")
    wav = np.asarray(wav, dtype=np.float64)
    if wav.ndim != 1 or wav.size == 0:
        raise ValueError(f"expected a non-empty (T,) waveform, got shape {wav.shape}.")
    n_fft, hop = _frames(sr)
    spec, win = _stft(wav, n_fft, hop)
    env = log_envelope(spec, sr)  # (n_frames, n_bins)
    freqs = np.arange(spec.shape[1])
    # E(f/α): read the envelope at bin f/α (edge value beyond the last bin)
    warped = np.stack([np.interp(freqs / alpha, freqs, e) for e in env])
    limit = MAX_GAIN_DB / 20 * np.log(10)
    gain = np.exp(np.clip(warped - env, -limit, limit))
    return _istft(spec * gain, win, hop, len(wav)).astype(np.float32)


def mean_log_envelope(wav: np.ndarray, sr: int) -> np.ndarray:
    """Energy-weighted average log envelope over the voiced-ish frames: ``(n_bins,)``.

    A long-term picture of where a voice's resonances sit; :func:`estimate_warp` compares two.
    """
    n_fft, hop = _frames(sr)
    spec, _ = _stft(np.asarray(wav, dtype=np.float64), n_fft, hop)
    energy = (np.abs(spec) ** 2).sum(axis=1)
    loud = energy > energy.max() * 1e-3  # frames within 30 dB of the loudest
    return log_envelope(spec[loud], sr).mean(axis=0)


def estimate_warp(base: np.ndarray, other: np.ndarray, sr: int, fmin: float = 300.0,
                  fmax: float = 4000.0) -> float:
    """The factor ``α`` for which ``other``'s mean envelope best matches ``base``'s read at ``f/α``.

    A measurement, not part of the transform: it checks that a pseudo-speaker moved its formants
    (``p+k`` and ``v±8`` should give about ``2^(k/12)`` and ``1 ± 0.08``). Grid search over
    0.80–1.25 in steps of 0.005, least squares on mean-removed log envelopes in ``[fmin, fmax]`` Hz.
    """
    eb, eo = mean_log_envelope(base, sr), mean_log_envelope(other, sr)
    n_fft = 2 * (len(eb) - 1)
    freqs = np.arange(len(eb)) * sr / n_fft
    band = (freqs >= fmin) & (freqs <= fmax)
    best, best_err = 1.0, np.inf
    for a in np.arange(0.80, 1.2501, 0.005):
        pred = np.interp(freqs[band] / a, freqs, eb)
        d = (eo[band] - eo[band].mean()) - (pred - pred.mean())
        err = float(np.mean(d ** 2))
        if err < best_err:
            best, best_err = float(a), err
    return round(best, 3)
