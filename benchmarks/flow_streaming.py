"""Benchmark: streaming flow matching — cached chunks vs the official re-run-the-prefix baseline.

Per chunk of ``M`` tokens (``2M`` mel frames; M = the preset's ``chunk_tokens``, plus ``P``
lookahead tokens), the time to produce its final frames at chunk index 1, 2, 5, 20 and 40:

* ``cached``    — :class:`minicosy.flow.streaming.FlowStream` ``mode="cached"``: only the new
  chunk runs, against the attention keys/values and conv states kept per ODE step. The cost
  should stay flat with the chunk index (attention over a longer cache grows, slowly).
* ``recompute`` — ``mode="recompute"``, the official runtime: the whole prefix is re-synthesised
  with the same noise and the new frames kept. The cost grows with the chunk index.

Both give the same frames (tested in ``tests/test_flow_model.py``). Also the offline real-time
factor of a whole utterance (non-causal mask; RTF = seconds of compute / seconds of audio). Each
figure is the median of ``--repeats`` runs after a warm-up; 10 Euler steps with guidance (two
estimator passes a step), as at inference. Uses ``data/pretrained/tiny/flow`` when it exists,
otherwise a randomly initialised tiny model (the cost does not depend on the weights; the JSON
says which). Prints one JSON object.

``prompt`` part (``--parts prompt``): what a request pays for the prompt block, on a randomly
initialised tiny flow with ``prompt_lookahead="clip"`` (the committed flow predates it; the cost
does not depend on the weights), with a ``--prompt-seconds`` prompt:

* ``prompt_block_ms`` — per request without a precomputed state: validate the prompt and run its
  block (encoder + 10 ODE steps × 2) — what every sentence pays today;
* ``fork_ms`` — per request with ``model.prompt_state(...)`` computed once per voice: ``state.fork``;
  ``state_once_ms`` — that one-time computation;
* ``first_chunk`` — the first generated block with ``F = ⌈M/3⌉`` vs ``F = M``: its compute (ms),
  the tokens it waits for (``F + P``), and ``first_mel_ms`` = fork + that block (request → first
  mel, tokens already there); ``legacy_first_mel_ms``: the same weights as a ``"cross"`` flow
  (prompt block + first chunk of M after M + P tokens, every request).

Usage:
    python benchmarks/flow_streaming.py [--repeats 3] [--chunks 1 2 5 20 40] [--seconds 10] [--threads N]
                                        [--parts chunks prompt] [--prompt-seconds 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from minicosy.flow.model import ChunkAwareFlow, FlowConfig  # noqa: E402
from minicosy.flow.streaming import FlowStream  # noqa: E402
from minicosy.utils import DEFAULT_CHECKPOINT, emit_json, machine_info  # noqa: E402


def cached_chunk_seconds(model, tokens: torch.Tensor, M: int, P: int, n_chunks: int) -> list[float]:
    """Stream ``tokens`` one chunk at a time; seconds spent on each chunk (index 0 … n_chunks − 1)."""
    st = FlowStream(model, chunk_tokens=M, mode="cached")
    st.push(tokens[: M + P])  # chunk 0 becomes final once its lookahead is in
    for k in range(1, n_chunks):
        st.push(tokens[k * M + P: (k + 1) * M + P])
    return st.chunk_times[:n_chunks]


def recompute_chunk_seconds(model, tokens: torch.Tensor, M: int, k: int) -> float:
    """Seconds to produce chunk ``k`` the official way (the prefix run is stateless: time it alone)."""
    st = FlowStream(model, chunk_tokens=M, mode="recompute")
    st.tokens = model.check_tokens(tokens)
    t0 = time.perf_counter()
    st._block(k * M, (k + 1) * M)
    return time.perf_counter() - t0


def median_ms(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` in ms over ``repeats`` runs, after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(1000 * statistics.median(times), 2)


def prompt_costs(repeats: int, prompt_seconds: float) -> dict:
    """The ``prompt`` part (see the module docstring): prompt block per request, fork, first chunk F vs M."""
    torch.manual_seed(0)
    model = ChunkAwareFlow(FlowConfig.tiny(prompt_lookahead="clip")).eval()
    legacy = ChunkAwareFlow(dataclasses.replace(model.cfg, prompt_lookahead="cross")).eval()
    legacy.load_state_dict(model.state_dict())
    cfg, g = model.cfg, torch.Generator().manual_seed(1)
    M, P, Tp = cfg.chunk_tokens, cfg.lookahead, int(prompt_seconds * 25)
    ptoks = torch.randint(0, cfg.vocab_size, (Tp,), generator=g)
    pmel, spk = torch.randn(cfg.n_mels, 2 * Tp, generator=g) - 5, torch.randn(cfg.spk_dim, generator=g)
    toks = torch.randint(0, cfg.vocab_size, (2 * M + P,), generator=g)
    out = {"weights": "random (tiny preset, prompt_lookahead='clip')", "prompt_tokens": Tp,
           "prompt_seconds": Tp / 25, "chunk_tokens": M, "lookahead_tokens": P, "repeats": repeats}
    with torch.inference_mode():
        out["prompt_block_ms"] = median_ms(lambda: model.stream(ptoks, pmel, spk).push([]), repeats)
        out["state_once_ms"] = median_ms(lambda: model.prompt_state(ptoks, pmel, spk), repeats)
        state = model.prompt_state(ptoks, pmel, spk)
        out["fork_ms"] = median_ms(lambda: state.fork(M), repeats)
        out["prompt_speedup"] = round(out["prompt_block_ms"] / max(out["fork_ms"], 1e-3), 1)
        out["first_chunk"] = {}
        for name, F in (("F=ceil(M/3)", math.ceil(M / 3)), ("F=M", M)):
            blocks = []

            def first(F=F):
                fs = state.fork(M, F)
                fs.push(toks[: F + P])
                blocks.append(fs.chunk_times[0])

            total = median_ms(first, repeats)
            out["first_chunk"][name] = {"F": F, "tokens_needed": F + P, "audio_seconds": 2 * F / 50,
                                        "block_ms": round(1000 * statistics.median(blocks[1:]), 2),
                                        "first_mel_ms": total}
        out["legacy_first_mel_ms"] = median_ms(lambda: legacy.stream(ptoks, pmel, spk).push(toks[: M + P]), repeats)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--chunks", type=int, nargs="+", default=[1, 2, 5, 20, 40], help="chunk indices to time")
    ap.add_argument("--seconds", type=float, default=10.0, help="utterance length for the offline RTF")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--parts", nargs="+", choices=["chunks", "prompt"], default=["chunks", "prompt"])
    ap.add_argument("--prompt-seconds", type=float, default=3.0, help="prompt length of the prompt part")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = {"machine": machine_info(), "load_average_1min_at_start": round(os.getloadavg()[0], 2),
              "threads": torch.get_num_threads()}
    if "prompt" in args.parts:
        result["prompt"] = prompt_costs(args.repeats, args.prompt_seconds)
    if "chunks" in args.parts:
        result.update(chunk_costs(args))
    return emit_json(result, args.out)


def chunk_costs(args) -> dict:
    """The ``chunks`` part: cached vs recompute per chunk index, and the offline RTF."""
    pretrained = (DEFAULT_CHECKPOINT / "flow.safetensors").is_file()
    if pretrained:
        model = ChunkAwareFlow.from_pretrained(device="cpu")
    else:  # the vocabulary of the committed speech tokenizer, as training would use
        from minicosy.speech_tokenizer.model import SpeechTokenizer

        torch.manual_seed(0)
        vocab = SpeechTokenizer.from_pretrained(device="cpu").codebook_size
        model = ChunkAwareFlow(FlowConfig.tiny(vocab_size=vocab)).eval()
    cfg = model.cfg
    M, P, up = cfg.chunk_tokens, cfg.lookahead, cfg.up
    n_chunks = max(args.chunks) + 1
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, cfg.vocab_size, (n_chunks * M + P,), generator=g)
    chunk_audio_s = M * up / 50

    result = {"weights": "data/pretrained/tiny/flow" if pretrained else "random (tiny preset; no checkpoint yet)",
              "parameters": model.num_parameters(), "chunk_tokens": M, "lookahead_tokens": P,
              "chunk_audio_seconds": chunk_audio_s, "n_steps": 10, "guidance": 0.7, "repeats": args.repeats}
    with torch.inference_mode():
        cached_chunk_seconds(model, tokens, M, P, 2)  # warm-up
        runs = [cached_chunk_seconds(model, tokens, M, P, n_chunks) for _ in range(args.repeats)]
        result["cached_ms_per_chunk"] = {str(k): round(1000 * statistics.median(r[k] for r in runs), 2)
                                         for k in args.chunks}
        recompute_chunk_seconds(model, tokens, M, 1)  # warm-up
        result["recompute_ms_per_chunk"] = {
            str(k): round(1000 * statistics.median(recompute_chunk_seconds(model, tokens, M, k)
                                                   for _ in range(args.repeats)), 2) for k in args.chunks}
        result["speedup_at_chunk"] = {str(k): round(result["recompute_ms_per_chunk"][str(k)]
                                                    / result["cached_ms_per_chunk"][str(k)], 2) for k in args.chunks}
        result["cached_chunk_rtf"] = {k: round(v / 1000 / chunk_audio_s, 4)
                                      for k, v in result["cached_ms_per_chunk"].items()}
        n_tok = int(args.seconds * 25)
        utt = tokens[:n_tok] if n_tok <= len(tokens) else torch.randint(0, cfg.vocab_size, (n_tok,), generator=g)
        model.inference(utt[:25])  # warm-up
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            model.inference(utt)
            times.append(time.perf_counter() - t0)
        t = statistics.median(times)
        result["offline"] = {"audio_seconds": n_tok * up / 50, "seconds": round(t, 4),
                             "rtf": round(t / (n_tok * up / 50), 4)}
    return result


if __name__ == "__main__":
    main()
