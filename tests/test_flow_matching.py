"""Tests for minicosy.flow.matching: the OT path and its velocity re-derived independently (exact
equality), the cosine grid, guidance, the Euler solver against analytic fields with known
integrals, and the fixed noise (same seed, same noise; the global RNG untouched)."""

import math

import pytest
import torch

from minicosy.flow.matching import FixedNoise, conditional_flow, cosine_timesteps, euler_solve, guided_velocity


def test_conditional_flow_exact():
    torch.manual_seed(0)
    x0, x1, t = torch.randn(3, 80, 17), torch.randn(3, 80, 17), torch.rand(3)
    sigma = 1e-6
    x_t, u_t = conditional_flow(x0, x1, t, sigma)
    for b in range(3):  # one utterance at a time, with Python floats
        tb = float(t[b])
        assert torch.equal(x_t[b], (1 - (1 - sigma) * torch.tensor(tb)) * x0[b] + torch.tensor(tb) * x1[b])
        assert torch.equal(u_t[b], x1[b] - (1 - sigma) * x0[b])
    # the ends of the path: noise at t = 0, data (+ σ·noise) at t = 1
    x_t0, _ = conditional_flow(x0, x1, torch.zeros(3))
    x_t1, _ = conditional_flow(x0, x1, torch.ones(3))
    assert torch.equal(x_t0, x0)
    assert torch.allclose(x_t1, x1 + sigma * x0, atol=1e-6)
    # u_t is the time derivative of x_t (finite difference, float64)
    x0d, x1d = x0.double(), x1.double()
    h = 1e-6
    a, _ = conditional_flow(x0d, x1d, t.double() + h, sigma)
    b_, u = conditional_flow(x0d, x1d, t.double() - h, sigma)
    assert torch.allclose((a - b_) / (2 * h), u, atol=1e-6)


def test_conditional_flow_bad_shapes():
    with pytest.raises(ValueError, match="same shape"):
        conditional_flow(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2))
    with pytest.raises(ValueError, match=r"\(B,\)"):
        conditional_flow(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3))


def test_cosine_timesteps():
    t = cosine_timesteps(10)
    expected = torch.tensor([1 - math.cos(math.pi / 2 * i / 10) for i in range(11)], dtype=torch.float64)
    assert torch.equal(t, expected.float())
    assert t[0] == 0 and abs(float(t[-1]) - 1) < 1e-7 and (t[1:] > t[:-1]).all()
    dt = t[1:] - t[:-1]
    assert (dt[1:] > dt[:-1]).all()  # short steps near the noise, long near the data


def test_guidance():
    vc, vu = torch.tensor([1.0, 2.0]), torch.tensor([0.5, -1.0])
    assert torch.equal(guided_velocity(vc, vu, 0.7), 1.7 * vc - 0.7 * vu)
    assert torch.equal(guided_velocity(vc, vu, 0.0), vc)


def test_euler_is_exact_for_a_field_that_depends_only_on_t():
    # dx/dt = 3t²  →  x(1) = x(0) + 1 in the limit; Euler gives the left Riemann sum Σ 3t_i²·Δt_i exactly
    x0 = torch.tensor([0.25, -2.0], dtype=torch.float64)
    grid = cosine_timesteps(10, dtype=torch.float64)
    x1 = euler_solve(lambda x, t, i: 3 * t ** 2 * torch.ones_like(x), x0, t_span=grid)
    riemann = sum(3 * float(grid[i]) ** 2 * float(grid[i + 1] - grid[i]) for i in range(10))
    assert torch.allclose(x1, x0 + riemann, atol=1e-12, rtol=0)
    errors = [abs(float(euler_solve(lambda x, t, i: 3 * t ** 2 * torch.ones_like(x), x0, n)[0] - x0[0]) - 1)
              for n in (10, 100, 1000)]
    assert errors[2] < 3e-3  # converges to ∫₀¹ 3t² dt = 1 …
    assert 8 < errors[0] / errors[1] < 12 and 8 < errors[1] / errors[2] < 12  # … at first order
    # a constant field is integrated exactly on any grid
    assert torch.allclose(euler_solve(lambda x, t, i: torch.full_like(x, 2.0), x0, 3), x0 + 2.0, atol=1e-12)


def test_euler_linear_ode_and_step_index():
    # dx/dt = −x  →  x(1) = x(0)·e⁻¹
    x0 = torch.tensor([1.0, 3.0], dtype=torch.float64)
    seen = []
    x1 = euler_solve(lambda x, t, i: (seen.append(i), -x)[1], x0, n_steps=2000)
    assert torch.allclose(x1, x0 * math.exp(-1), atol=1e-3)
    assert seen == list(range(2000))


def test_fixed_noise_is_deterministic_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, b = FixedNoise(80, 500, seed=7), FixedNoise(80, 500, seed=7)
    assert torch.equal(a.slice(0, 100), b.slice(0, 100))
    assert torch.equal(a.slice(0, 100)[:, :, 40:], a.slice(40, 100))  # slices of one tensor
    assert not torch.equal(a.slice(0, 50), FixedNoise(80, 500, seed=8).slice(0, 50))
    assert torch.equal(torch.random.get_rng_state(), before)
    with pytest.raises(ValueError, match="pre-drawn"):
        a.slice(0, 501)
