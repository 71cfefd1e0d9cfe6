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

Usage:
    python benchmarks/flow_streaming.py [--repeats 3] [--chunks 1 2 5 20 40] [--seconds 10] [--threads N]
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


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--chunks", type=int, nargs="+", default=[1, 2, 5, 20, 40], help="chunk indices to time")
    ap.add_argument("--seconds", type=float, default=10.0, help="utterance length for the offline RTF")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

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

    result = {"machine": machine_info(), "load_average_1min_at_start": round(os.getloadavg()[0], 2),
              "weights": "data/pretrained/tiny/flow" if pretrained else "random (tiny preset; no checkpoint yet)",
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
    return emit_json(result, args.out)


if __name__ == "__main__":
    main()
