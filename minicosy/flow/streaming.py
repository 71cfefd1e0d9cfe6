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

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §2.4 (chunk-aware flow), §2.5 (streaming latency).
    [2] Official code: ``cosyvoice/cli/model.py`` (``token2wav`` re-runs the prefix per hop),
        ``cosyvoice/flow/flow_matching.py`` (fixed ``rand_noise``).
"""

from __future__ import annotations

import time
from typing import Iterable, Iterator

import torch

from minicosy.flow.matching import GUIDANCE, N_STEPS

MODES = ("cached", "recompute")


class FlowStream:
    """Stateful chunk-by-chunk synthesis of one utterance (see the module docstring).

    Args:
        model: a :class:`minicosy.flow.model.ChunkAwareFlow`.
        prompt_tokens, prompt_mel, speaker: as for ``ChunkAwareFlow.inference``.
        chunk_tokens: ``M``, tokens per chunk (default ``cfg.chunk_tokens``); each chunk yields ``2M`` frames.
        n_steps, guidance: the ODE solver's steps and the guidance weight.
        mode: ``"cached"`` or ``"recompute"``.
    """

    def __init__(self, model, prompt_tokens=None, prompt_mel=None, speaker=None, chunk_tokens: int | None = None,
                 n_steps: int = N_STEPS, guidance: float = GUIDANCE, mode: str = "cached"):
        if mode not in MODES:
            raise ValueError(f"unknown streaming mode {mode!r}; expected one of {MODES}.")
        self.model, self.mode, self.n_steps, self.guidance = model, mode, n_steps, guidance
        self.M = int(chunk_tokens or model.cfg.chunk_tokens)
        if self.M < 1:
            raise ValueError(f"chunk_tokens must be ≥ 1, got {chunk_tokens}.")
        self.P, self.up = model.cfg.lookahead, model.cfg.up
        with torch.inference_mode():
            self.tokens, self.n_prompt, self.prompt, self.spk = model.prepare(
                [], prompt_tokens, prompt_mel, speaker, allow_empty=True)
        self.done = 0  # tokens whose frames are final
        self.enc_cache: dict = {}
        self.step_caches = [{} for _ in range(n_steps)]  # the estimator's state, one per ODE step
        self.finished = False
        self.chunk_times: list[float] = []  # seconds per processed block (benchmarks read it)

    def _next_block(self) -> tuple[int, int]:
        """The next block of the chunk mask: the prompt first (if any), then ``M`` tokens at a time."""
        if self.done < self.n_prompt:
            return 0, self.n_prompt
        return self.done, self.done + self.M

    @torch.inference_mode()
    def _block(self, s: int, e: int) -> torch.Tensor:
        """Final normalised frames of tokens ``[s, e)``: ``(1, n_mels, up·(e − s))``."""
        m, up = self.model, self.up
        future = self.tokens[:, e:e + self.P]  # the lookahead; shorter (zeros) at the end
        if self.mode == "recompute":
            x = m.synthesize(self.tokens[:, :e], self.n_prompt, self.prompt, self.spk, "chunk", self.M,
                             self.n_steps, self.guidance, future=future)
            return x[:, :, up * s:]
        mu = m.encoder(self.tokens[:, s:e], None, future=future, cache=self.enc_cache)  # (1, n_mels, up·(e−s))
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
            s, e = self._next_block()
            avail = self.tokens.shape[1]
            if final:
                e = min(e, avail)
                if s >= avail:
                    break
            elif e + self.P > avail:
                break  # not enough lookahead yet
            t0 = time.perf_counter()
            x = self._block(s, e)
            self.chunk_times.append(time.perf_counter() - t0)
            self.done = e
            keep = max(0, self.n_prompt - s) * self.up  # prompt frames are never emitted
            out.append(x[:, :, keep:])
        self.model.train(was)
        x = torch.cat(out, dim=2) if out else self.prompt.new_zeros(1, self.model.cfg.n_mels, 0)
        return self.model.denormalize(x)[0]

    def push(self, tokens) -> torch.Tensor:
        """Add tokens ``(n,)``; returns the log-mel frames that became final: ``(n_mels, k·up·M)``, k ≥ 0."""
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
