"""Conditional flow matching: the probability path, its target velocity, and the ODE solver.

Stage: flow matching (docs/paper_vs_code.md §2), CosyVoice 2 §2.4, Eq. 3. Flow matching learns a velocity
field ``v(x, t)`` that carries Gaussian noise ``X0`` (t = 0) to a mel-spectrogram ``X1`` (t = 1).
Training never integrates anything: for a random ``t`` it builds the point ``x_t`` on the straight
("optimal-transport") path between a noise sample and a data sample and regresses the network on
the path's velocity. Inference integrates ``dx/dt = v(x, t)`` from noise with a few Euler steps::

      X0 ~ N(0, I)  ───── φ_t = (1 − (1 − σ)t)·X0 + t·X1 ─────▶  X1 (mel)
                    velocity  u_t = dφ_t/dt = X1 − (1 − σ)·X0  (constant along the line)

* :func:`conditional_flow` — ``(x_t, u_t)`` for training [CV2 Eq. 3];
* :func:`cosine_timesteps` — ``t_i = 1 − cos(π/2 · i/n)``: small steps near the noise end, where
  the field changes fastest [CV2 §2.4];
* :func:`guided_velocity` — classifier-free guidance ``(1 + w)·v_cond − w·v_uncond`` [CV2 §2.4];
* :func:`euler_solve` — the fixed-step Euler integrator over any time grid.

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §2.4, Eq. 3.
    [2] Lipman et al., "Flow Matching for Generative Modeling", ICLR 2023 (OT path, σ_min).
    [3] Ho & Salimans, "Classifier-Free Diffusion Guidance", arXiv 2207.12598.
    [4] Official code: ``cosyvoice/flow/flow_matching.py`` (``ConditionalCFM``: cosine t-scheduler,
        ``inference_cfg_rate = 0.7``, 10 steps, a fixed pre-drawn noise tensor).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

#: Defaults of the paper and the official code.
SIGMA_MIN = 1e-6
N_STEPS = 10
GUIDANCE = 0.7


def _expand_t(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``t (B,)`` (or a scalar) → ``(B, 1, …, 1)`` broadcastable against ``x (B, …)``."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.dim() == 0:
        t = t.expand(x.shape[0])
    if t.dim() != 1 or t.shape[0] != x.shape[0]:
        raise ValueError(f"t must be a scalar or of shape (B,) = ({x.shape[0]},), got {tuple(t.shape)}.")
    return t.view(-1, *([1] * (x.dim() - 1)))


def conditional_flow(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor,
                     sigma_min: float = SIGMA_MIN) -> tuple[torch.Tensor, torch.Tensor]:
    """The point on the OT path at time ``t`` and the velocity to regress on.

    Args:
        x0: noise ``(B, …)``, e.g. ``(B, 80, F)``.
        x1: data ``(B, …)``, the same shape.
        t: ``(B,)`` times in ``[0, 1]`` (one per utterance), broadcast over the other dims.
        sigma_min: the path ends at ``X1 + σ·X0`` rather than exactly ``X1`` (a small Gaussian
            around each data point keeps the field defined everywhere).

    Returns:
        ``x_t (B, …)`` and ``u_t (B, …)``.
    """
    if x0.shape != x1.shape:
        raise ValueError(f"x0 and x1 must have the same shape, got {tuple(x0.shape)} and {tuple(x1.shape)}.")
    tt = _expand_t(t, x1)
    # φ_t = (1 − (1 − σ)·t)·X0 + t·X1   [CV2 Eq. 3]
    x_t = (1 - (1 - sigma_min) * tt) * x0 + tt * x1
    # ω_t = dφ_t/dt = X1 − (1 − σ)·X0   [CV2 Eq. 3]
    u_t = x1 - (1 - sigma_min) * x0
    return x_t, u_t


def cosine_timesteps(n_steps: int = N_STEPS, device=None, dtype=torch.float32) -> torch.Tensor:
    """The time grid ``(n_steps + 1,)`` from 0 to 1.

    ``t_i = 1 − cos(π/2 · i/n)``: the first steps are short (t₁ ≈ 0.012 for n = 10), the last long.
    Near t = 0 the sample is still noise and the field points at the average mel; small steps
    there let the solver follow the field as it bends towards one particular utterance.
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be ≥ 1, got {n_steps}.")
    i = torch.arange(n_steps + 1, device=device, dtype=torch.float64)
    # t_i = 1 − cos(π/2 · i/n)   [CV2 §2.4]
    t = 1 - torch.cos(0.5 * math.pi * i / n_steps)
    return t.to(dtype)


