"""Finite scalar quantization (FSQ) — the quantizer of CosyVoice 2's speech tokenizer — and
the vector-quantization (VQ) baseline it replaced.

Stage: speech tokenizer (docs/paper_vs_code.md §1–2), CosyVoice 2 §2.2, Eq. 1 and Eq. 2.

FSQ needs no codebook to learn. A hidden vector ``h`` is projected down to ``D`` numbers, each
is squashed into ``[-K, K]`` and rounded to an integer, and the integer vector is projected
back up::

    Ĥ = ProjUp(ROUND(ProjDown(H)))                                   [CV2 Eq. 1]
    μ = Σ_{j=0}^{D-1} (ĥ_j + K) · (2K+1)^j                           [CV2 Eq. 2]

so the "codebook" is the integer grid ``{-K..K}^D`` of ``(2K+1)^D`` points (3^8 = 6561 in the
paper), every grid point is reachable, and the index of a point is its base-(2K+1) number with
digit ``j`` = ``ĥ_j + K`` (the official code shifts the digits to be non-negative; digit 0 is
the least significant).

Bound. ``ROUND`` needs its input inside ``[-K, K]``; we use the FSQ paper's bound for an odd
number of levels ``L = 2K+1``: ``f(z) = K · tanh(z)`` [2, §3.1]. Its later implementations
multiply by ``(1 + ε)`` (``vector-quantize-pytorch``) or ``0.999`` (S3Tokenizer) — the same grid,
rounding boundaries moved by less than 0.001 — and a 2024 follow-up [3] changes the bound so
that the levels are used symmetrically for even ``L``; with odd ``L`` (the only case here) the
plain ``K · tanh`` is already symmetric.

Gradient. Rounding has zero gradient almost everywhere; the straight-through estimator [4]
passes the gradient of the identity instead: ``round_ste(x) = x + (round(x) - x).detach()``.

VQ baseline. :class:`VectorQuantizer` is the classic VQ-VAE quantizer [5] (nearest codebook
vector, straight-through, commitment loss) with the codebook learnt by exponential moving
averages [5, App. A.1], as in CosyVoice 1's tokenizer [6]. The codebook starts from encoder
vectors of the first training batch (data-dependent initialisation, so no code starts far from
the data). Codes whose EMA count falls below ``dead_threshold`` are moved onto random vectors
of the current batch ("dead-code restarts", as in Jukebox/EnCodec-style VQ): without them, our
tiny CPU runs collapsed to a single code within 100 steps — the commitment loss is easiest to
satisfy with a constant encoder output — which would make the comparison with FSQ meaningless.
``dead_threshold=0`` gives the plain VQ-VAE quantizer.

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §2.2, Eq. 1–2.
    [2] Mentzer et al., "Finite Scalar Quantization: VQ-VAE Made Simple", arXiv 2309.15505, §3.1.
    [3] Parker et al., "Scaling Transformers for Low-Bitrate High-Quality Speech Coding",
        arXiv 2411.19842, §3.2 (symmetry-preserving FSQ bound).
    [4] Bengio et al., "Estimating or Propagating Gradients Through Stochastic Neurons",
        arXiv 1308.3432.
    [5] van den Oord et al., "Neural Discrete Representation Learning", arXiv 1711.00937.
    [6] Du et al., "CosyVoice", arXiv 2407.05407, §3.1 (VQ with 4096 codes).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round to the nearest integer; the backward pass is the identity (straight-through)."""
    return x + (torch.round(x) - x).detach()


