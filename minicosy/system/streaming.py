"""The streaming runtime of :class:`~minicosy.system.model.MiniCosy`: the LM running ahead of the flow.

Stage: system layer — CosyVoice 2 §2.5 (streaming, first-packet latency) [1]; the official
``CosyVoice2Model.tts`` [2] runs the LM in a thread that fills a token list while the main thread
turns every hop of tokens into audio. Here the same split, with what the official code lacks:

* **a bounded queue** (:class:`RunAhead`): the LM runs at most ``depth`` tokens ahead, so an
  endless text source (an upstream LLM that never stops) costs bounded memory and CPU;
* **one intra-op thread each**: the LM thread runs with one, the flow and the vocoder with the
  rest of ``torch.get_num_threads()`` (set around each step, restored before each yield);
* **exceptions cross over**: an error in the LM thread (a bad text stream) is raised in the
  consumer, at the point where its next token would have been;
* **closing frees at once**: ``close()`` (or garbage collection) of the audio generator stops
  the thread, joins it and closes the LM request and the text source it reads;
* **deterministic**: one thread samples every token in order with the request's generator, so
  the tokens (and the audio) do not depend on how the two threads interleave.

Without ``lm_ahead`` the same events are pulled synchronously (one pull chain: the LM waits while
the flow and the vocoder run) — the only mode with one thread.

Per sentence the consumer starts a flow stream — a fork of ``Prompt.flow_state`` for a registered
voice (with a ``"clip"`` flow its prompt block was computed at registration; a ``"cross"`` flow's
fork computes it with the first tokens); for a fresh voice a ``"clip"`` flow computes the prompt
block once per request, when the first sentence starts (while the LM thread already draws its first
tokens), and forks it per sentence; a ``"cross"`` flow starts a stream from the prompt per sentence.
The first sentence's flow stream may start with a short first chunk of ``F`` tokens (the schedule
the flow was trained with in part: ``first_chunk_tokens``), the later blocks hold ``M``. It pushes
tokens and flushes at the sentence's end; one vocoder stream runs across sentences.

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §2.5.
    [2] FunAudioLLM/CosyVoice, ``cosyvoice/cli/model.py`` (``CosyVoice2Model.tts``: ``llm_job`` thread,
        ``tts_speech_token_dict``).
"""

from __future__ import annotations

import queue
import threading
import time
import warnings
from collections.abc import Callable, Iterator

import numpy as np
import torch

from minicosy.system.frontend import SAMPLE_RATE
from minicosy.system.timing import Timing, timed_flow_step, timed_prompt_state, timed_tokens

JOIN_TIMEOUT_S = 10.0  # close(): how long to wait for the LM thread to finish its current step


class RunAhead:
    """Iterate ``make()`` in a worker thread, at most ``depth`` items ahead of the consumer.

    ``make`` is called *in* the worker (so the generator it returns lives and is closed there);
    iterate this object for its items; an exception in the worker is raised here; :meth:`close`
    stops the worker, joins it and closes the generator.
    """

    def __init__(self, make: Callable[[], Iterator], depth: int, threads: int = 1):
        self._q: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(make, int(threads)), name="minicosy-lm", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _work(self, make, threads: int) -> None:
        torch.set_num_threads(threads)  # this thread's intra-op pool only
        src = None
        try:
            src = make()
            for item in src:
                if not self._put(("item", item)):
                    return
            self._put(("done", None))
        except BaseException as exc:  # noqa: BLE001 — handed to the consumer, raised there
            self._put(("error", exc))
        finally:
            if src is not None:
                src.close()  # the LM request and the text source it reads, in this thread

    def __iter__(self) -> Iterator:
        while True:
            kind, item = self._q.get()
            if kind == "done":
                return
            if kind == "error":
                raise item
            yield item

    def close(self) -> None:
        """Stop the worker after its current step and wait for it (idempotent)."""
        self._stop.set()
        while True:  # a worker blocked on a full queue wakes up, sees the stop flag, returns
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        if self._thread is not threading.current_thread():
            self._thread.join(JOIN_TIMEOUT_S)
            if self._thread.is_alive():
                warnings.warn("the LM thread did not stop within 10 s (a text source blocking in next()?); "
                              "it ends with its current step.", RuntimeWarning, stacklevel=2)


