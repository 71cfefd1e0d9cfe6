"""Transformer pieces shared by the stages: rotary positions, masked attention, a pre-norm block.

The speech tokenizer's encoders (bidirectional, key-padding mask) and the flow's chunk-aware
encoder and estimator (a (T, T) chunk mask, key/value cache when streaming) use the same
modules, so the attention a learner reads in notebook 01 is the one notebook 04 streams.

References:
    [1] Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
    [2] Su et al., "RoFormer: Rotary Position Embedding", arXiv 2104.09864.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def rotary(x: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """Rotate channel pairs by position-dependent angles  [RoFormer Eq. 34].

    Args:
        x: ``(B, nh, T, hs)``; position ``offset + t`` for row ``t`` (a streamed chunk starts
            where the cached prefix ended, so its keys rotate exactly as in the offline pass).
    """
    T, hs = x.shape[-2], x.shape[-1]
    inv = 1.0 / (10000 ** (torch.arange(0, hs, 2, device=x.device, dtype=torch.float32) / hs))
    pos = torch.arange(offset, offset + T, device=x.device, dtype=torch.float32)
    ang = pos[:, None] * inv[None]  # (T, hs/2)
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    # (x1, x2) → (x1·cos θ − x2·sin θ, x1·sin θ + x2·cos θ)   [RoFormer Eq. 34]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


def _as_attn_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    """Bool mask, True = may attend → the ``(B, 1, Tq, Tk)`` form of ``scaled_dot_product_attention``.

    Two forms: ``(B, Tk)`` is a key-padding mask (every query sees the real keys); ``(B, Tq, Tk)``
    or ``(1, Tq, Tk)`` is a full pattern, e.g. a chunk mask combined with padding.
    """
    if mask is None:
        return None
    if mask.dtype != torch.bool:
        raise ValueError(f"attention masks are boolean (True = may attend), got {mask.dtype}.")
    if mask.dim() == 2:
        return mask[:, None, None, :]
    if mask.dim() == 3:
        return mask[:, None]
    raise ValueError(f"attention mask must be (B, Tk) or (B, Tq, Tk), got {tuple(mask.shape)}.")


class Attention(nn.Module):
    """Multi-head self-attention with rotary positions and an optional key/value cache."""

    def __init__(self, d: int, n_heads: int, dropout: float):
        super().__init__()
        if d % n_heads:
            raise ValueError(f"width {d} is not divisible by {n_heads} heads.")
        self.nh, self.dropout = n_heads, dropout
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, cache: dict | None = None) -> torch.Tensor:
        """x: ``(B, T, C)`` → ``(B, T, C)``.

        Args:
            mask: see :func:`_as_attn_mask`; with a cache its key axis spans cached + new keys.
            cache: ``None`` (offline), or a dict that holds this layer's rotated keys and values
                ``"k", "v": (B, nh, T_past, hs)``. The new chunk's queries sit at positions
                ``T_past …``; its keys and values are appended to the dict (streaming).
        """
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.nh, C // self.nh).permute(2, 0, 3, 1, 4)  # (B, nh, T, hs)
        past = 0 if cache is None or "k" not in cache else cache["k"].shape[2]
        q, k = rotary(q, past), rotary(k, past)
        if cache is not None:
            if past:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=_as_attn_mask(mask),
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + Attn(LN(x))``, then ``x + MLP(LN(x))``."""

    def __init__(self, d: int, n_heads: int, ff_mult: int, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = Attention(d, n_heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(d, ff_mult * d), nn.GELU(), nn.Linear(ff_mult * d, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, cache: dict | None = None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), mask, cache))
        return x + self.drop(self.mlp(self.ln2(x)))
