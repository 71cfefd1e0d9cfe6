"""Benchmark: speed and memory of the speech tokenizer — tiny FSQ vs the VQ baseline.

Both checkpoints (``data/pretrained/tiny/speech_tokenizer``, FSQ [CV2 §2.1]; ``vq_tokenizer``, the
CosyVoice 1 style VQ) are timed in the same run on the same audio: the committed fixture utterances
(``data/fixtures``, 16 kHz) joined end to end in manifest order and cut into windows, so the input
is real speech and identical on every machine. Each time is the median of ``--repeats`` runs after a
warm-up; FSQ and VQ take turns within every repeat, so a change of machine load hits both alike.
Cases:

* ``single_<n>s``  — ``encode`` of one 2 s / 5 s / 10 s clip: seconds, real-time factor (RTF =
  compute seconds / audio seconds, below 1 is faster than real time) and tokens per second
  (25 tokens per audio second; tokens emitted per compute second);
* ``batch_8x5s``   — ``encode_batch`` of 8 different 5 s clips, same figures over the batch;
* ``split_5s``     — the 5 s clip cut in two: the feature front end
  (:func:`minicosy.audio.tokenizer_features`) alone, and the network (Encoder1 + quantizer, on
  ready features) alone, with the front end's share of their sum.

``vq_over_fsq`` is VQ seconds / FSQ seconds (above 1: FSQ is faster). Memory: the process's peak
resident set (``getrusage`` maxrss) after loading and at the end; with ``--device cuda`` also the
peak CUDA memory of each case, and CUDA timings bracketed by ``torch.cuda.synchronize()``.

Usage:
    python benchmarks/speech_tokenizer.py [--device cpu|cuda|auto] [--threads 1] [--repeats 5] [--out f.json]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from minicosy.audio import load_audio, tokenizer_features  # noqa: E402
from minicosy.data.manifest import manifest_root, read_manifest  # noqa: E402
from minicosy.speech_tokenizer.model import SAMPLE_RATE, SpeechTokenizer  # noqa: E402
from minicosy.utils import DEFAULT_CHECKPOINT, FIXTURES_DIR, REPO_ROOT, emit_json, machine_info, pick_device  # noqa: E402

MODELS = {"fsq": DEFAULT_CHECKPOINT / "speech_tokenizer", "vq": DEFAULT_CHECKPOINT / "vq_tokenizer"}


def fixture_speech() -> np.ndarray:
    """All fixture utterances at 16 kHz, joined in manifest order: one float32 ``(T,)`` signal."""
    manifest = FIXTURES_DIR / "manifest.jsonl"
    root = manifest_root(manifest)
    return np.concatenate([load_audio(root / u.path, SAMPLE_RATE) for u in read_manifest(manifest)])


def clips(speech: np.ndarray, seconds: float, count: int) -> list[np.ndarray]:
    """``count`` consecutive, non-overlapping ``seconds``-long windows of ``speech``."""
    n = int(seconds * SAMPLE_RATE)
    if count * n > speech.size:
        raise ValueError(f"the fixtures hold {speech.size / SAMPLE_RATE:.1f} s of audio, "
                         f"not enough for {count} × {seconds} s; ask for shorter clips.")
    return [speech[i * n:(i + 1) * n] for i in range(count)]


def interleaved_medians(fns: dict, repeats: int, sync) -> dict:
    """Median seconds of each zero-argument function; one warm-up each, then they take turns."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def peak_cuda_mib(fn, dev: torch.device) -> float:
    """Peak CUDA memory (MiB) allocated while ``fn`` runs once."""
    torch.cuda.synchronize(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    fn()
    torch.cuda.synchronize(dev)
    return round(torch.cuda.max_memory_allocated(dev) / 2**20, 2)


def maxrss_mib() -> float:
    """Peak resident set of this process so far, MiB (Linux reports KiB, macOS bytes)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (2**20 if sys.platform == "darwin" else 2**10), 1)


def timed_case(models: dict, make_fn, audio_s: float, tokens: int, args, dev, sync) -> dict:
    """Time ``make_fn(model)`` for every model; add RTF, tokens/s, the VQ/FSQ ratio and CUDA peaks."""
    fns = {name: make_fn(m) for name, m in models.items()}
    med = interleaved_medians(fns, args.repeats, sync)
    out = {"audio_seconds": audio_s, "tokens": tokens}
    for name, t in med.items():
        out[name] = {"seconds": round(t, 5), "rtf": round(t / audio_s, 5),
                     "tokens_per_second": round(tokens / t, 1)}
        if dev.type == "cuda":
            out[name]["peak_cuda_mib"] = peak_cuda_mib(fns[name], dev)
    out["vq_over_fsq"] = round(med["vq"] / med["fsq"], 3)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    if args.threads < 1 or args.repeats < 1:
        ap.error("--threads and --repeats must be at least 1.")
    try:
        dev = pick_device(args.device)
    except ValueError as e:  # e.g. --device cuda on a machine without CUDA
        ap.error(str(e))
    torch.set_num_threads(args.threads)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)

    rss_start = maxrss_mib()
    models = {name: SpeechTokenizer.from_pretrained(path, device=dev).eval() for name, path in MODELS.items()}
    speech = fixture_speech()
    result = {"machine": machine_info(), "load_average_1min_at_start": round(os.getloadavg()[0], 2),
              "device": str(dev), "threads": torch.get_num_threads(), "repeats": args.repeats,
              "audio": f"data/fixtures ({speech.size / SAMPLE_RATE:.1f} s of speech, joined)",
              "models": {name: {"checkpoint": str(path.relative_to(REPO_ROOT)),
                                "quantizer": m.cfg.quantizer, "codebook_size": m.codebook_size,
                                "parameters": sum(p.numel() for p in m.parameters())}
                         for (name, path), m in zip(MODELS.items(), models.values())},
              "peak_rss_mib": {"before_loading": rss_start, "after_loading": maxrss_mib()}}
    if dev.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(dev)

    for seconds in (2.0, 5.0, 10.0):
        (wav,) = clips(speech, seconds, 1)
        result[f"single_{seconds:g}s"] = timed_case(
            models, lambda m, w=wav: (lambda: m.encode(w)), seconds, wav.size // 640, args, dev, sync)

    batch = clips(speech, 5.0, 8)
    result["batch_8x5s"] = timed_case(
        models, lambda m: (lambda: m.encode_batch(batch)), 40.0, sum(w.size // 640 for w in batch),
        args, dev, sync)
    b1 = result["single_5s"]
    for name in models:  # throughput gain of one batch of 8 over 8 single calls
        result["batch_8x5s"][name]["speedup_vs_8_single"] = round(
            8 * b1[name]["seconds"] / result["batch_8x5s"][name]["seconds"], 2)

    # Front end vs network on one 5 s clip: features alone, then Encoder1 + quantizer on ready features.
    (wav,) = clips(speech, 5.0, 1)
    x = torch.from_numpy(wav).to(dev)
    split = {"audio_seconds": 5.0}
    with torch.inference_mode():
        fe = interleaved_medians({"features": lambda: tokenizer_features(x)}, args.repeats, sync)["features"]
        for name, m in models.items():
            feats, lengths = m.prepare([wav], SAMPLE_RATE)
            net = interleaved_medians({name: lambda m=m: m.quantize(*m.encoder1(feats, lengths))},
                                      args.repeats, sync)[name]
            split[name] = {"features_seconds": round(fe, 5), "network_seconds": round(net, 5),
                           "features_share": round(fe / (fe + net), 3)}
    result["split_5s"] = split
    result["peak_rss_mib"]["end"] = maxrss_mib()
    return emit_json(result, args.out)


if __name__ == "__main__":
    main()
