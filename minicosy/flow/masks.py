"""Attention masks of the chunk-aware flow: what each position may look at.

Stage: flow matching (docs/paper_vs_code.md §2), CosyVoice 2 §2.4, Fig. 2(c). One model is trained with four
masks, drawn per utterance, so that the same weights serve offline and streaming synthesis:

* **non-causal** — every frame sees every frame (offline, best quality);
* **full-causal** — frame ``i`` sees frames ``0 … i`` (lowest latency, least context);
* **chunk-M** — the sequence is cut into chunks of ``M`` positions; a frame sees every position
  up to the *end of its own chunk* (the past, and a little future inside its chunk);
* **chunk-2M** — the same with chunks twice as long (more context, twice the latency).

Full-causal is chunk-1 and non-causal is chunk-∞, so one function, :func:`block_ends`, drives all
four: row ``i`` may attend keys ``j < end(i)``. Drawn for ``T = 6``, ``M = 2`` (``■`` = may attend)::

    non_causal     full_causal    chunk, M = 2    chunk, M = 2, prefix = 3
    ■ ■ ■ ■ ■ ■    ■ · · · · ·    ■ ■ · · · ·     ■ ■ ■ · · ·
    ■ ■ ■ ■ ■ ■    ■ ■ · · · ·    ■ ■ · · · ·     ■ ■ ■ · · ·
    ■ ■ ■ ■ ■ ■    ■ ■ ■ · · ·    ■ ■ ■ ■ · ·     ■ ■ ■ · · ·
    ■ ■ ■ ■ ■ ■    ■ ■ ■ ■ · ·    ■ ■ ■ ■ · ·     ■ ■ ■ ■ ■ ·
    ■ ■ ■ ■ ■ ■    ■ ■ ■ ■ ■ ·    ■ ■ ■ ■ ■ ■     ■ ■ ■ ■ ■ ·
    ■ ■ ■ ■ ■ ■    ■ ■ ■ ■ ■ ■    ■ ■ ■ ■ ■ ■     ■ ■ ■ ■ ■ ■

``prefix`` (minicosy's addition) makes the first ``prefix`` positions — the prompt — one block of
their own, and starts the chunk grid after it. The prompt is known before synthesis starts, so a
streaming run encodes it as one block and then emits chunks of exactly ``M`` tokens; with the grid
starting at the prompt's end, the offline mask describes that run exactly.

``first_chunk`` (``F``) is the *chunk schedule*: the first block after the prompt holds ``F``
positions, every later one ``M`` — a short first packet, larger ones after (the paper's advice on
its masks, §2.4: chunk-M for the first chunk, chunk-2M for the later ones). Drawn for ``T = 8``, ``M = 3``::

    chunk, M = 3, prefix = 2, first_chunk = 1      blocks (chunk_spans)
    ■ ■ · · · · · ·                                 (0, 2)  the prompt
    ■ ■ · · · · · ·
    ■ ■ ■ · · · · ·                                 (2, 3)  the first chunk, F = 1
    ■ ■ ■ ■ ■ ■ · ·                                 (3, 6)  then M = 3 at a time
    ■ ■ ■ ■ ■ ■ · ·
    ■ ■ ■ ■ ■ ■ · ·
    ■ ■ ■ ■ ■ ■ ■ ■                                 (6, 8)  the last may be shorter
    ■ ■ ■ ■ ■ ■ ■ ■

The token encoder uses the mask at 25 Hz with chunk ``M`` tokens; after the ×2 upsampling the
encoder's second half and the estimator use :func:`upsample_mask` of it: chunk ``2M`` frames, the
same chunks in time.

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §2.4 (chunk-aware flow matching, Fig. 2).
    [2] Official code: ``cosyvoice/utils/mask.py`` (``subsequent_chunk_mask``, ``add_optional_chunk_mask``).
"""

from __future__ import annotations

import torch

#: Mask kinds; chunk-M and chunk-2M are both ``"chunk"`` with ``chunk_size`` M or 2M.
KINDS = ("non_causal", "full_causal", "chunk")


def _check(kind: str, T: int, chunk_size: int | None, prefix: int, first_chunk: int | None = None) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown mask kind {kind!r}; expected one of {KINDS} (chunk-M and chunk-2M are "
                         "'chunk' with chunk_size M or 2M).")
    if T < 0 or prefix < 0:
        raise ValueError(f"T and prefix must be ≥ 0, got T={T}, prefix={prefix}.")
    if kind == "chunk" and (chunk_size is None or int(chunk_size) < 1):
        raise ValueError(f"a 'chunk' mask needs chunk_size ≥ 1, got {chunk_size!r}.")
    if first_chunk is not None:
        if kind != "chunk":
            raise ValueError(f"first_chunk (a short first chunk) applies to the 'chunk' mask only, not {kind!r}; "
                             "pass first_chunk=None.")
        if isinstance(first_chunk, bool) or int(first_chunk) != first_chunk or int(first_chunk) < 1:
            raise ValueError(f"first_chunk must be an integer ≥ 1 (or None: the same as chunk_size), got "
                             f"{first_chunk!r}.")


