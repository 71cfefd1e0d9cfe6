"""Decoding rules of the LM: repetition-aware sampling, EOS/FILL masks, length limits.

Stage: text-speech LM inference, CosyVoice 2 §2.3 and the official ``ras_sampling`` [1, 2].
Speech tokens at 25 Hz repeat a lot (a held vowel is the same code several times), and plain
top-k / top-p sampling of a small LM easily falls into a loop: the most likely next token is the
one just produced, again and again. **Repetition-aware sampling** (RAS, from VALL-E 2 [3]) draws
a candidate by nucleus sampling and, if that candidate already fills too much of the recent
window, redraws from the *full* distribution, which breaks the loop without flattening every
step.

    candidate ~ nucleus(p, top_p = 0.8, top_k = 25)
    if  #{candidate in last `window` tokens} ≥ τ · window  →  redraw ~ p        [RAS, τ = 0.1]

With ``window = 10`` and ``τ = 0.1`` a candidate already present once in the window is redrawn
(the official comparison is ``>=``; a strict "more than τ·window" would need ``τ·window < count``).
Length: EOS is masked until ``min_ratio · |text|`` tokens exist and generation stops at
``max_ratio · |text|`` (official 2 and 20 per BPE token; ×0.5 and ×5 per *character* in the tiny
preset, whose speech runs at ≈ 1.4 tokens a character). FILL is masked except where the
streaming schedule places it, and the unused slot ``C + 1`` is always masked.

Every draw takes an explicit ``torch.Generator``: the global RNG is never touched, and the same
seed gives the same tokens.

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §2.3 / §3 (decoding).
    [2] FunAudioLLM/CosyVoice, ``cosyvoice/utils/common.py`` (``ras_sampling``,
        ``nucleus_sampling``), ``cosyvoice/llm/llm.py`` (``min_token_text_ratio = 2``,
        ``max_token_text_ratio = 20``).
    [3] Chen et al., "VALL-E 2", arXiv 2406.05370, §3.2 (repetition aware sampling).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class SamplingConfig:
    top_p: float = 0.8
    top_k: int = 25
    window: int = 10  # RAS window (generated tokens)
    tau: float = 0.1  # RAS threshold: redraw when count ≥ tau · window
    min_ratio: float | None = None  # EOS masked below min_ratio · |text| tokens (None: the model's preset)
    max_ratio: float | None = None  # stop at max_ratio · |text| tokens (None: the model's preset)
    greedy: bool = False  # argmax instead of sampling (tests, fp16 export check)

    def __post_init__(self):
        if not 0 < self.top_p <= 1 or self.top_k < 1 or self.window < 1 or self.tau < 0:
            raise ValueError(f"bad sampling settings {self}: need 0 < top_p <= 1, top_k >= 1, window >= 1, tau >= 0.")


def _draw(probs: torch.Tensor, gen: torch.Generator | None) -> int:
    """One index from a probability vector, on the CPU with ``gen`` (device-independent)."""
    return int(torch.multinomial(probs.detach().float().cpu(), 1, generator=gen))


def nucleus_sample(logits: torch.Tensor, top_p: float = 0.8, top_k: int = 25,
                   gen: torch.Generator | None = None) -> int:
    """Top-p ∩ top-k sampling, as the official ``nucleus_sampling``.  ``logits: (V,)``.

    Tokens are taken in order of probability while the mass taken so far is below ``top_p`` and
    fewer than ``top_k`` are taken (so the first token is always kept); one is drawn from them,
    renormalised.
    """
    probs = logits.float().softmax(-1)
    p_sorted, idx = probs.sort(descending=True, stable=True)
    mass_before = p_sorted.cumsum(0) - p_sorted
    keep = (mass_before < top_p) & (torch.arange(p_sorted.numel(), device=p_sorted.device) < top_k)
    p_kept = p_sorted * keep
    return int(idx[_draw(p_kept / p_kept.sum(), gen)])


def random_sample(logits: torch.Tensor, gen: torch.Generator | None = None) -> int:
    """A draw from the full distribution ``softmax(logits)``."""
    return _draw(logits.float().softmax(-1), gen)


def ras_sample(logits: torch.Tensor, history: list[int], cfg: SamplingConfig,
               gen: torch.Generator | None = None) -> int:
    """Repetition-aware sampling.  ``logits: (V,)`` (already masked); ``history``: generated tokens."""
    if cfg.greedy:
        return int(logits.argmax())
    tok = nucleus_sample(logits, cfg.top_p, cfg.top_k, gen)
    recent = history[-cfg.window:]
    # count(tok in last window) ≥ τ · window  →  redraw from the full distribution   [RAS]
    if sum(t == tok for t in recent) >= cfg.tau * cfg.window:
        tok = random_sample(logits, gen)
    return tok


def mask_logits(logits: torch.Tensor, codebook_size: int, allow_eos: bool, allow_fill: bool = False) -> torch.Tensor:
    """Forbid control tokens that may not come now.  ``logits: (C + 3,)`` → a masked copy.

    EOS (``C``) unless ``allow_eos``; the unused slot ``C + 1`` always; FILL (``C + 2``) unless
    ``allow_fill``.
    """
    out = logits.clone()
    out[codebook_size + 1] = -math.inf
    if not allow_eos:
        out[codebook_size] = -math.inf
    if not allow_fill:
        out[codebook_size + 2] = -math.inf
    return out


def length_limits(n_text: int, min_ratio: float, max_ratio: float) -> tuple[int, int]:
    """``(min_len, max_len)`` generated tokens for ``n_text`` text tokens (prompt text excluded).

    ``min_len = ⌊min_ratio · n_text⌋``, ``max_len = max(1, ⌊max_ratio · n_text⌋)`` [official LM].
    """
    if n_text < 1:
        raise ValueError("there is no text to synthesise (0 text tokens).")
    if not 0 <= min_ratio <= max_ratio:
        raise ValueError(f"need 0 <= min_ratio <= max_ratio, got {min_ratio}, {max_ratio}.")
    return int(min_ratio * n_text), max(1, int(max_ratio * n_text))