def guided_velocity(v_cond: torch.Tensor, v_uncond: torch.Tensor, w: float = GUIDANCE) -> torch.Tensor:
    """Classifier-free guidance: push the velocity away from the unconditional one.

    ``w = 0`` is the plain conditional model; ``w > 0`` exaggerates what the conditions (mu,
    speaker, prompt) change, which sharpens the mel at some cost of diversity.
    """
    # ṽ = (1 + w)·v(x, t | mu, spk, cond) − w·v(x, t | ∅)   [CV2 §2.4, CFG]
    return (1 + w) * v_cond - w * v_uncond


def euler_solve(velocity: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor], x0: torch.Tensor,
                n_steps: int = N_STEPS, t_span: torch.Tensor | None = None) -> torch.Tensor:
    """Integrate ``dx/dt = velocity(x, t, i)`` from ``x0`` over ``t_span`` with Euler steps.

    Args:
        velocity: ``(x (B, …), t (scalar tensor), i (step index)) → v`` of ``x``'s shape. The step
            index lets a streaming caller keep one key/value cache per step.
        x0: the starting point (the noise), ``(B, …)``.
        n_steps: used only when ``t_span`` is ``None``: the cosine grid of :func:`cosine_timesteps`.
        t_span: any increasing grid ``(n + 1,)``.

    Returns:
        ``x`` at the end of the grid, the shape of ``x0``.
    """
    if t_span is None:
        t_span = cosine_timesteps(n_steps, device=x0.device, dtype=x0.dtype)
    x = x0
    for i in range(len(t_span) - 1):
        t, dt = t_span[i], t_span[i + 1] - t_span[i]
        # x_{i+1} = x_i + (t_{i+1} − t_i)·v(x_i, t_i)
        x = x + dt * velocity(x, t, i)
    return x


class FixedNoise:
    """One pre-drawn noise tensor, sliced by absolute frame position.

    Offline, streamed and re-run-the-prefix synthesis must start the ODE from the *same* noise
    at each frame, or their outputs differ even when the network agrees. The tensor is drawn once
    from its own ``torch.Generator(seed)``, so the global RNG is neither read nor advanced.

    Args:
        n_mels: channels.
        max_frames: frames drawn up front (a longer request is an error, not a silent redraw).
        seed: seed of the private generator.
    """

    def __init__(self, n_mels: int, max_frames: int, seed: int = 0):
        self.n_mels, self.max_frames, self.seed = n_mels, max_frames, seed
        self._noise: torch.Tensor | None = None

    def slice(self, start: int, end: int, device=None, dtype=torch.float32) -> torch.Tensor:
        """Noise of frames ``start … end − 1``: ``(1, n_mels, end − start)``."""
        if not 0 <= start <= end <= self.max_frames:
            raise ValueError(f"noise frames [{start}, {end}) exceed the {self.max_frames} pre-drawn frames "
                             f"({self.max_frames / 50:.0f} s at 50 Hz); raise FlowConfig.max_frames.")
        if self._noise is None:
            gen = torch.Generator().manual_seed(self.seed)
            self._noise = torch.randn(1, self.n_mels, self.max_frames, generator=gen)
        return self._noise[:, :, start:end].to(device=device, dtype=dtype)
