"""Benchmark: minicosy's torch log-mel front end vs ``librosa.feature.melspectrogram``.

Both compute the flow/vocoder feature of docs/paper_vs_code.md §1 (24 kHz, n_fft 1920, hop 480, 80 Slaney
bins, 0–8 kHz, magnitude mel, natural log clamped at 1e-5) with the same framing: reflect-pad by
(n_fft − hop)/2, then frames without centring. Both are warmed up first (librosa's first call in a
process JIT-compiles), then each case is timed as the median of several interleaved runs on 10 s and 60 s of
audio, batch 1 and batch 8. On a machine with CUDA the torch version is also timed on the GPU.

Prints one JSON object: machine info, the load average when it ran (timings on a shared machine
are only comparable within one run), per-case seconds for librosa, torch on all its threads and
torch on one thread, × real time (audio seconds processed per wall-clock second), the speed ratio
against librosa measured in the same run, and the max absolute difference of the two log-mels
(overall, and where librosa's mel exceeds 1e-4: the only deliberate difference is minicosy's
sqrt(|X|² + 1e-9) magnitude floor, which matters only for bins within a factor of ~10 of the 1e-5 log clamp).

Usage:
    python benchmarks/frontend.py [--repeats 9] [--durations 10 60] [--batches 1 8] [--out f.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from minicosy.audio import log_mel  # noqa: E402
from minicosy.config import MelConfig  # noqa: E402
from minicosy.utils import emit_json, machine_info  # noqa: E402


def librosa_log_mel(wav: np.ndarray, cfg: MelConfig) -> np.ndarray:
    """The same feature with librosa: (T,) → (80, T // hop), (B, T) → (B, 80, T // hop)."""
    import librosa

    pad = [(0, 0)] * (wav.ndim - 1) + [(cfg.pad, cfg.pad)]
    mel = librosa.feature.melspectrogram(
        y=np.pad(wav, pad, mode="reflect"), sr=cfg.sample_rate, n_fft=cfg.n_fft,
        hop_length=cfg.hop_length, win_length=cfg.win_length, window="hann", center=False,
        power=1.0, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax)
    return np.log(np.maximum(mel, cfg.log_floor))


def speechlike(batch: int, seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    """(B, T) float32 noise under a 3 Hz syllable-like envelope with near-silent gaps."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    env = np.clip(np.sin(2 * np.pi * 3.0 * t), 0.0, None) ** 2 + 1e-4
    return (0.3 * env * rng.standard_normal((batch, t.size))).astype(np.float32)


def interleaved_medians(fns: dict, repeats: int) -> dict:
    """Median seconds of each zero-argument function. The functions take turns within every
    repeat, so a change in machine load during the run hits all of them alike."""
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _with_threads(n: int, fn):
    def run():
        before = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            fn()
        finally:
            torch.set_num_threads(before)
    return run


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--durations", type=float, nargs="+", default=[10.0, 60.0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    cfg = MelConfig.flow()

    # Warm-up: librosa's first melspectrogram call JIT-compiles (numba), torch allocates its caches.
    warm = speechlike(1, 1.0, cfg.sample_rate)[0]
    t0 = time.perf_counter()
    librosa_log_mel(warm, cfg)
    librosa_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    log_mel(warm, cfg)
    torch_first = time.perf_counter() - t0
    for _ in range(2):
        librosa_log_mel(warm, cfg), log_mel(warm, cfg)

    cuda = torch.cuda.is_available()
    result = {"machine": machine_info(), "load_average_1min_at_start": round(os.getloadavg()[0], 2),
              "config": cfg.to_dict(), "repeats": args.repeats,
              "first_call_seconds": {"librosa": round(librosa_first, 3), "torch_cpu": round(torch_first, 3)},
              "cases": []}
    for seconds in args.durations:
        for batch in args.batches:
            wav = speechlike(batch, seconds, cfg.sample_rate, seed=int(seconds) + batch)
            x = wav[0] if batch == 1 else wav  # batch 1 as a plain (T,) signal
            audio_s = seconds * batch
            ref = librosa_log_mel(x, cfg)
            ours = log_mel(torch.from_numpy(x), cfg).numpy()
            xt = torch.from_numpy(x)
            threads = torch.get_num_threads()
            fns = {"librosa": lambda: librosa_log_mel(x, cfg), "torch": lambda: log_mel(xt, cfg),
                   # librosa's FFT runs on one core; torch on one thread is the like-for-like
                   # figure, and the one that holds up when other processes share the CPU.
                   "torch_1_thread": _with_threads(1, lambda: log_mel(xt, cfg))}
            if cuda:
                xg = xt.to("cuda")
                log_mel(xg, cfg)  # builds the device's filterbank/window cache and cuFFT plan
                fns["cuda"] = lambda: (log_mel(xg, cfg), torch.cuda.synchronize())
            with torch.inference_mode():
                med = interleaved_medians(fns, args.repeats)
            t_lib, t_cpu, t_cpu1 = med["librosa"], med["torch"], med["torch_1_thread"]
            case = {
                "audio_seconds": seconds, "batch": batch, "frames": int(ours.shape[-1]),
                "shape_match": list(ours.shape) == list(ref.shape),
                "max_abs_diff_vs_librosa": float(np.abs(ours - ref).max()),
                # Near the 1e-5 clamp the two differ by design: minicosy takes |X| as
                # sqrt(|X|² + 1e-9) (Matcha/CosyVoice), librosa as |X|. Away from it they agree.
                "max_abs_diff_vs_librosa_above_1e-4": float(np.abs(ours - ref)[ref > np.log(1e-4)].max()),
                "librosa": {"seconds": t_lib, "x_real_time": audio_s / t_lib},
                "torch_cpu": {"threads": threads, "seconds": t_cpu, "x_real_time": audio_s / t_cpu,
                              "speedup_vs_librosa": t_lib / t_cpu},
                "torch_cpu_1_thread": {"seconds": t_cpu1, "x_real_time": audio_s / t_cpu1,
                                       "speedup_vs_librosa": t_lib / t_cpu1},
            }
            if cuda:
                t_gpu = med["cuda"]
                with torch.inference_mode():
                    diff = float((log_mel(xg, cfg).cpu() - torch.from_numpy(ours)).abs().max())
                case["torch_cuda"] = {"device": torch.cuda.get_device_name(0), "seconds": t_gpu,
                                      "x_real_time": audio_s / t_gpu, "speedup_vs_librosa": t_lib / t_gpu,
                                      "max_abs_diff_vs_cpu": diff}
            result["cases"].append(case)

    return emit_json(result, args.out)


if __name__ == "__main__":
    main()
