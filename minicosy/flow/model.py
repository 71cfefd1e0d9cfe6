"""The chunk-aware causal flow-matching model: 25 Hz speech tokens → 80-bin log-mel at 50 Hz.

Stage: flow matching (docs/paper_vs_code.md §1–2), CosyVoice 2 §2.4, Eq. 3, Fig. 2.

::

    tokens (T) ─▶ embed ─▶ lookahead conv ─▶ causal blocks ─▶ ×2 upsample ─▶ causal blocks ─▶ mu
                           (sees P future                    (25 → 50 Hz)                     (80, 2T)
                            tokens)
    x_t, mu, speaker, cond ─▶ estimator: causal convs + chunk-masked attention, time t ─▶ v (80, 2T)

* **Token encoder** (``mu``): the embedding of each token, then a *lookahead* convolution of kernel
  ``P + 1`` right-padded by ``P`` (token ``i`` sees tokens ``i … i+P``; the paper's P = 4, the
  official code uses 3), then transformer blocks with the chunk mask at 25 Hz, nearest ×2
  upsampling and a causal conv, more blocks with the chunk mask at 50 Hz, and a projection to 80.
* **Estimator** (the velocity ``v(x_t, t | mu, speaker, cond)``): the four inputs stacked on
  channels — ``x_t``, ``mu``, the projected L2-normalised speaker vector broadcast over time, and
  ``cond`` (the prompt mel on the first frames, zeros elsewhere) — through causal convolutions
  (time-conditioned residual blocks) and masked attention blocks.
* **Inference**: Euler, 10 steps, cosine grid, guidance 0.7, starting from one fixed pre-drawn
  noise tensor; prompt tokens are prepended to the tokens, the prompt mel fills ``cond``, and the
  output is trimmed of the prompt frames. Streaming is :mod:`minicosy.flow.streaming`.

Nothing in the model looks right except the lookahead conv (P tokens) and attention inside the
current chunk, which is what makes a chunk-by-chunk run reproduce the offline chunk-masked one.
With ``FlowConfig.prompt_lookahead="clip"`` (the default of new configs) the prompt's lookahead
stops at its last token — zeros after it, the padding the end of an utterance sees — in training
and at inference under every mask, so the prompt block depends on the prompt alone and
:meth:`ChunkAwareFlow.prompt_state` computes it once per voice. ``"cross"`` is the behaviour of
checkpoints written before the field existed (the committed tiny flow): a file without it loads so.
Token/frame rule: two mel frames per token; see :func:`align_tokens_and_frames`.

Simplifications (marked in the code):
* the official estimator is a 1-D U-Net (down/mid/up stages of causal ResNet + transformer blocks);
  minicosy's is a flat stack of (causal ResNet block, transformer block) pairs;
* the official encoder is a Conformer with relative positions; minicosy uses the shared pre-norm
  blocks of :mod:`minicosy.nn` with rotary positions;
* the mel is normalised per bin (mean/std of the training set, stored as buffers); the official
  model learns raw log-mel. Unit-scale targets help a tiny model learn in minutes.

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §2.4, Eq. 3, Fig. 2.
    [2] Lipman et al., "Flow Matching for Generative Modeling", ICLR 2023.
    [3] Official code: ``cosyvoice/flow/flow.py`` (``CausalMaskedDiffWithXvec``),
        ``cosyvoice/transformer/upsample_encoder.py`` (``PreLookaheadLayer``, ``Upsample1D``),
        ``cosyvoice/flow/decoder.py`` (``CausalConditionalDecoder``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from minicosy.checkpoint import CheckpointMixin
from minicosy.config import StageConfig
from minicosy.flow.masks import attention_mask, upsample_mask
from minicosy.flow.matching import GUIDANCE, N_STEPS, FixedNoise, euler_solve, guided_velocity
from minicosy.nn import Block

FP16_TOLERANCE = 1e-2  # largest |Δ log-mel| an fp16 export may cause (≈ 0.04 dB), else fp32
#: ``FlowConfig.prompt_lookahead``: ``"clip"`` (cacheable prompt) or ``"cross"`` (checkpoints before it).
PROMPT_LOOKAHEAD = ("clip", "cross")


@dataclass
class FlowConfig(StageConfig):
    """Sizes of the flow. The bare constructor is :meth:`tiny` (the committed checkpoint's preset,
    ~2.4 M parameters); :meth:`paper` gives the published widths."""

    what = "flow config"

    vocab_size: int = 243  # speech codebook size (the committed tiny FSQ: 3^5); training reads it from the tokenizer
    n_mels: int = 80
    up: int = 2  # mel frames per token: 25 Hz tokens → 50 Hz mel
    lookahead: int = 4  # P future tokens seen by the lookahead conv (paper: 4; official code: 3)
    d_enc: int = 128  # paper: 512
    enc_heads: int = 4  # paper: 8
    enc_pre_layers: int = 2  # blocks at 25 Hz, before the upsampling (paper: 6)
    enc_post_layers: int = 2  # blocks at 50 Hz, after it (paper: 4)
    d_est: int = 128  # paper: 256
    est_heads: int = 4
    est_layers: int = 4  # (causal ResNet block, transformer block) pairs (paper: 12)
    conv_kernel: int = 3  # estimator's causal convs
    ff_mult: int = 4
    time_dim: int = 64  # sinusoidal time embedding (paper: 256)
    spk_dim: int = 128  # speaker vector (the tiny speaker encoder's; official: CAM++ x-vector, 192)
    dropout: float = 0.05  # paper: 0.1
    chunk_tokens: int = 15  # M: chunk of the chunk-M mask and the streaming hop (official: 25)
    max_frames: int = 3000  # pre-drawn noise: 60 s at 50 Hz (paper: 15000, 300 s, as the official code)
    noise_seed: int = 0
    # "clip": the lookahead conv of prompt tokens sees zeros past the prompt's last token (as at the end of
    # an utterance), so the prompt block depends on the prompt alone and is computed once per voice;
    # "cross": it sees the first P generated tokens (the checkpoints trained before the option existed)
    prompt_lookahead: str = "clip"

    #: Fields added after ``minicosy-checkpoint-1`` → the value a saved config without them was trained with
    #: (:meth:`StageConfig.from_saved`): the committed ``flow.json`` loads as ``"cross"``.
    added_fields: ClassVar[dict] = {"prompt_lookahead": "cross"}

    def __post_init__(self):
        if self.prompt_lookahead not in PROMPT_LOOKAHEAD:
            raise ValueError(f"prompt_lookahead must be one of {PROMPT_LOOKAHEAD} ('clip': the prompt's lookahead "
                             f"stops at its last token, cacheable; 'cross': legacy), got {self.prompt_lookahead!r}.")

    @classmethod
    def tiny(cls, **overrides) -> "FlowConfig":
        """~2.4 M parameters with a 243-code tokenizer, sized to train within 2 h on 2 CPU cores
        (≈ 1.2–1.7 s a step of 3,000 frames on one shared thread); the bare constructor. Pass the
        tokenizer's ``codebook_size`` as ``vocab_size`` for another tokenizer. Chunk M = 15 tokens
        (0.6 s, the paper's Table 8 hop), since corpus utterances last 2–4 s: a 25-token chunk would
        make chunk-M and chunk-2M masks nearly non-causal."""
        return cls(**overrides)

    @classmethod
    def paper(cls, **overrides) -> "FlowConfig":
        """The published widths (encoder 512 × 6 + 4 blocks, estimator 256 × 12), 6561 codes, 192-d
        speaker vectors, ~54 M parameters; constructed, not trained here."""
        return cls(**{"vocab_size": 6561, "d_enc": 512, "enc_heads": 8, "enc_pre_layers": 6, "enc_post_layers": 4,
                      "d_est": 256, "est_heads": 4, "est_layers": 12, "time_dim": 256, "spk_dim": 192, "dropout": 0.1,
                      "chunk_tokens": 25, "max_frames": 15000, **overrides})

    @classmethod
    def legacy_defaults(cls) -> dict:
        """Until ``minicosy-checkpoint-1`` the bare ``FlowConfig()`` was the paper size (and the prompt's
        lookahead crossed into the generated tokens)."""
        return {**cls.paper().to_dict(), **cls.added_fields}


def align_tokens_and_frames(tokens: torch.Tensor, mel: torch.Tensor, up: int = 2):
    """Make ``mel`` exactly ``up`` frames per token (the official rule).

    Keep ``n = min(frames // up, tokens)`` tokens and ``up·n`` frames: the tokenizer and the mel
    front end round lengths differently, so the two disagree by a frame or a token at the end.

    Args:
        tokens: ``(..., T)``; mel: ``(..., n_mels, F)``.

    Returns:
        ``tokens (..., n)``, ``mel (..., n_mels, up·n)``.
    """
    n = min(mel.shape[-1] // up, tokens.shape[-1])
    return tokens[..., :n], mel[..., : up * n]


def _sub(cache: dict | None, key: str) -> dict | None:
    """This submodule's part of a streaming cache (``None`` offline)."""
    return None if cache is None else cache.setdefault(key, {})


class CausalConv1d(nn.Conv1d):
    """A 1-D convolution that only looks left: ``y_t`` depends on ``x_{t−k+1} … x_t``.

    Offline it pads ``k − 1`` zeros on the left; streaming, ``cache["x"]`` holds the last ``k − 1``
    inputs of the previous chunk instead (zeros before the first), so chunked = whole.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__(c_in, c_out, kernel)
        self.left = kernel - 1

    def forward(self, x: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        """x: ``(B, C_in, T)`` → ``(B, C_out, T)``."""
        if cache is None:
            x = F.pad(x, (self.left, 0))
        else:
            prev = cache.get("x", x.new_zeros(x.shape[0], x.shape[1], self.left))
            x = torch.cat([prev, x], dim=2)
            cache["x"] = x[:, :, x.shape[2] - self.left:]
        return super().forward(x)


class LookaheadLayer(nn.Module):
    """``x + conv2(LeakyReLU(conv1(x ⧺ P future)))``: the only place the model looks ahead.

    ``conv1`` has kernel ``P + 1`` over the tokens right-padded by ``P``, so token ``i`` sees
    ``i … i+P``; ``conv2`` (kernel 3) is causal. As the official ``PreLookaheadLayer``.

    ``n_prompt`` clips the prompt's lookahead (``FlowConfig.prompt_lookahead="clip"``): a prompt token
    ``i < p`` sees ``e_i … e_{p−1}`` and then zeros — the padding the end of an utterance sees — so
    the prompt's outputs do not depend on the tokens generated after it.
    """

    def __init__(self, d: int, P: int):
        super().__init__()
        self.P = P
        self.conv1 = nn.Conv1d(d, d, P + 1)
        self.conv2 = CausalConv1d(d, d, 3)

    def forward(self, x: torch.Tensor, future: torch.Tensor | None = None, cache: dict | None = None,
                n_prompt: int | torch.Tensor | None = None) -> torch.Tensor:
        """x: ``(B, T, d)``; future: ``(B, ≤P, d)`` embeddings of the tokens after ``x`` (the
        missing ones, past the end of the utterance, are zeros); n_prompt: ``None`` (no clipping), an
        ``int`` or ``(B,)``: the prompt tokens at the start of ``x`` → ``(B, T, d)``."""
        B, T, d = x.shape
        pad = x.new_zeros(B, self.P, d)
        if future is not None and future.shape[1]:
            pad[:, : future.shape[1]] = future[:, : self.P]
        h = torch.cat([x, pad], dim=1)  # (B, T + P, d)
        # y_i = W₁ ⋆ [e_i, …, e_{i+P}]   (kernel P + 1, right-padded by P)
        y = self._clipped(h, n_prompt, T)
        y = self.conv2(F.leaky_relu(y), cache)
        return x + y.transpose(1, 2)

    def _clipped(self, h: torch.Tensor, n_prompt, T: int) -> torch.Tensor:
        """``conv1`` over ``h (B, T + P, d)`` → ``(B, d, T)``, prompt rows from ``h`` zeroed past the prompt."""
        if n_prompt is None or (isinstance(n_prompt, int) and n_prompt <= 0):
            return self.conv1(h.transpose(1, 2))
        pos = torch.arange(h.shape[1], device=h.device)
        n = torch.as_tensor(n_prompt, device=h.device).reshape(-1, 1)  # (B|1, 1)
        # y_i = W₁ ⋆ [e_i, …, e_{p−1}, 0, …, 0]  for i < p: the prompt's lookahead stops at its last token
        clipped = self.conv1((h * (pos[None] < n)[..., None]).transpose(1, 2))  # (B, d, T)
        if isinstance(n_prompt, int) and n_prompt >= T:
            return clipped  # a block of prompt only (streaming): no row needs the unclipped conv
        return torch.where((pos[None, :T] < n)[:, None, :], clipped, self.conv1(h.transpose(1, 2)))


class TokenEncoder(nn.Module):
    """Tokens ``(B, T)`` → ``mu (B, n_mels, up·T)``: the content the estimator turns into mel."""

    def __init__(self, cfg: FlowConfig):
        super().__init__()
        d, self.up, self.clip = cfg.d_enc, cfg.up, cfg.prompt_lookahead == "clip"
        self.embed = nn.Embedding(cfg.vocab_size, d)
        self.lookahead = LookaheadLayer(d, cfg.lookahead)
        self.pre = nn.ModuleList(Block(d, cfg.enc_heads, cfg.ff_mult, cfg.dropout) for _ in range(cfg.enc_pre_layers))
        # nearest-neighbour ×up, then a causal conv of kernel 2·up + 1 smooths (official Upsample1D)
        self.up_conv = CausalConv1d(d, d, 2 * cfg.up + 1)
        self.post = nn.ModuleList(Block(d, cfg.enc_heads, cfg.ff_mult, cfg.dropout) for _ in range(cfg.enc_post_layers))
        self.norm = nn.LayerNorm(d)
        self.proj = nn.Linear(d, cfg.n_mels)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None, lengths: torch.Tensor | None = None,
                future: torch.Tensor | None = None, cache: dict | None = None,
                n_prompt: int | torch.Tensor | None = None) -> torch.Tensor:
        """Encode.

        Args:
            tokens: ``(B, T)`` ids.
            mask: token-level ``(B|1, T, T_keys)`` bool (padding included), or ``None`` = all keys.
            lengths: ``(B,)``; embeddings past each length are zeroed, so the lookahead conv of the
                last real tokens sees zeros, as in a batch of one.
            future: ``(B, ≤P)`` ids of the tokens right after ``tokens`` (streaming / prefix re-runs).
            cache: streaming state (attention keys/values, conv inputs), or ``None``.
            n_prompt: ``int`` or ``(B,)``, the prompt tokens at the start of ``tokens``: with
                ``prompt_lookahead="clip"`` their lookahead stops at the prompt's end (ignored with "cross").
        """
        x = self.embed(tokens)  # (B, T, d)
        if lengths is not None:
            x = x * (torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None])[..., None]
        fut = self.embed(future) if future is not None and future.numel() else None
        x = self.lookahead(x, fut, _sub(cache, "lookahead"), n_prompt if self.clip else None)
        for i, blk in enumerate(self.pre):
            x = blk(x, mask, _sub(cache, f"pre{i}"))
        x = x.repeat_interleave(self.up, dim=1)  # (B, up·T, d): 25 → 50 Hz
        x = self.up_conv(x.transpose(1, 2), _sub(cache, "up")).transpose(1, 2)
        fmask = None if mask is None else upsample_mask(mask, self.up)  # the same chunks, in frames
        for i, blk in enumerate(self.post):
            x = blk(x, fmask, _sub(cache, f"post{i}"))
        return self.proj(self.norm(x)).transpose(1, 2)  # (B, n_mels, up·T)


def time_embedding(t: torch.Tensor, dim: int, scale: float = 1000.0) -> torch.Tensor:
    """Sinusoidal embedding of the flow time: ``t (B,)`` → ``(B, dim)`` (official: scale 1000)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / max(1, half - 1))
    # e(t) = [sin(s·t·ω_k), cos(s·t·ω_k)],  ω_k = 10000^(−k/(half − 1))
    ang = scale * t.float()[:, None] * freqs[None]
    return torch.cat([ang.sin(), ang.cos()], dim=-1)


class CausalResBlock(nn.Module):
    """``x + conv₂(Mish(conv₁(LN(x)) + W·e(t)))`` with causal convs: local context, time-conditioned."""

    def __init__(self, d: int, kernel: int, t_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(d)  # per frame: a GroupNorm over time would peek at the future
        self.conv1, self.conv2 = CausalConv1d(d, d, kernel), CausalConv1d(d, d, kernel)
        self.time = nn.Linear(t_dim, d)

    def forward(self, x: torch.Tensor, temb: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        """x: ``(B, T, d)``, temb: ``(B, t_dim)`` → ``(B, T, d)``."""
        h = self.conv1(self.norm(x).transpose(1, 2), _sub(cache, "c1")) + self.time(temb)[:, :, None]
        h = self.conv2(F.mish(h), _sub(cache, "c2"))
        return x + h.transpose(1, 2)


class Estimator(nn.Module):
    """The velocity network ``v(x_t, t | mu, speaker, cond)``: ``(B, 80, F)`` in, ``(B, 80, F)`` out."""

    def __init__(self, cfg: FlowConfig):
        super().__init__()
        d, self.t_dim = cfg.d_est, cfg.time_dim
        self.time_mlp = nn.Sequential(nn.Linear(cfg.time_dim, 4 * cfg.time_dim), nn.SiLU(),
                                      nn.Linear(4 * cfg.time_dim, cfg.time_dim))
        self.inp = CausalConv1d(4 * cfg.n_mels, d, cfg.conv_kernel)  # [x_t, mu, speaker, cond] on channels
        # simplification: a flat stack of (ResNet, attention) pairs instead of the official 1-D U-Net
        self.res = nn.ModuleList(CausalResBlock(d, cfg.conv_kernel, cfg.time_dim) for _ in range(cfg.est_layers))
        self.blocks = nn.ModuleList(Block(d, cfg.est_heads, cfg.ff_mult, cfg.dropout) for _ in range(cfg.est_layers))
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, cfg.n_mels)

    def forward(self, x: torch.Tensor, mu: torch.Tensor, spk: torch.Tensor, cond: torch.Tensor, t: torch.Tensor,
                mask: torch.Tensor | None, cache: dict | None = None) -> torch.Tensor:
        """x, mu, cond: ``(B, n_mels, F)``; spk: ``(B, n_mels)`` (projected); t: ``(B,)``;
        mask: frame-level ``(B|1, F, F_keys)`` or ``None`` → ``v (B, n_mels, F)``."""
        h = torch.cat([x, mu, spk[:, :, None].expand(-1, -1, x.shape[2]), cond], dim=1)  # (B, 4·n_mels, F)
        temb = self.time_mlp(time_embedding(t, self.t_dim))  # (B, t_dim)
        h = self.inp(h, _sub(cache, "inp")).transpose(1, 2)  # (B, F, d)
        for i, (res, blk) in enumerate(zip(self.res, self.blocks)):
            h = res(h, temb, _sub(cache, f"res{i}"))
            h = blk(h, mask, _sub(cache, f"blk{i}"))
        return self.out(self.norm(h)).transpose(1, 2)  # (B, n_mels, F)


class ChunkAwareFlow(CheckpointMixin, nn.Module):
    """Tokens (+ prompt, speaker) → log-mel. ``ChunkAwareFlow.from_pretrained().inference(tokens)``.

    Checkpoint: :class:`~minicosy.checkpoint.CheckpointMixin` (``DEFAULT_CHECKPOINT/flow`` by default).

    Inference takes one utterance (batch 1); training calls :meth:`forward` on padded batches.
    """

    stage, config_class, keep_fp32 = "flow", FlowConfig, ("mel_mean", "mel_std")
    train_hint = "Train one with `minicosy train flow`."

    def __init__(self, cfg: FlowConfig | None = None):
        super().__init__()
        self.cfg = cfg or FlowConfig()
        self.encoder = TokenEncoder(self.cfg)
        self.spk_proj = nn.Linear(self.cfg.spk_dim, self.cfg.n_mels)
        self.estimator = Estimator(self.cfg)
        # simplification: per-bin mel normalisation (set by the trainer from the training set)
        self.register_buffer("mel_mean", torch.zeros(self.cfg.n_mels))
        self.register_buffer("mel_std", torch.ones(self.cfg.n_mels))
        self.noise = FixedNoise(self.cfg.n_mels, self.cfg.max_frames, self.cfg.noise_seed)
        self.meta: dict = {}

    @property
    def device(self) -> torch.device:
        return self.mel_mean.device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def normalize(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(..., n_mels, F)`` → unit-scale features the flow models."""
        return (mel - self.mel_mean[:, None]) / self.mel_std[:, None]

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mel_std[:, None] + self.mel_mean[:, None]

    def speaker_vector(self, speaker: torch.Tensor) -> torch.Tensor:
        """``(B, spk_dim)`` → ``(B, n_mels)``: L2-normalise, then project (official: x-vector → 80)."""
        return self.spk_proj(F.normalize(speaker.float(), dim=-1))

    # ------------------------------------------------------------------ training

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                speaker: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor,
                drop: torch.Tensor | None = None, n_prompt: torch.Tensor | None = None) -> torch.Tensor:
        """The predicted velocity for a padded batch (the training pass).

        Args:
            tokens: ``(B, T)``; lengths: ``(B,)`` real token counts.
            x_t: ``(B, n_mels, up·T)`` points on the path (normalised mel space); t: ``(B,)``.
            speaker: ``(B, spk_dim)``; cond: ``(B, n_mels, up·T)`` normalised prompt mel or zeros.
            mask: token-level ``(B, T, T)`` pattern with padding (:func:`~minicosy.flow.masks.with_padding`).
            drop: ``(B,)`` bool, classifier-free guidance dropout: mu, speaker and cond all zeroed.
            n_prompt: ``(B,)`` prompt tokens per utterance (0: none); with ``prompt_lookahead="clip"``
                the prompt's lookahead stops at its end, as at inference.

        Returns:
            ``v (B, n_mels, up·T)``.
        """
        mu = self.encoder(tokens, mask, lengths=lengths, n_prompt=n_prompt)
        spk = self.speaker_vector(speaker)
        if drop is not None:
            keep = (~drop).to(mu.dtype)
            mu, spk, cond = mu * keep[:, None, None], spk * keep[:, None], cond * keep[:, None, None]
        return self.estimator(x_t, mu, spk, cond, t, upsample_mask(mask, self.cfg.up))

    # ------------------------------------------------------------------ inference

    def check_tokens(self, tokens, name: str = "tokens", allow_empty: bool = False) -> torch.Tensor:
        """Validate speech token ids → ``LongTensor (1, T)`` on the model's device.

        Raises:
            ValueError: not 1-D (or ``(1, T)``), empty, not integers, or ids outside ``[0, vocab_size)``.
        """
        t = torch.as_tensor(tokens) if not isinstance(tokens, torch.Tensor) else tokens
        if t.dim() == 2 and t.shape[0] == 1:
            t = t[0]
        if t.dim() != 1:
            raise ValueError(f"{name}: expected a 1-D sequence of token ids (T,), got shape {tuple(t.shape)}.")
        if t.numel() == 0 and not allow_empty:
            raise ValueError(f"{name}: no tokens; the flow needs at least one 25 Hz speech token.")
        if t.numel() and (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool):
            raise ValueError(f"{name}: token ids must be integers, got dtype {t.dtype}.")
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.cfg.vocab_size):
            raise ValueError(f"{name}: ids must lie in [0, {self.cfg.vocab_size}) (the speech codebook), got "
                             f"min {int(t.min())}, max {int(t.max())}.")
        return t.long().to(self.device)[None]

    def prepare(self, tokens, prompt_tokens=None, prompt_mel=None, speaker=None, allow_empty: bool = False):
        """Validate inputs and build what synthesis needs.

        Returns:
            ``all_tokens (1, T_p + T)`` (prompt first), ``T_p``, ``prompt (1, n_mels, up·T_p)``
            normalised, ``spk (1, n_mels)`` projected (zeros without a speaker: the unconditional one).
        """
        cfg = self.cfg
        tokens = self.check_tokens(tokens, allow_empty=allow_empty)
        if (prompt_tokens is None) != (prompt_mel is None):
            raise ValueError("give both prompt_tokens and prompt_mel (the prompt's tokens and its log-mel), "
                             "or neither.")
        prompt = torch.zeros(1, cfg.n_mels, 0, device=self.device)
        ptok = tokens[:, :0]
        if prompt_tokens is not None:
            ptok = self.check_tokens(prompt_tokens, "prompt_tokens")
            mel = torch.as_tensor(prompt_mel)
            mel = mel[None] if mel.dim() == 2 else mel
            if mel.dim() != 3 or mel.shape[0] != 1 or mel.shape[1] != cfg.n_mels:
                raise ValueError(f"prompt_mel: expected ({cfg.n_mels}, frames) log-mel from minicosy.audio.log_mel, "
                                 f"got shape {tuple(torch.as_tensor(prompt_mel).shape)}.")
            if not mel.is_floating_point() or not bool(torch.isfinite(mel).all()):
                raise ValueError("prompt_mel: expected finite floating-point log-mel values.")
            ptok, mel = align_tokens_and_frames(ptok, mel.float().to(self.device), cfg.up)
            if ptok.shape[1] == 0:
                raise ValueError(f"prompt_mel has {mel.shape[-1]} frames: a prompt needs at least {cfg.up}.")
            prompt = self.normalize(mel)
        if speaker is None:
            spk = torch.zeros(1, cfg.n_mels, device=self.device)
        else:
            s = torch.as_tensor(speaker, dtype=torch.float32).to(self.device).reshape(1, -1)
            if s.shape[1] != cfg.spk_dim or not bool(torch.isfinite(s).all()):
                raise ValueError(f"speaker: expected a finite vector of {cfg.spk_dim} values, got "
                                 f"shape {tuple(torch.as_tensor(speaker).shape)}.")
            spk = self.speaker_vector(s)
        return torch.cat([ptok, tokens], dim=1), ptok.shape[1], prompt, spk

    def velocity(self, x, t, mu, spk, cond, mask, guidance: float = GUIDANCE, cache: dict | None = None):
        """``v`` for a batch-1 state ``x (1, n_mels, F)``, with guidance as one batch of two."""
        if not guidance:
            return self.estimator(x, mu, spk, cond, t.reshape(1).expand(x.shape[0]), mask, cache)
        v = self.estimator(torch.cat([x, x]), torch.cat([mu, torch.zeros_like(mu)]),
                           torch.cat([spk, torch.zeros_like(spk)]), torch.cat([cond, torch.zeros_like(cond)]),
                           t.reshape(1).expand(2 * x.shape[0]), mask, cache)
        v_cond, v_uncond = v.chunk(2)
        return guided_velocity(v_cond, v_uncond, guidance)

    def solve(self, x0, mu, spk, cond, mask, n_steps: int = N_STEPS, guidance: float = GUIDANCE,
              caches: list | None = None) -> torch.Tensor:
        """Euler over the cosine grid from ``x0``; ``caches[i]`` is ODE step ``i``'s streaming state."""
        return euler_solve(lambda x, t, i: self.velocity(x, t, mu, spk, cond, mask, guidance,
                                                         None if caches is None else caches[i]), x0, n_steps)

    def synthesize(self, all_tokens, n_prompt: int, prompt, spk, mask: str = "non_causal",
                   chunk_tokens: int | None = None, n_steps: int = N_STEPS, guidance: float = GUIDANCE,
                   future=None, first_chunk_tokens: int | None = None) -> torch.Tensor:
        """The offline pass over prepared inputs → normalised mel ``(1, n_mels, up·T_all)``, prompt included.

        ``future`` ``(1, ≤P)`` are tokens after ``all_tokens`` seen only by the lookahead conv (the
        re-run-the-prefix streaming baseline); without it the utterance ends there (zeros).
        ``first_chunk_tokens`` (``"chunk"`` only): the chunk schedule's first chunk ``F`` after the prompt.

        Raises:
            ValueError: ``first_chunk_tokens`` with a mask other than ``"chunk"``, or not ≥ 1.
        """
        T, up = all_tokens.shape[1], self.cfg.up
        C = chunk_tokens or self.cfg.chunk_tokens
        if first_chunk_tokens is not None and mask != "chunk":
            raise ValueError(f"first_chunk_tokens (the chunk schedule) needs mask='chunk', got mask={mask!r}.")
        tmask = None if mask == "non_causal" else attention_mask(mask, T, C, prefix=n_prompt, device=self.device,
                                                                 first_chunk=first_chunk_tokens)[None]
        mu = self.encoder(all_tokens, tmask, future=future, n_prompt=n_prompt)
        cond = torch.zeros_like(mu)
        cond[:, :, : prompt.shape[2]] = prompt  # prompt mel on the first frames, zeros elsewhere
        x0 = self.noise.slice(0, up * T, device=self.device)
        fmask = None if tmask is None else upsample_mask(tmask, up)
        return self.solve(x0, mu, spk, cond, fmask, n_steps, guidance)

    @torch.inference_mode()
    def inference(self, tokens, prompt_tokens=None, prompt_mel=None, speaker=None, mask: str = "non_causal",
                  chunk_tokens: int | None = None, n_steps: int = N_STEPS, guidance: float = GUIDANCE,
                  first_chunk_tokens: int | None = None) -> torch.Tensor:
        """Offline synthesis of one utterance.

        Args:
            tokens: ``(T,)`` speech token ids. prompt_tokens ``(T_p,)`` and prompt_mel ``(n_mels, F_p)``:
                a reference clip (its tokens are prepended, its mel fills ``cond``). speaker: ``(spk_dim,)``.
            mask: ``"non_causal"`` (best offline), ``"full_causal"`` or ``"chunk"`` (what streaming
                reproduces exactly), with ``chunk_tokens`` (default ``cfg.chunk_tokens``) and optionally
                ``first_chunk_tokens`` ``F``: a first chunk of ``F`` tokens after the prompt, then ``M``.

        Returns:
            log-mel ``(n_mels, up·T)``, prompt frames trimmed.
        """
        was = self.training
        self.eval()
        all_tokens, n_prompt, prompt, spk = self.prepare(tokens, prompt_tokens, prompt_mel, speaker)
        x = self.synthesize(all_tokens, n_prompt, prompt, spk, mask, chunk_tokens, n_steps, guidance,
                            first_chunk_tokens=first_chunk_tokens)
        self.train(was)
        return self.denormalize(x[0, :, self.cfg.up * n_prompt:])

    def stream(self, prompt_tokens=None, prompt_mel=None, speaker=None, **kw):
        """A :class:`minicosy.flow.streaming.FlowStream`: ``push(tokens)`` → mel frames, ``flush()``."""
        from minicosy.flow.streaming import FlowStream

        return FlowStream(self, prompt_tokens, prompt_mel, speaker, **kw)

    @property
    def cacheable_prompt(self) -> bool:
        """Whether the prompt block depends on the prompt alone (``prompt_lookahead="clip"``), so that
        :meth:`prompt_state` computes it once per voice."""
        return self.cfg.prompt_lookahead == "clip"

    def prompt_state(self, prompt_tokens=None, prompt_mel=None, speaker=None, n_steps: int = N_STEPS,
                     guidance: float = GUIDANCE):
        """The prompt block computed once: a :class:`minicosy.flow.streaming.FlowPromptState` whose
        ``fork(chunk_tokens, first_chunk_tokens)`` starts a stream per sentence.

        With a ``"cross"`` checkpoint the block cannot be computed before the first generated tokens:
        the state then keeps the validated inputs only (``state.precomputed`` is False) and each fork
        computes the block itself, exactly as ``stream(...)`` would.
        """
        from minicosy.flow.streaming import FlowPromptState

        return FlowPromptState.compute(self, prompt_tokens, prompt_mel, speaker, n_steps, guidance)

    # ------------------------------------------------------------------ save / load

    def save_pretrained(self, path: str | Path, half: bool | str = "auto", extra: dict | None = None, *,
                        dtype: torch.dtype | None = None) -> Path:
        """Write ``<stem>.safetensors`` and ``<stem>.json``; ``half="auto"`` stores fp16 weights only
        if a probe synthesis moves by at most :data:`FP16_TOLERANCE` (buffers stay fp32); a ``dtype``
        overrides ``half``. Loading: :meth:`~minicosy.checkpoint.CheckpointMixin.from_pretrained` (fp32)."""
        delta = None
        if dtype is None and half == "auto":
            sd = {k: v.detach().cpu().float() for k, v in self.state_dict().items()}
            probe = ChunkAwareFlow(self.cfg).eval()
            probe.load_state_dict({k: v if k in self.keep_fp32 else v.half().float() for k, v in sd.items()})
            ref = ChunkAwareFlow(self.cfg).eval()
            ref.load_state_dict(sd)
            toks = torch.randint(0, self.cfg.vocab_size, (50,), generator=torch.Generator().manual_seed(0))
            delta = float((probe.inference(toks) - ref.inference(toks)).abs().max())
            half = delta <= FP16_TOLERANCE
        dtype = dtype or (torch.float16 if half else torch.float32)
        return super().save_pretrained(path, {**(extra or {}), "fp16_max_abs_delta": delta}, dtype=dtype)