def lm_events(lm_request: Callable, sentences, timing: Timing) -> Iterator[tuple[str, int | None]]:
    """Per sentence ``("start", None)``, ``("token", t)`` …, ``("end", None)``; the LM draws are timed.

    Raises:
        ValueError: an empty text stream (no sentence at all).
    """
    seen = False
    for sentence in sentences:
        seen = True
        yield "start", None
        t0 = time.perf_counter()
        request = lm_request(sentence)  # a fresh voice's LM prefix runs here: counted with the first draw
        toks = timed_tokens(request, timing, setup_s=time.perf_counter() - t0)
        try:
            for tok in toks:
                yield "token", tok
        finally:
            toks.close()  # closes the LM request (its KV cache, the text it reads) now
        yield "end", None
    if not seen:
        raise ValueError("the text stream was empty: give at least one word to speak.")


def waited(events: Iterator, timing: Timing) -> Iterator:
    """``events``, adding the time spent waiting for each to ``timing.lm_wait_s`` (the LM's share of
    the critical path: all of its time in a pull chain, what overlap did not hide when it runs ahead)."""
    it = iter(events)
    while True:
        t0 = time.perf_counter()
        ev = next(it, None)
        timing.lm_wait_s += time.perf_counter() - t0
        if ev is None:
            return
        yield ev


def mel_chunks(flow, p, events: Iterator, M: int, timing: Timing,
               first_chunk_tokens: int | None = None) -> Iterator[torch.Tensor]:
    """LM events → the cached streaming flow, one flow stream per sentence → final mel pieces ``(80, k)``.

    ``first_chunk_tokens``: ``F``, the first sentence's first block after the prompt (``None``: ``M``)."""
    fs, state = None, p.flow_state
    for kind, tok in events:
        if kind == "start":
            F = first_chunk_tokens if fs is None else None  # the short block: the first sentence's only
            with torch.inference_mode():
                if state is None and flow.cacheable_prompt and p.flow_tokens is not None and len(p.flow_tokens):
                    state = timed_prompt_state(flow, p, timing)  # a fresh voice: the prompt block once per request
                fs = state.fork(M, first_chunk_tokens=F) if state is not None else flow.stream(
                    p.flow_tokens, p.flow_mel, p.spk, chunk_tokens=M, first_chunk_tokens=F)
            timing.tokens.append([])
            continue
        if kind == "token":
            timing.tokens[-1].append(tok)
        mel = timed_flow_step(fs, timing, [tok] if kind == "token" else None)  # frames once M + P tokens are in
        if mel.shape[1]:
            yield mel


class _Threads:
    """``torch.set_num_threads(n)`` while inside, the caller's count restored on leaving (None: unchanged)."""

    def __init__(self, n: int | None):
        self.n, self.was = n, None

    def __enter__(self):
        if self.n is not None:
            self.was = torch.get_num_threads()
            torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        if self.was is not None:
            torch.set_num_threads(self.was)


def stream_audio(model, p, sentences, seed: int, M: int, timing: Timing, t_start: float,
                 lm_ahead: bool, first_chunk_tokens: int | None = None) -> Iterator[np.ndarray]:
    """The body of ``MiniCosy.stream`` (a generator: nothing runs before the first ``next``)."""
    gen = torch.Generator().manual_seed(seed)
    threads = torch.get_num_threads()
    timing.lm_ahead = lm_ahead

    def make():
        return lm_events(lambda s: model._lm_stream(p, s, True, gen), sentences, timing)

    ahead = RunAhead(make, depth=4 * (M + model.flow.cfg.lookahead)) if lm_ahead else None
    src = ahead if ahead is not None else make()
    events = waited(src, timing)
    mels = mel_chunks(model.flow, p, events, M, timing, first_chunk_tokens)
    audio = model.vocoder.stream(mels)  # one vocoder stream across sentences: continuous joins
    try:
        while True:
            t0, upstream = time.perf_counter(), timing.lm_wait_s + timing.flow_s
            with _Threads(max(1, threads - 1) if lm_ahead else None):  # the LM thread has the other core
                wav = next(audio, None)  # pulls LM tokens and flow chunks as it needs them
            if wav is None:
                break
            # the vocoder's share: this wait minus the LM wait and the flow inside it
            timing.vocoder_chunk_s.append(
                max(0.0, time.perf_counter() - t0 - (timing.lm_wait_s + timing.flow_s - upstream))
            )
            out = wav.float().cpu().numpy()
            if timing.first_packet_s is None:
                timing.mark_first_packet(time.perf_counter() - t_start)
            timing.audio_s += len(out) / SAMPLE_RATE
            timing.total_s = time.perf_counter() - t_start
            yield out
    finally:  # also on close(): stop the LM thread, drop every cache of this request now
        audio.close()
        mels.close()
        events.close()
        src.close()  # RunAhead: stops and joins the thread, which closes the LM request
        timing.total_s = time.perf_counter() - t_start
