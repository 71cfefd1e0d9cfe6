"""Benchmark: text-speech LM decoding speed — prefill, KV-cached steps vs recomputing the prefix.

Cases (tiny preset; the committed checkpoint if there is one, else random weights — the cost
does not depend on the weights, and the JSON says which):

* ``prefill_ms``        — one pass over a zero-shot prefix: ``[SOS]`` + prompt text + text
  (``--text-chars`` characters) + ``[TASK]`` + a 3 s prompt (75 speech tokens);
* ``step_ms``           — per context length L in ``--lengths``: one new token with the KV cache
  (``cached``) vs one full forward over all L + 1 positions (``recompute``, what decoding
  without a cache costs), and tokens/s with the cache;
* ``generate_tokens_per_s`` — an end-to-end :func:`minicosy.lm.generate.generate` run of
  ``--gen-tokens`` tokens (EOS masked so the length is fixed).

CPU timings with all torch threads and with one thread; on a CUDA machine the cached step and
prefill are timed on the GPU too. ``--paper`` adds the parameter count of the paper preset
(built on the meta device: no memory, no timing). Prints one JSON object.

Usage:
    python benchmarks/lm.py [--lengths 50 100 200 400] [--repeats 5] [--out f.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from minicosy.lm.generate import generate  # noqa: E402
from minicosy.lm.model import LMConfig, TextSpeechLM  # noqa: E402
from minicosy.lm.sampling import SamplingConfig  # noqa: E402
from minicosy.lm.sequence import KINDS  # noqa: E402
from minicosy.utils import DEFAULT_CHECKPOINT, emit_json, machine_info  # noqa: E402


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


def prefix(model: TextSpeechLM, n_text: int, n_speech: int, dev) -> tuple[torch.Tensor, torch.Tensor]:
    """``[SOS] text [TASK] speech`` as (1, L) kinds and ids."""
    kinds = [KINDS["sos"]] + [KINDS["text"]] * n_text + [KINDS["task"]] + [KINDS["speech"]] * n_speech
    g = torch.Generator().manual_seed(0)
    ids = [0] + torch.randint(2, 36, (n_text,), generator=g).tolist() + [0] \
        + torch.randint(0, model.cfg.codebook_size, (n_speech,), generator=g).tolist()
    return torch.tensor([kinds], device=dev), torch.tensor([ids], device=dev)


@torch.inference_mode()
def cases(model: TextSpeechLM, args, sync=None) -> dict:
    dev = model.device
    out = {}
    kinds, ids = prefix(model, args.text_chars, 75, dev)
    t = median_seconds(lambda: model(kinds, ids, cache=model.new_cache()), args.repeats, sync)
    out["prefill_ms"] = {"positions": kinds.shape[1], "ms": round(1000 * t, 2)}
    steps = {}
    for L in args.lengths:
        kinds, ids = prefix(model, min(args.text_chars, L - 2), max(0, L - 2 - args.text_chars), dev)
        cache = model.new_cache()
        model(kinds[:, :-1], ids[:, :-1], cache=cache)

        def cached_step():
            model(kinds[:, -1:], ids[:, -1:], cache=cache)
            cache.crop(-1)  # drop the new position again: every repeat sees L - 1 cached

        t_c = median_seconds(cached_step, args.repeats, sync)
        t_r = median_seconds(lambda: model(kinds, ids), args.repeats, sync)
        steps[str(L)] = {"cached_ms": round(1000 * t_c, 3), "recompute_ms": round(1000 * t_r, 3),
                         "speedup": round(t_r / t_c, 2), "cached_tokens_per_s": round(1 / t_c, 1)}
    out["step_ms"] = steps
    text = torch.randint(8, 34, (args.text_chars,), generator=torch.Generator().manual_seed(1)).tolist()
    sampling = SamplingConfig(min_ratio=args.gen_tokens / len(text), max_ratio=args.gen_tokens / len(text))

    def run():
        return generate(model, text, sampling=sampling, generator=torch.Generator().manual_seed(0)).run()

    t = median_seconds(run, max(1, args.repeats // 2), sync)
    out["generate_tokens_per_s"] = {"tokens": args.gen_tokens, "seconds": round(t, 3),
                                    "tokens_per_s": round(args.gen_tokens / t, 1)}
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[50, 100, 200, 400])
    ap.add_argument("--text-chars", type=int, default=60, help="characters of text in the prefix")
    ap.add_argument("--gen-tokens", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--paper", action="store_true", help="also count the paper preset's parameters")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    pretrained = (DEFAULT_CHECKPOINT / "lm.safetensors").is_file()
    if pretrained:
        model = TextSpeechLM.from_pretrained(device="cpu")
    else:
        torch.manual_seed(0)
        model = TextSpeechLM(LMConfig.tiny()).eval()
    result = {"machine": machine_info(), "load_average_1min_at_start": round(os.getloadavg()[0], 2),
              "weights": "data/pretrained/tiny/lm" if pretrained else "random (tiny preset, no checkpoint found)",
              "tiny_parameters": model.num_parameters(), "prompt_speech_tokens": 75, "text_chars": args.text_chars,
              "repeats": args.repeats, "cpu": {}}
    threads = torch.get_num_threads()
    result["cpu"][f"{threads}_threads"] = cases(model, args)
    if threads != 1:
        torch.set_num_threads(1)
        result["cpu"]["1_thread"] = cases(model, args)
        torch.set_num_threads(threads)
    if args.paper:
        with torch.device("meta"):
            big = TextSpeechLM(LMConfig.paper())
        result["paper_parameters"] = big.num_parameters()
    if torch.cuda.is_available():
        dev = torch.device("cuda")
        result["cuda"] = {
            "device": torch.cuda.get_device_name(dev),
            **cases(model.to(dev), args, torch.cuda.synchronize),
        }
    return emit_json(result, args.out)


if __name__ == "__main__":
    main()
