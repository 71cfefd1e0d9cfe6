"""Benchmark: the whole pipeline — first-packet latency, RTF offline and streaming, cost per stage.

CosyVoice 2 §2.5 reports streaming latency as first-packet time (prompt processing, LM up to the
first M + P tokens, one flow chunk, one vocoder chunk). This measures the same on
:class:`minicosy.system.model.MiniCosy`, zero-shot (ICL) with the held-out fixture clip nearest 3 s:

* ``first_packet_s`` — ``stream(text, voice)``, seconds from the call to the first audio chunk, for
  a **fresh** voice (the recording processed in the request), a **registered** one
  (``register_voice``: tokens, mel, speaker vector and the LM's prefix cache computed once), the
  registered voice with its LM prefix **re-run** per request (what the official runtime does
  with ``add_zero_shot_spk``), the registered voice as a **pull chain** (``lm_ahead=False``:
  the LM waits while the flow and the vocoder run), and the fresh and registered voice with a **short
  first chunk** (``first_chunk_tokens=F``, ``--first-chunk``; ``first_chunk`` records F and the first
  packet's audio seconds, 2F − H frames, beside the uniform schedule's 2M − H);
* ``first_packet_breakdown`` — the first packet's critical path by stage (``Timing.first_packet``:
  prompt, LM wait, the flow's prompt block, flow chunks, vocoder, other; LM compute beside it);
* ``rtf``            — synthesis seconds / audio seconds, ``synthesize`` (offline) and ``stream``;
* ``stages``         — prompt processing, LM prefill (first draw), LM per token, the flow's prompt
  block, flow per chunk, vocoder per chunk (medians from the stream's :class:`~minicosy.system.timing.Timing`);
* ``long_text``      — one stream over ``--long-sentences`` sentences (30 ≈ 60 s of audio): the wall
  time between audio chunks and the flow's cost per chunk, by quarter of the chunk index (flat =
  cost per chunk does not grow, the point of the cached flow and of one vocoder stream across sentences).

Uses the checkpoints in ``--checkpoint`` (default ``data/pretrained/tiny``); stages that are not
trained yet are replaced by random-init ``tiny()`` models (:func:`minicosy.testing.write_untrained_checkpoint`)
and the JSON says so — their *costs* are those of the trained models, their *lengths* are not
(a random LM stops at a random EOS or at the length cap). Each figure is the median of
``--repeats`` runs after a warm-up, on ``--threads`` intra-op threads (1 by default: the CI machine
is shared; with 2 the LM runs ahead in its own thread, one thread each).

Usage:
    python benchmarks/streaming.py [--checkpoint DIR] [--repeats 3] [--threads 1] [--long-sentences 6]
                                   [--first-chunk 10] [--out f.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from minicosy.data.corpus import HELDOUT_VOICES  # noqa: E402
from minicosy.system.frontend import VoiceReference  # noqa: E402
from minicosy.system.model import STAGES, MiniCosy  # noqa: E402
from minicosy.testing import write_untrained_checkpoint  # noqa: E402
from minicosy.utils import DEFAULT_CHECKPOINT, FIXTURES_DIR, emit_json, machine_info  # noqa: E402

TEXT = "The quick brown fox jumps over the lazy dog."
LONG = ["Please open the window before the rain starts.", "We walked to the station and waited an hour.",
        "My sister bought three apples at the market.", "The teacher asked a simple question about numbers.",
        "Nobody knew why the old clock stopped at noon.", "They will visit the museum next summer."]


def prompt_clip(target_s: float = 3.0) -> tuple[Path, str, float]:
    """The held-out fixture clip (path, transcript, seconds) whose length is nearest ``target_s``."""
    rows = [json.loads(line) for line in (FIXTURES_DIR / "manifest.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["voice"] in HELDOUT_VOICES] or rows
    r = min(rows, key=lambda r: abs(r["duration"] - target_s))
    return FIXTURES_DIR / r["path"], r["text"], r["duration"]


def checkpoint(path: Path, tmp: str) -> tuple[Path, list[str]]:
    """``path`` if every stage is there, else a folder with random-init stand-ins for the missing ones."""
    missing = [s for s in STAGES if not (path / f"{s}.safetensors").is_file()]
    if not missing:
        return path, []
    out = write_untrained_checkpoint(Path(tmp) / "ckpt", "tiny")
    for s in STAGES:  # keep the trained stages that exist
        if s not in missing:
            for ext in (".json", ".safetensors"):
                (out / f"{s}{ext}").unlink(missing_ok=True)
                (out / f"{s}{ext}").symlink_to((path / f"{s}{ext}").resolve())
    return out, missing


def med(xs) -> float | None:
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), 5) if xs else None


def run_stream(model: MiniCosy, text, voice, seed: int, **kw) -> tuple[dict, list[float]]:
    """One stream to the end: its timing and the wall seconds before each chunk."""
    gaps, t = [], time.perf_counter()
    for _ in model.stream(text, voice, seed=seed, **kw):
        now = time.perf_counter()
        gaps.append(now - t)
        t = now
    return model.last_timing, gaps


def quarters(xs: list[float]) -> list[float | None]:
    n = len(xs)
    return [med(xs[i * n // 4:(i + 1) * n // 4]) for i in range(4)] if n >= 4 else [med(xs)]


def breakdown(summaries: list[dict]) -> dict:
    """The median of each first-packet part over the runs."""
    keys = summaries[0]["first_packet"].keys()
    return {k: med(s["first_packet"][k] for s in summaries) for k in keys}


def latencies(model: MiniCosy, voice, repeats: int, first_chunk: int) -> dict:
    """Stream summaries per variant: fresh, registered, registered with its prefix re-run, pull chain,
    and fresh / registered with a first chunk of ``first_chunk`` tokens."""
    reg = model.register_voice("bench", voice)
    # a new object each time: the registered object itself would find its snapshot
    variants = {"fresh": lambda: {"voice": VoiceReference(voice.audio, voice.sample_rate, voice.transcript)},
                "registered": lambda: {"voice": "bench"},
                # a copy without its LM prefix cache: the request re-runs the prefix (the official runtime)
                "registered_prefix_rerun": lambda: {"voice": dataclasses.replace(reg, lm_prefix={})},
                "registered_pull_chain": lambda: {"voice": "bench", "lm_ahead": False},
                "fresh_first_chunk": lambda: {"voice": VoiceReference(voice.audio, voice.sample_rate, voice.transcript),
                                              "first_chunk_tokens": first_chunk},
                "registered_first_chunk": lambda: {"voice": "bench", "first_chunk_tokens": first_chunk}}
    out = {k: [] for k in variants}
    for _ in range(repeats):  # interleaved: a burst of load hits every variant alike
        for name, kw in variants.items():
            out[name].append(run_stream(model, TEXT, seed=0, **kw())[0].summary())
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--long-sentences", type=int, default=6, help="sentences of the long text (30 ≈ 60 s of audio)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--first-chunk", type=int, default=10,
                    help="F of the short-first-chunk variants (2F must exceed the vocoder's hold-back H to sound)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        ckpt, random_init = checkpoint(Path(args.checkpoint), tmp)
        model = MiniCosy.from_pretrained(ckpt, device=args.device)
    path, transcript, seconds = prompt_clip()
    voice = VoiceReference.from_file(path, transcript)
    result = {"machine": machine_info(), "load_average_1min_at_start": round(os.getloadavg()[0], 2),
              "checkpoint": args.checkpoint, "random_init_stages": random_init,
              "note": ("random-init stand-ins for " + ", ".join(random_init) + ": costs are real, lengths are not")
              if random_init else "trained checkpoints", "device": str(model.device), "threads": args.threads,
              "lm_ahead": args.threads >= 2, "repeats": args.repeats, "prompt": {"clip": path.name, "seconds": seconds},
              "flow_chunk_tokens": model.flow.cfg.chunk_tokens, "flow_lookahead": model.flow.cfg.lookahead,
              "parameters": {"lm": model.lm.num_parameters(), "flow": model.flow.num_parameters(),
                             "vocoder": model.vocoder.num_parameters()}}

    run_stream(model, TEXT, voice, 0)  # warm-up (librosa's resampler, allocations)
    model.synthesize(TEXT, voice)
    runs = latencies(model, voice, args.repeats, args.first_chunk)
    hold = model.vocoder.cfg.stream_lookahead
    first_audio = {name: len(next(iter(model.stream(TEXT, "bench", seed=0, first_chunk_tokens=f)))) / 24000
                   for name, f in (("uniform", None), ("first_chunk", args.first_chunk))}
    result["first_chunk"] = {"F": args.first_chunk, "M": model.flow.cfg.chunk_tokens, "vocoder_hold_frames": hold,
                             "first_packet_audio_s": first_audio}
    streams = runs["registered"]
    offline = [(model.synthesize(TEXT, "bench", seed=0), model.last_timing.summary())[1] for _ in range(args.repeats)]
    result["first_packet_s"] = {k: med(s["first_packet_s"] for s in v) for k, v in runs.items()}
    result["first_packet_breakdown"] = {k: breakdown(runs[k]) for k in (
        "fresh", "registered", "fresh_first_chunk", "registered_first_chunk")}
    # prompt_s of the re-run variant holds its LM prefix; the prefill after it is the same in both
    result["lm_prefix"] = {
        k: {"prompt_s": med(s["prompt_s"] for s in runs[v]), "lm_prefill_s": med(s["lm_prefill_s"] for s in runs[v])}
        for k, v in (("forked", "registered"), ("rerun", "registered_prefix_rerun"))
    }
    result["rtf"] = {"offline": med(s["rtf"] for s in offline), "stream": med(s["rtf"] for s in streams),
                     "stream_pull_chain": med(s["rtf"] for s in runs["registered_pull_chain"]),
                     "audio_s_offline": offline[0]["audio_s"], "audio_s_stream": streams[0]["audio_s"]}
    result["stages"] = {k: med(s[k] for s in streams) for k in (
        "prompt_s", "lm_prefill_s", "lm_per_token_s", "flow_prompt_block_s", "flow_per_chunk_s", "vocoder_per_chunk_s")}
    result["stages"]["fresh_prompt_s"] = med(s["prompt_s"] for s in runs["fresh"])
    result["stages"]["offline_flow_per_sentence_s"] = med(s["flow_per_chunk_s"] for s in offline)
    result["stages"]["offline_vocoder_s"] = med(s["vocoder_per_chunk_s"] for s in offline)

    long = " ".join(LONG[i % len(LONG)] for i in range(args.long_sentences))
    timing, gaps = run_stream(model, long, "bench", 1)
    s = timing.summary()
    result["long_text"] = {"sentences": s["n_sentences"], "tokens": s["n_tokens"], "audio_s": s["audio_s"],
                           "rtf": s["rtf"], "audio_chunks": len(gaps),
                           "seconds_between_chunks_by_quarter": quarters(gaps[1:]),  # the first one is the latency
                           "flow_per_chunk_by_quarter": quarters(timing.flow_m_chunks()),
                           "flow_prompt_block_by_quarter": quarters(timing.flow_prompt_s),
                           "vocoder_per_chunk_by_quarter": quarters(timing.vocoder_chunk_s)}
    fp = result["first_packet_s"]
    result["targets"] = {"first_packet_fresh_le_0.150": fp["fresh"] <= 0.150,
                         "first_packet_registered_le_0.100": fp["registered"] <= 0.100,
                         "first_packet_fresh_first_chunk_le_0.150": fp["fresh_first_chunk"] <= 0.150,
                         "first_packet_registered_first_chunk_le_0.100": fp["registered_first_chunk"] <= 0.100,
                         "rtf_offline_le_0.2": result["rtf"]["offline"] <= 0.2,
                         "rtf_stream_le_0.2": result["rtf"]["stream"] <= 0.2}
    return emit_json(result, args.out)


if __name__ == "__main__":
    main()