class FSQ(nn.Module):
    """Finite scalar quantizer with low-rank projections  [CV2 Eq. 1].

    Args:
        input_dim: width of the hidden vectors ``H`` (the encoder's ``d_model``).
        num_dims: ``D``, the number of scalar codes per frame (8 in the paper).
        K: each code is an integer in ``[-K, K]`` (``K = 1`` in the paper: 3 levels).
    """

    def __init__(self, input_dim: int, num_dims: int = 8, K: int = 1):
        super().__init__()
        if num_dims < 1 or K < 1:
            raise ValueError(f"FSQ needs num_dims >= 1 and K >= 1, got num_dims={num_dims}, K={K}.")
        self.input_dim, self.num_dims, self.K = input_dim, num_dims, K
        self.levels = 2 * K + 1
        self.proj_down = nn.Linear(input_dim, num_dims)
        self.proj_up = nn.Linear(num_dims, input_dim)
        # (2K+1)^j for j = 0..D-1: digit 0 is the least significant   [CV2 Eq. 2]
        self.register_buffer("basis", self.levels ** torch.arange(num_dims, dtype=torch.long), persistent=False)

    @property
    def codebook_size(self) -> int:
        return self.levels ** self.num_dims

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """Squash into ``[-K, K]``:  f(z) = K · tanh(z)   [FSQ §3.1]."""
        return self.K * torch.tanh(z)

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """Low-rank ``z: (..., D)`` → integer-valued codes ``(..., D)`` in ``[-K, K]`` (float, STE)."""
        return round_ste(self.bound(z))

    def codes_to_indices(self, codes: torch.Tensor) -> torch.Tensor:
        """Integer codes ``(..., D)`` in ``[-K, K]`` → indices ``(...)`` int64 in ``[0, (2K+1)^D)``."""
        if codes.shape[-1] != self.num_dims:
            raise ValueError(f"codes must have last dimension {self.num_dims}, got shape {tuple(codes.shape)}.")
        digits = torch.round(codes).long() + self.K  # ĥ_j + K ∈ {0..2K}
        if digits.numel() and (digits.min() < 0 or digits.max() > 2 * self.K):
            raise ValueError(f"codes must be integers in [-{self.K}, {self.K}].")
        # μ = Σ_j (ĥ_j + K)·(2K+1)^j   [CV2 Eq. 2]
        return (digits * self.basis).sum(-1)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices ``(...)`` → codes ``(..., D)`` (float, integer-valued in ``[-K, K]``): Eq. 2 inverted."""
        indices = torch.as_tensor(indices, device=self.basis.device).long()
        if indices.numel() and (indices.min() < 0 or indices.max() >= self.codebook_size):
            raise ValueError(f"indices must lie in [0, {self.codebook_size}), got "
                             f"[{int(indices.min())}, {int(indices.max())}].")
        digits = (indices.unsqueeze(-1) // self.basis) % self.levels  # (..., D), base-(2K+1) digits
        return (digits - self.K).float()

    def embed_tokens(self, indices: torch.Tensor) -> torch.Tensor:
        """Token ids ``(B, T)`` → ``Ĥ = ProjUp(codes)`` ``(B, T, input_dim)`` (what Encoder2 sees)."""
        return self.proj_up(self.indices_to_codes(indices).to(self.proj_up.weight.dtype))

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantize hidden vectors.

        Args:
            h: ``(B, T, input_dim)``.

        Returns:
            h_hat: ``(B, T, input_dim)``, ``ProjUp(ROUND(ProjDown(h)))``, differentiable (STE).
            indices: ``(B, T)`` int64 token ids in ``[0, codebook_size)``.
        """
        codes = self.quantize(self.proj_down(h))  # (B, T, D), integer-valued
        # Ĥ = ProjUp(ROUND(ProjDown(H)))   [CV2 Eq. 1]
        h_hat = self.proj_up(codes)
        return h_hat, self.codes_to_indices(codes.detach())

    def aux_loss(self) -> torch.Tensor:
        """FSQ has no codebook and so no auxiliary loss (the ASR loss is the only signal)."""
        return self.proj_up.weight.new_zeros(())


