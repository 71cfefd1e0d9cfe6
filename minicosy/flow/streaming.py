"""Streaming flow matching: mel chunk by chunk as tokens arrive, equal to the offline chunk-masked run.

Stage: flow matching, streaming mode (docs/paper_vs_code.md §2 "Streaming runtime"), CosyVoice 2 §2.4–2.5.

Why chunked = offline, exactly. Offline with the chunk mask (``mask="chunk"``, chunk ``M`` tokens
= ``2M`` frames, the prompt as one first block), the output frames of chunk ``k`` depend only on

* tokens up to the end of chunk ``k`` plus ``P`` more (the lookahead conv; attention and the
  causal convs never look further right than the end of the chunk);
* the noise of frames up to the end of chunk ``k`` (one fixed tensor, sliced by absolute frame);
* at ODE step ``i``, the state ``x_i`` of frames up to the end of chunk ``k`` — which, by the same
  argument at step ``i − 1``, depends on nothing later either.

So once ``M + P`` new tokens are in, chunk ``k`` can be computed completely and will never change.
Two ways to compute it:

* ``mode="cached"`` (minicosy): run only the new chunk's tokens and frames, with the keys/values
  of every attention layer and the left inputs of every causal conv kept from earlier chunks — the
  encoder's once, the estimator's **once per ODE step** (step ``i`` attends to earlier chunks' keys
  *at step i*; the guidance pair is one batch of two). Each chunk then costs about the same.
* ``mode="recompute"`` (the official runtime): re-run the whole prefix offline with the same
  noise and keep the new frames. The same numbers, at a cost that grows with every chunk.

``FlowStream.push(tokens)`` returns the frames that became final (possibly none) and
``flush()`` ends the utterance (the last chunk's lookahead is past the end: zeros, as offline).

**The prompt block, once per voice.** With ``FlowConfig.prompt_lookahead="clip"`` the prompt's
lookahead stops at its last token (zeros after it, offline and in training alike), and under the
chunk mask prompt positions attend only to the prompt: the prompt block's encoder state and its
estimator state at every ODE step depend on the prompt, the speaker and the fixed noise — on no
generated token. :meth:`FlowPromptState.compute` (``model.prompt_state(...)``) runs it once;
``state.fork(M, F)`` starts a stream at the first generated token. A fork copies the cache
*dicts* and shares their tensors, which nothing writes in place (attention and conv caches grow by
``torch.cat``, a new tensor), so any number of streams fork one state, concurrently, and each
equals a stream built from the prompt. A ``"cross"`` checkpoint's prompt block needs the first ``P``
generated tokens; its state only holds the validated inputs and each fork computes the block.

**The chunk schedule.** ``first_chunk_tokens=F``: the first block after the prompt holds ``F``
tokens, the later ones ``M`` (the paper's advice: a short first chunk, larger ones after) — the
first packet needs ``F + P`` tokens instead of ``M + P``. Offline, ``inference(mask="chunk",
first_chunk_tokens=F)`` is the same mask (:func:`minicosy.flow.masks.block_ends`), so streamed =
offline holds for every schedule.

Per request with a precomputed state::

    state = flow.prompt_state(prompt_tokens, prompt_mel, speaker)   # once per voice
    fs = state.fork(chunk_tokens=M, first_chunk_tokens=F)           # per sentence (≈ free)
    mel = fs.push(tokens) … fs.flush()

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §2.4 (chunk-aware flow), §2.5 (streaming latency).
    [2] Official code: ``cosyvoice/cli/model.py`` (``token2wav`` re-runs the prefix per hop),
        ``cosyvoice/flow/flow_matching.py`` (fixed ``rand_noise``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import torch

from minicosy.flow.matching import GUIDANCE, N_STEPS

MODES = ("cached", "recompute")


def positive_int(value, name: str) -> int:
    """``value`` as an ``int`` ≥ 1, else a ``ValueError`` naming ``name`` (sizes: chunks, steps)."""
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(f"{name} must be an integer ≥ 1, got {value!r}.")
    return int(value)


def fork_cache(cache):
    """A copy of a (nested) cache of dicts and lists whose tensors are shared, not copied.

    Safe because no cache tensor is ever written in place: :class:`~minicosy.nn.Attention` and
    :class:`~minicosy.flow.model.CausalConv1d` *replace* their entries with new tensors.
    """
    if isinstance(cache, dict):
        return {k: fork_cache(v) for k, v in cache.items()}
    if isinstance(cache, list):
        return [fork_cache(v) for v in cache]
    return cache


@dataclass
class FlowPromptState:
    """Everything a stream needs before its first generated token, computed once per voice.

    Build it with :meth:`compute` (``model.prompt_state(...)``), start streams with :meth:`fork`.
    Read-only once built: forks copy its cache dicts and never write its tensors.

    Attributes:
        tokens: ``(1, T_p)`` prompt token ids; n_prompt: ``T_p``.
        prompt: ``(1, n_mels, up·T_p)`` normalised prompt mel; spk: ``(1, n_mels)`` projected speaker.
        n_steps, guidance: the solver settings the caches were computed with (every fork uses them).
        done: prompt tokens already computed: ``T_p`` (precomputed) or 0 (a ``"cross"`` checkpoint).
        enc_cache, step_caches: the encoder's and the estimator's (one per ODE step) caches after the
            prompt block.
        seconds: the time :meth:`compute` took.
    """

    model: object
    tokens: torch.Tensor
    n_prompt: int
    prompt: torch.Tensor
    spk: torch.Tensor
    n_steps: int = N_STEPS
    guidance: float = GUIDANCE
    done: int = 0
    enc_cache: dict = field(default_factory=dict)
    step_caches: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def precomputed(self) -> bool:
        """True when forks start after the prompt block (always, without a prompt)."""
        return self.done == self.n_prompt

    @classmethod
    def prepare(cls, model, prompt_tokens=None, prompt_mel=None, speaker=None, n_steps: int = N_STEPS,
                guidance: float = GUIDANCE) -> "FlowPromptState":
        """The validated, normalised inputs only (nothing computed): what a stream from scratch starts with."""
        n_steps = positive_int(n_steps, "n_steps")
        with torch.inference_mode():
            tokens, n_prompt, prompt, spk = model.prepare([], prompt_tokens, prompt_mel, speaker, allow_empty=True)
        return cls(model, tokens, n_prompt, prompt, spk, n_steps, float(guidance))

    @classmethod
    def compute(cls, model, prompt_tokens=None, prompt_mel=None, speaker=None, n_steps: int = N_STEPS,
                guidance: float = GUIDANCE) -> "FlowPromptState":
        """Validate the prompt and, for a ``"clip"`` flow, run its block (encoder + every ODE step).

        Raises:
            ValueError: bad prompt, speaker or solver settings (as ``ChunkAwareFlow.inference``).
        """
        t0 = time.perf_counter()
        state = cls.prepare(model, prompt_tokens, prompt_mel, speaker, n_steps, guidance)
        if model.cacheable_prompt and state.n_prompt:
            st = FlowStream(model, prompt_state=state)
            st._run(final=False)  # the prompt block needs no lookahead: it runs now, and nothing after it
            state.done, state.enc_cache, state.step_caches = st.done, st.enc_cache, st.step_caches
        state.seconds = time.perf_counter() - t0
        return state

    def fork(self, chunk_tokens: int | None = None, first_chunk_tokens: int | None = None,
             mode: str = "cached") -> "FlowStream":
        """A new :class:`FlowStream` starting from this state (the state itself is left as it is)."""
        return FlowStream(self.model, chunk_tokens=chunk_tokens, mode=mode, first_chunk_tokens=first_chunk_tokens,
                          prompt_state=self)


class FlowStream:
    """Stateful chunk-by-chunk synthesis of one utterance (see the module docstring).

    Args:
        model: a :class:`minicosy.flow.model.ChunkAwareFlow`.
        prompt_tokens, prompt_mel, speaker: as for ``ChunkAwareFlow.inference`` — or ``prompt_state``.
        chunk_tokens: ``M``, tokens per chunk (default ``cfg.chunk_tokens``); each chunk yields ``2M`` frames.
        n_steps, guidance: the ODE solver's steps and the guidance weight (default 10 and 0.7, or the
            ``prompt_state``'s).
        mode: ``"cached"`` or ``"recompute"``.
        first_chunk_tokens: ``F``, the first block after the prompt (default ``M``); later blocks hold ``M``.
        prompt_state: a :class:`FlowPromptState` of ``model`` to fork instead of the prompt arguments.

    Raises:
        ValueError: an unknown mode, sizes < 1, both a state and prompt arguments, a state of another
            model, or solver settings other than the state's.
    """

    def __init__(self, model, prompt_tokens=None, prompt_mel=None, speaker=None, chunk_tokens: int | None = None,
                 n_steps: int | None = None, guidance: float | None = None, mode: str = "cached", *,
                 first_chunk_tokens: int | None = None, prompt_state: FlowPromptState | None = None):
        if mode not in MODES:
            raise ValueError(f"unknown streaming mode {mode!r}; expected one of {MODES}.")
        self.model, self.mode = model, mode
        self.M = positive_int(chunk_tokens or model.cfg.chunk_tokens, "chunk_tokens")
        self.F = self.M if first_chunk_tokens is None else positive_int(first_chunk_tokens, "first_chunk_tokens")
        self.P, self.up = model.cfg.lookahead, model.cfg.up
        if prompt_state is None:
            prompt_state = FlowPromptState.prepare(model, prompt_tokens, prompt_mel, speaker,
                                                   N_STEPS if n_steps is None else n_steps,
                                                   GUIDANCE if guidance is None else guidance)
        else:
            _check_state(model, prompt_state, prompt_tokens, prompt_mel, speaker, n_steps, guidance)
        st = prompt_state
        self.tokens, self.n_prompt, self.prompt, self.spk = st.tokens, st.n_prompt, st.prompt, st.spk
        self.n_steps, self.guidance = st.n_steps, st.guidance
        self.done = st.done  # tokens whose frames are final
        self.enc_cache: dict = fork_cache(st.enc_cache)
        self.step_caches = fork_cache(st.step_caches) or [{} for _ in range(self.n_steps)]  # one per ODE step
        self.finished = False
        self.chunk_times: list[float] = []  # seconds per processed block (benchmarks read it)

    def _next_block(self) -> tuple[int, int, int]:
        """The next block of the chunk mask and the lookahead it needs: ``(start, end, tokens after end)``.

        The prompt first (if any; no lookahead with a clipped prompt), then ``F``, then ``M`` at a time.
        """
        if self.done < self.n_prompt:
            return 0, self.n_prompt, 0 if self.model.cacheable_prompt else self.P
        size = self.F if self.done == self.n_prompt else self.M
        return self.done, self.done + size, self.P

    @torch.inference_mode()
    def _block(self, s: int, e: int, ahead: int | None = None) -> torch.Tensor:
        """Final normalised frames of tokens ``[s, e)``: ``(1, n_mels, up·(e − s))``."""
        m, up = self.model, self.up
        future = self.tokens[:, e:e + (self.P if ahead is None else ahead)]  # the lookahead; shorter (zeros) at the end
        if self.mode == "recompute":
            x = m.synthesize(self.tokens[:, :e], self.n_prompt, self.prompt, self.spk, "chunk", self.M,
                             self.n_steps, self.guidance, future=future, first_chunk_tokens=self.F)
            return x[:, :, up * s:]
        mu = m.encoder(self.tokens[:, s:e], None, future=future, cache=self.enc_cache,
                       n_prompt=max(0, self.n_prompt - s))  # (1, n_mels, up·(e−s))
        cond = torch.zeros_like(mu)
        p = self.prompt[:, :, up * s: up * e]  # the prompt mel over this block's frames, if any
        cond[:, :, : p.shape[2]] = p
        x0 = m.noise.slice(up * s, up * e, device=m.device)
        # mask None: the block sees every cached key and all of itself — the chunk mask's row
        return m.solve(x0, mu, self.spk, cond, None, self.n_steps, self.guidance, self.step_caches)

    def _run(self, final: bool) -> torch.Tensor:
        was = self.model.training
        self.model.eval()
        out = []
        while True:
            s, e, ahead = self._next_block()
            avail = self.tokens.shape[1]
            if final:
                e = min(e, avail)
                if s >= avail:
                    break
            elif e + ahead > avail:
                break  # not enough lookahead yet
            t0 = time.perf_counter()
            x = self._block(s, e, ahead)
            self.chunk_times.append(time.perf_counter() - t0)
            self.done = e
            keep = max(0, self.n_prompt - s) * self.up  # prompt frames are never emitted
            out.append(x[:, :, keep:])
        self.model.train(was)
        x = torch.cat(out, dim=2) if out else self.prompt.new_zeros(1, self.model.cfg.n_mels, 0)
        return self.model.denormalize(x)[0]

    def push(self, tokens) -> torch.Tensor:
        """Add tokens ``(n,)``; returns the log-mel frames that became final: ``(n_mels, k)``, ``k`` a sum
        of whole blocks (``up·F`` for the first, ``up·M`` for the others), possibly 0."""
        if self.finished:
            raise ValueError("this stream was flushed; start a new one with model.stream(...).")
        new = self.model.check_tokens(tokens, allow_empty=True)
        self.tokens = torch.cat([self.tokens, new], dim=1)
        return self._run(final=False)

    def flush(self) -> torch.Tensor:
        """End of the utterance: the remaining frames ``(n_mels, …)`` (their lookahead is zeros)."""
        if self.finished:
            raise ValueError("this stream was already flushed.")
        out = self._run(final=True)
        self.finished = True
        return out


def _check_state(model, state, prompt_tokens, prompt_mel, speaker, n_steps, guidance) -> None:
    """Refuse a prompt state that does not fit the stream being built from it."""
    if not isinstance(state, FlowPromptState):
        raise ValueError(f"prompt_state must be a FlowPromptState (model.prompt_state(...)), got "
                         f"{type(state).__name__}.")
    if state.model is not model:
        raise ValueError("prompt_state was computed by another flow model; compute it with this model's "
                         "prompt_state().")
    if prompt_tokens is not None or prompt_mel is not None or speaker is not None:
        raise ValueError("give either prompt_state or prompt_tokens / prompt_mel / speaker, not both: the state "
                         "already holds its prompt and speaker.")
    if (n_steps is not None and n_steps != state.n_steps) or (guidance is not None and guidance != state.guidance):
        raise ValueError(f"prompt_state was computed with n_steps={state.n_steps}, guidance={state.guidance}; its "
                         f"caches hold those ODE steps: compute another state for n_steps={n_steps}, "
                         f"guidance={guidance}.")


def stream_mel(model, token_chunks: Iterable, **kw) -> Iterator[torch.Tensor]:
    """Generator form: feed pieces of tokens, yield mel pieces ``(n_mels, n)`` as they become final.

    ``torch.cat(list(stream_mel(model, pieces, mask…)), dim=1)`` equals
    ``model.inference(torch.cat(pieces), mask="chunk", …)`` to float rounding.
    """
    st = FlowStream(model, **kw)
    for piece in token_chunks:
        out = st.push(piece)
        if out.shape[1]:
            yield out
    out = st.flush()
    if out.shape[1]:
        yield out
