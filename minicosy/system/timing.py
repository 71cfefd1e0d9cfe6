"""What one request cost, stage by stage: :class:`Timing` (``MiniCosy.last_timing``).

Stage: system layer — the first-packet latency and real-time factor of CosyVoice 2 §2.5 [1] (the
paper's Table 8 splits them by stage, as this record does). :mod:`minicosy.system.model` fills one
:class:`Timing` per request through the two helpers here, which time an LM draw and a flow step
without changing what they compute.

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §2.5 (latency).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Timing:
    """What one request cost, stage by stage (seconds). ``MiniCosy.last_timing`` holds the latest.

    ``lm_first_token_s`` has one entry per sentence (the prefill and the first draw),
    ``lm_token_s`` one per later token, ``flow_chunk_s`` one per flow block (a sentence offline),
    of which ``flow_prompt_s`` repeats the prompt blocks — one per streamed sentence, computed with
    its first ``P`` tokens; at positions ``flow_prompt_idx``; :meth:`flow_m_chunks` are the others,
    of ``M`` tokens each — ``vocoder_chunk_s`` one per audio chunk. ``tokens`` are the LM's tokens,
    one list per sentence (those the flow received).

    ``lm_s`` is the LM's own compute time; ``lm_wait_s`` the time the flow and vocoder side waited
    for tokens — the LM's share of the critical path (equal to ``lm_s`` in a pull chain, smaller
    when the LM runs ahead in its own thread, ``lm_ahead``). ``first_packet`` splits the first
    packet's latency along that path (:meth:`mark_first_packet`).
    """

    mode: str  # "offline" or "stream"
    prompt_s: float = 0.0
    first_packet_s: float | None = None  # call → first audio (offline: the whole synthesis)
    total_s: float = 0.0
    audio_s: float = 0.0
    lm_s: float = 0.0  # totals per stage
    flow_s: float = 0.0  # prompt blocks included
    lm_wait_s: float = 0.0
    lm_ahead: bool = False
    lm_first_token_s: list = field(default_factory=list)
    lm_token_s: list = field(default_factory=list)
    flow_prompt_s: list = field(default_factory=list)
    flow_prompt_idx: list = field(default_factory=list)
    flow_chunk_s: list = field(default_factory=list)
    vocoder_chunk_s: list = field(default_factory=list)
    tokens: list = field(default_factory=list)
    first_packet: dict = field(default_factory=dict)

    def flow_m_chunks(self) -> list:
        """The flow blocks of ``M`` tokens (``flow_chunk_s`` without the prompt blocks), seconds each."""
        skip = set(self.flow_prompt_idx)
        return [x for i, x in enumerate(self.flow_chunk_s) if i not in skip]

    def mark_first_packet(self, seconds: float) -> None:
        """Record the first packet's latency and its breakdown along the critical path (seconds):
        ``prompt`` (front end), ``lm_wait`` (waiting for tokens: prefill and draws not hidden by
        overlap), ``flow_prompt_block``, ``flow_chunks``, ``vocoder``, ``other`` (the rest: Python,
        copies); plus ``lm_compute`` (the LM's own time so far, overlapped or not) and ``lm_tokens``."""
        self.first_packet_s = seconds
        parts = {"prompt": self.prompt_s, "lm_wait": self.lm_wait_s, "flow_prompt_block": sum(self.flow_prompt_s),
                 "flow_chunks": sum(self.flow_m_chunks()), "vocoder": sum(self.vocoder_chunk_s)}
        parts["other"] = seconds - sum(parts.values())
        self.first_packet = {k: round(v, 5) for k, v in parts.items()}
        self.first_packet.update(lm_compute=round(self.lm_s, 5), lm_tokens=sum(len(t) for t in self.tokens))

    def summary(self) -> dict:
        """Rounded figures for printing or JSON: medians per token and chunk (``flow_per_chunk_s``: blocks of M)."""
        def med(x):
            return round(statistics.median(x), 5) if x else None

        return {
            "mode": self.mode,
            "first_packet_s": None if self.first_packet_s is None else round(self.first_packet_s, 4),
            "total_s": round(self.total_s, 4),
            "audio_s": round(self.audio_s, 3),
            "rtf": round(self.total_s / self.audio_s, 4) if self.audio_s else None,
            "prompt_s": round(self.prompt_s, 4),
            "lm_prefill_s": med(self.lm_first_token_s),
            "lm_per_token_s": med(self.lm_token_s),
            "flow_prompt_block_s": med(self.flow_prompt_s),
            "flow_per_chunk_s": med(self.flow_m_chunks() or self.flow_chunk_s),
            "vocoder_per_chunk_s": med(self.vocoder_chunk_s),
            "n_sentences": len(self.tokens),
            "n_tokens": sum(len(t) for t in self.tokens),
            "n_flow_chunks": len(self.flow_chunk_s),
            "n_audio_chunks": len(self.vocoder_chunk_s),
            "lm_total_s": round(self.lm_s, 4),
            "lm_wait_total_s": round(self.lm_wait_s, 4),
            "lm_ahead": self.lm_ahead,
            "flow_prompt_block_total_s": round(sum(self.flow_prompt_s), 4),
            "flow_total_s": round(self.flow_s, 4),
            "vocoder_total_s": round(sum(self.vocoder_chunk_s), 4),
            "first_packet": dict(self.first_packet),
        }


def timed_tokens(lm_stream, timing: Timing, setup_s: float = 0.0) -> Iterator[int]:
    """Iterate an LM stream, timing each draw (``setup_s``, the request's set-up, is added to the
    first); closing this generator closes the LM request."""
    it, first = iter(lm_stream), True
    try:
        while True:
            t0 = time.perf_counter()
            tok = next(it, None)
            dt = time.perf_counter() - t0 + (setup_s if first else 0.0)
            (timing.lm_first_token_s if first else timing.lm_token_s).append(dt)
            timing.lm_s += dt
            if tok is None:
                return
            first = False
            yield tok
    finally:
        lm_stream.close()  # ends the request now, not at the next cyclic GC


def timed_flow_step(fs, timing: Timing, tokens):
    """``fs.push(tokens)`` (``fs.flush()`` for ``None``) on a flow stream, timed; records the cost
    of the prompt block (``flow_prompt_s``) and of each block of M tokens it ran (``flow_chunk_s``).
    Returns the new mel frames ``(80, k)``."""
    n, in_prompt, t0 = len(fs.chunk_times), fs.done < fs.n_prompt, time.perf_counter()
    mel = fs.flush() if tokens is None else fs.push(tokens)
    timing.flow_s += time.perf_counter() - t0
    new = fs.chunk_times[n:]
    if in_prompt and new:  # the first block of a stream with a prompt is the prompt itself
        _prompt_block(timing, new.pop(0))
    timing.flow_chunk_s += new
    return mel


def timed_prompt_state(flow, p, timing: Timing):
    """``flow.prompt_state`` of a fresh voice's prompt (a ``"clip"`` flow: once per request), timed as its
    prompt block. Returns the :class:`~minicosy.flow.streaming.FlowPromptState` to fork per sentence."""
    t0 = time.perf_counter()
    state = flow.prompt_state(p.flow_tokens, p.flow_mel, p.spk)
    dt = time.perf_counter() - t0
    timing.flow_s += dt
    _prompt_block(timing, dt)
    return state


def _prompt_block(timing: Timing, seconds: float) -> None:
    # a prompt block is a flow block (flow_chunk_s) whose position flow_prompt_idx marks
    timing.flow_prompt_idx.append(len(timing.flow_chunk_s))
    timing.flow_prompt_s.append(seconds)
    timing.flow_chunk_s.append(seconds)