class VectorQuantizer(nn.Module):
    """VQ baseline: nearest of ``codebook_size`` learnt vectors, EMA codebook, commitment loss.

    ``forward`` returns the same ``(h_hat, indices)`` pair as :class:`FSQ`; after a training
    forward, :meth:`aux_loss` holds the commitment loss ``β·‖h − sg(e)‖²`` [VQ-VAE Eq. 3] to add
    to the task loss. The codebook itself is not trained by gradients but by EMA of the vectors
    assigned to each code [VQ-VAE App. A.1].

    Args:
        input_dim: width of ``h``; the codebook lives in the same space (no projections).
        codebook_size: number of codes.
        beta: commitment weight (0.25 as in VQ-VAE).
        decay: EMA decay of the codebook statistics.
    """

    def __init__(self, input_dim: int, codebook_size: int = 729, beta: float = 0.25, decay: float = 0.99,
                 eps: float = 1e-5, dead_threshold: float = 0.1):
        super().__init__()
        self.input_dim, self._codebook_size = input_dim, codebook_size
        self.beta, self.decay, self.eps, self.dead_threshold = beta, decay, eps, dead_threshold
        # unit-variance init: the scale of the layer-normalised encoder output it will meet
        embed = torch.randn(codebook_size, input_dim)
        self.register_buffer("embed", embed)  # (N, d) the codebook
        self.register_buffer("ema_count", torch.ones(codebook_size))
        self.register_buffer("ema_sum", embed.clone())
        self.register_buffer("initted", torch.tensor(False))
        self._aux = None

    @property
    def codebook_size(self) -> int:
        return self._codebook_size

    def embed_tokens(self, indices: torch.Tensor) -> torch.Tensor:
        """Token ids ``(B, T)`` → codebook vectors ``(B, T, d)``."""
        return F.embedding(indices, self.embed)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: ``h: (B, T, d)``, ``mask: (B, T)`` bool, True on real frames (only those update
        the codebook). Returns ``h_hat (B, T, d)`` and ``indices (B, T)`` int64."""
        flat = h.detach().reshape(-1, self.input_dim).float()  # (N_frames, d)
        if self.training and not bool(self.initted):  # codebook ← random frames of the first batch
            real = flat if mask is None else flat[mask.reshape(-1)]
            pick = torch.randint(0, real.shape[0], (self._codebook_size,), device=real.device)
            self.embed.copy_(real[pick])
            self.ema_sum.copy_(real[pick])
            self.initted.fill_(True)
        # ‖h − e‖² = ‖h‖² − 2 h·e + ‖e‖²  (the ‖h‖² term does not change the argmin)
        dist = self.embed.pow(2).sum(1)[None, :] - 2 * flat @ self.embed.t()
        indices = dist.argmin(1).view(h.shape[:-1])  # (B, T)
        q = F.embedding(indices, self.embed).to(h.dtype)  # (B, T, d)
        if self.training:
            m = torch.ones(h.shape[:-1], dtype=torch.bool, device=h.device) if mask is None else mask
            sel = m.reshape(-1)
            onehot = F.one_hot(indices.reshape(-1)[sel], self._codebook_size).float()  # (n, N)
            with torch.no_grad():  # EMA update of counts and sums   [VQ-VAE App. A.1]
                self.ema_count.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
                self.ema_sum.mul_(self.decay).add_(onehot.t() @ flat[sel], alpha=1 - self.decay)
                n = self.ema_count.sum()
                count = (self.ema_count + self.eps) / (n + self._codebook_size * self.eps) * n  # Laplace smoothing
                self.embed.copy_(self.ema_sum / count[:, None])
                dead = self.ema_count < self.dead_threshold  # restart unused codes on live data
                if dead.any():
                    real = flat[sel]
                    pick = torch.randint(0, real.shape[0], (int(dead.sum()),), device=real.device)
                    self.embed[dead] = real[pick]
                    self.ema_sum[dead] = real[pick]
                    self.ema_count[dead] = 1.0
            diff = (h - q.detach()).pow(2).mean(-1)  # (B, T)
            self._aux = self.beta * (diff * m).sum() / m.sum().clamp(min=1)
        # straight-through: forward uses q, backward passes the gradient to h
        h_hat = h + (q - h).detach()
        return h_hat, indices

    def aux_loss(self) -> torch.Tensor:
        """The commitment loss of the last training forward (0 in eval mode)."""
        if self._aux is None:
            return self.embed.new_zeros(())
        aux, self._aux = self._aux, None
        return aux


def codebook_usage(indices: torch.Tensor, codebook_size: int) -> dict:
    """Codebook utilisation and perplexity of a bag of token ids.

    * utilisation = (number of distinct codes seen) / codebook_size
    * perplexity  = exp(−Σ_c p_c log p_c), the effective number of codes in use (max = codebook_size)

    Args:
        indices: any shape, int64 token ids.
    """
    idx = torch.as_tensor(indices).reshape(-1).long().cpu()
    if idx.numel() == 0:
        raise ValueError("codebook_usage: no tokens given.")
    counts = torch.bincount(idx, minlength=codebook_size).double()
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return {"codebook_size": int(codebook_size), "n_tokens": int(idx.numel()),
            "codes_used": int((counts > 0).sum()), "utilisation": float((counts > 0).sum() / codebook_size),
            "perplexity": float(entropy.exp())}