def block_ends(kind: str, T: int, chunk_size: int | None = None, prefix: int = 0,
               device=None, first_chunk: int | None = None) -> torch.Tensor:
    """One past the last key each query may see: ``end (T,)``, row ``i`` sees keys ``j < end[i]``.

    Args:
        kind: ``"non_causal"``, ``"full_causal"`` or ``"chunk"``.
        T: sequence length.
        chunk_size: positions per chunk (``"chunk"`` only).
        prefix: the first ``prefix`` positions form one block (the prompt); the grid starts after it.
        first_chunk: ``F``, the size of the first chunk after the prefix (``"chunk"`` only; ``None``:
            ``chunk_size``, a uniform grid). The chunks after it hold ``chunk_size`` positions.
    """
    _check(kind, T, chunk_size, prefix, first_chunk)
    i = torch.arange(T, device=device)
    if kind == "non_causal":
        return torch.full((T,), T, dtype=torch.long, device=device)
    C = 1 if kind == "full_causal" else int(chunk_size)
    Fc = C if first_chunk is None else int(first_chunk)
    # end(i) = p + F + C·(⌊(i − p − F)/C⌋ + 1) after the first chunk, = p + F inside it, = p in the prefix
    ends = prefix + Fc + C * (torch.div(i - prefix - Fc, C, rounding_mode="floor") + 1)
    ends = torch.where(i < prefix + Fc, torch.full_like(i, prefix + Fc), ends)
    ends = torch.where(i < prefix, torch.full_like(i, prefix), ends)
    return ends.clamp(max=T)


def attention_mask(kind: str, T: int, chunk_size: int | None = None, prefix: int = 0,
                   device=None, first_chunk: int | None = None) -> torch.Tensor:
    """The ``(T, T)`` boolean mask, ``True`` where query ``i`` may attend key ``j``.

    ``mask[i, j] = j < end(i)`` with ``end`` from :func:`block_ends` (see the drawings above).
    """
    ends = block_ends(kind, T, chunk_size, prefix, device, first_chunk)
    return torch.arange(T, device=device)[None, :] < ends[:, None]  # (T, T)


def chunk_spans(T: int, chunk_size: int, prefix: int = 0, first_chunk: int | None = None) -> list[tuple[int, int]]:
    """The blocks of a chunk mask, in order: ``[(start, end), …]`` covering ``0 … T``.

    A streaming run processes exactly these blocks one after another: the prompt block
    ``(0, prefix)`` if there is one, then a first chunk of ``first_chunk`` (default ``chunk_size``),
    then chunks of ``chunk_size`` (the last may be shorter).
    """
    _check("chunk", T, chunk_size, prefix, first_chunk)
    spans = [(0, min(prefix, T))] if prefix > 0 else []
    s, size = min(prefix, T), chunk_size if first_chunk is None else first_chunk
    while s < T:
        spans.append((s, min(s + size, T)))
        s, size = s + size, chunk_size
    return spans


def upsample_mask(mask: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """A token mask ``(..., T, T)`` → the frame mask ``(..., fT, fT)`` of the same chunks in time.

    Frame ``a`` belongs to token ``a // factor``, so ``frame_mask[a, b] = mask[a // f, b // f]``;
    for a chunk mask with chunk ``M`` (prefix ``p``, first chunk ``F``) this is the chunk mask with
    chunk ``f·M`` (prefix ``f·p``, first chunk ``f·F``).
    """
    return mask.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)


def padding_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """``(B,)`` lengths → ``(B, T)`` bool, ``True`` on real (not padded) positions."""
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]


def with_padding(mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Combine a pattern mask with key padding: ``(T, T)`` or ``(B, T, T)`` → ``(B, T, T)``.

    Padded *keys* are hidden from every query. Padded *queries* keep their row (their outputs are
    never used), and since every pattern lets row ``i`` see key 0, no row is ever all ``False``
    while each length is ≥ 1 — ``softmax`` over an empty row would give NaN.

    Args:
        mask: ``(T, T)`` shared by the batch, or ``(B, T, T)`` one per utterance.
        lengths: ``(B,)`` real lengths (≥ 1).
    """
    if mask.dim() == 2:
        mask = mask[None]
    T = mask.shape[-1]
    if bool((lengths < 1).any()) or bool((lengths > T).any()):
        raise ValueError(f"lengths must lie in [1, {T}], got {lengths.tolist()}.")
    return mask & padding_mask(lengths.to(mask.device), T)[:, None, :]  # (B, T, T)
