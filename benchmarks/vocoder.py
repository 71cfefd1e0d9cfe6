"""Benchmark: vocoder real-time factor — HiFT tiny (offline and streaming) vs Griffin-Lim.

RTF = synthesis seconds / audio seconds (below 1: faster than real time). Each case is the
median of several runs after a warm-up, on the log-mel of a speech-like test signal (a gliding
harmonic buzz under a syllable envelope: the cost does not depend on what is said). Cases:

* ``neural_offline``    — ``Vocoder(mel)`` on the whole utterance;
* ``neural_stream``     — ``Vocoder.stream`` in chunks of ``--chunk`` frames (default 25 = 0.5 s,
  the flow's 25-token hop at 2 frames per token); also the latency to the first audio;
* ``griffin_lim_32``    — :func:`minicosy.vocoder.griffin_lim` with 32 iterations;
* ``paper_offline``     — the paper-size HiFT generator (random weights, cost only), if asked.

CPU timings run with all torch threads and with one thread; on a CUDA machine the neural
cases are timed on the GPU too. Prints one JSON object (machine info, load average when it
ran — timings on a shared machine are comparable only within one run).

Usage:
    python benchmarks/vocoder.py [--seconds 5] [--repeats 5] [--chunk 25] [--paper] [--out f.json]
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
from minicosy.utils import DEFAULT_CHECKPOINT, emit_json, machine_info  # noqa: E402
from minicosy.vocoder.griffinlim import griffin_lim  # noqa: E402
from minicosy.vocoder.hift import Vocoder, VocoderConfig  # noqa: E402


def speechlike(seconds: float, sr: int = 24000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    ph = 2 * np.pi * np.cumsum(140 * (1 + 0.1 * np.sin(2 * np.pi * 1.5 * t))) / sr
    x = sum(np.sin(k * ph) / k for k in range(1, 20))
    env = np.clip(np.sin(2 * np.pi * 2.5 * t), 0, None) ** 2 + 0.02
    return (0.2 * env * x + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


def median_seconds(fn, repeats: int, sync=None) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if sync:
            sync()
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def stream_run(voc: Vocoder, mel: torch.Tensor, chunk: int, sync=None) -> float:
    """Run a stream to the end; return the seconds to the first yielded audio."""
    t0, first = time.perf_counter(), None
    for _ in voc.stream([mel[..., s:s + chunk] for s in range(0, mel.shape[-1], chunk)]):
        if first is None:
            if sync:
                sync()
            first = time.perf_counter() - t0
    return first


def cases(voc: Vocoder, mel: torch.Tensor, audio_s: float, args, sync=None, with_gl=True) -> dict:
    out = {}
    t = median_seconds(lambda: voc(mel), args.repeats, sync)
    out["neural_offline"] = {"seconds": round(t, 4), "rtf": round(t / audio_s, 4)}
    t = median_seconds(lambda: stream_run(voc, mel, args.chunk, sync), args.repeats, sync)
    firsts = [stream_run(voc, mel, args.chunk, sync) for _ in range(args.repeats)]
    out["neural_stream"] = {"seconds": round(t, 4), "rtf": round(t / audio_s, 4), "chunk_frames": args.chunk,
                            "first_audio_seconds": round(statistics.median(firsts), 4)}
    if with_gl:
        t = median_seconds(lambda: griffin_lim(mel, n_iter=32), args.repeats, sync)
        out["griffin_lim_32"] = {"seconds": round(t, 4), "rtf": round(t / audio_s, 4)}
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--chunk", type=int, default=25, help="mel frames per streaming chunk")
    ap.add_argument("--paper", action="store_true", help="also time the paper-size generator")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    pretrained = (DEFAULT_CHECKPOINT / "vocoder.safetensors").is_file()
    voc = Vocoder.from_pretrained(device="cpu") if pretrained else Vocoder(VocoderConfig.tiny()).eval()
    mel = log_mel(speechlike(args.seconds))[None]  # (1, 80, F)
    audio_s = mel.shape[-1] * 480 / 24000
    result = {"machine": machine_info(), "load_average_1min_at_start": round(os.getloadavg()[0], 2),
              "audio_seconds": audio_s, "repeats": args.repeats,
              "weights": "data/pretrained/tiny" if pretrained else "random (tiny preset)",
              "tiny_parameters": voc.num_parameters(), "cpu": {}}
    threads = torch.get_num_threads()
    with torch.inference_mode():
        result["cpu"][f"{threads}_threads"] = cases(voc, mel, audio_s, args)
        torch.set_num_threads(1)
        result["cpu"]["1_thread"] = cases(voc, mel, audio_s, args)
        torch.set_num_threads(threads)
        if args.paper:
            big = Vocoder(VocoderConfig.paper()).eval()
            t = median_seconds(lambda: big(mel), max(1, args.repeats // 2))
            result["cpu"]["paper_offline"] = {"parameters": big.num_parameters(), "seconds": round(t, 4),
                                              "rtf": round(t / audio_s, 4), "threads": threads}
        if torch.cuda.is_available():
            dev = torch.device("cuda")
            gvoc = voc.to(dev)
            result["cuda"] = {"device": torch.cuda.get_device_name(dev),
                              **cases(gvoc, mel.to(dev), audio_s, args, torch.cuda.synchronize)}
    return emit_json(result, args.out)


if __name__ == "__main__":
    main()
