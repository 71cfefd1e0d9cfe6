# %% [markdown]
# # 03 · Flow matching: from speech tokens to a mel spectrogram
#
# **What you build here:** the stage of CosyVoice 2 that turns 25 Hz speech tokens into an 80-bin log-mel at 50 Hz —
# conditional flow matching — first from scratch on a 2-D toy, then the package's model on real speech.
#
# 1. **Flow matching from scratch** on a 2-D toy: the optimal-transport path, its target velocity, the exact
#    field it implies, the cosine time grid and Euler integration, and a small network trained in a few seconds that
#    moves Gaussian noise onto the toy distribution.
# 2. **Classifier-free guidance** — what the paper's $w = 0.7$ does, on the toy (conditional vs unconditional field).
# 3. **The package's model** — token embedding → lookahead convolution → causal blocks → ×2 upsampling → more blocks →
#    `mu`; the estimator over $[x_t, \mu, \text{speaker}, \text{cond}]$; parameters, tiny vs the paper's widths; the
#    shapes through the model for one real utterance; one estimator block written from scratch.
# 4. **The training recipe as code** — what `make_inputs` builds from a batch (a mask per utterance, a prompt on the
#    first 0–30 % of the frames for half of them, CFG dropout 0.2, the loss on the non-prompt frames) and why the loss
#    is a squared error.
# 5. **The trained flow** — ground-truth tokens of a test utterance, a prompt from the same voice and the trained
#    speaker encoder → mel (10 Euler steps, cosine grid, guidance 0.7) → the trained vocoder; the ODE watched step
#    by step; the effect of the step count and of the guidance.
# 6. Four checked **exercises**, one of them guided Euler sampling written yourself.
#
# **Paper:** CosyVoice 2 (Du et al., arXiv 2412.10117) §2.4 (chunk-aware flow matching, Fig. 2) and the flow
# matching it builds on (Lipman et al., ICLR 2023; classifier-free guidance: Ho & Salimans, arXiv 2207.12598). Where
# minicosy departs from the paper or the official code: `docs/paper_vs_code.md` §2 "Flow matching".
#
# **Code:** `minicosy/flow/matching.py` (the path, the target, the cosine grid, guidance, Euler), `minicosy/flow/model.py`
# (`ChunkAwareFlow`), `minicosy/flow/train.py` (`make_inputs`, `flow_loss`), `minicosy/flow/speaker.py`.
#
# **Prerequisites:** notebook 00 (50 Hz log-mel, 25 Hz tokens), 01 (the speech tokenizer), and a little probability.
# The attention masks and streaming are notebook 04's subject; the vocoder is notebook 05's.
#
# **Runtime:** under a minute on 2 CPU cores (default, tiny preset); only the 2-D toy is trained, nothing is downloaded.

# %%
# NBVAL_IGNORE_OUTPUT
import json
import math
import os
from collections import Counter
from pathlib import Path

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch
import torch
import torch.nn as nn
import torch.nn.functional as F
from IPython.display import Audio, display

from minicosy import (ChunkAwareFlow, FlowConfig, SpeakerEncoder, SpeechTokenizer, Vocoder, attention_mask,
                      conditional_flow, load_audio, log_mel, pick_device, seed_everything)
from minicosy.data.manifest import manifest_root, read_manifest
from minicosy.flow.masks import with_padding
from minicosy.flow.matching import GUIDANCE, N_STEPS, SIGMA_MIN, cosine_timesteps, euler_solve, guided_velocity
from minicosy.flow.model import align_tokens_and_frames
from minicosy.flow.train import FlowTrainConfig, attach_tokens, flow_loss, load_mels, make_inputs, speaker_vectors
from minicosy.utils import FIXTURES_DIR, REPO_ROOT, slider_player

PRESET = os.environ.get("MINICOSY_PRESET", "tiny")  # the trained checkpoints in data/pretrained/ are tiny ones
PRETRAINED = REPO_ROOT / "data" / "pretrained" / PRESET  # paths from the repository root
FLOW_STEM = Path(os.environ.get("MINICOSY_FLOW_STEM", PRETRAINED / "flow"))  # the trained flow of section 5
FIXTURES = FIXTURES_DIR / "manifest.jsonl"  # the small slice of the corpus in data/fixtures
seed_everything(0)
torch.set_num_threads(1)  # small models: one thread is fastest, and robust on a shared CPU
plt.rcParams["figure.dpi"] = 90
plt.rcParams["image.interpolation"] = "nearest"
MEL_CMAP = plt.get_cmap("magma", 32)
device = torch.device("cpu")  # pinned: the toy trains on the CPU, and the tiny flow is fastest there
flow_name = FLOW_STEM.relative_to(REPO_ROOT) if FLOW_STEM.is_relative_to(REPO_ROOT) else FLOW_STEM.name
print(f"device: {device} (pinned; pick_device() would choose {pick_device()}) | preset: {PRESET} | flow: {flow_name}")

# %% [markdown]
# ## 1 · Flow matching from scratch, on a 2-D toy
#
# A generative model must turn samples of an easy distribution — Gaussian noise $X_0 \sim \mathcal N(0, I)$ — into
# samples of the data distribution $X_1$. **Flow matching** learns a *velocity field* $v(x, t)$ for $t \in [0, 1]$ and
# generates by integrating the ODE
#
# $$\frac{dx}{dt} = v(x, t), \qquad x(0) \sim \mathcal N(0, I) \;\Longrightarrow\; x(1) \sim \text{data}.$$
#
# Training needs no ODE at all. Pair a noise sample $X_0$ with a data sample $X_1$, put a point on the straight line
# between them, and regress the network on the line's velocity. CosyVoice 2 (§2.4) writes this optimal-transport (OT)
# path as $\phi_t = (1 - t)\,X_0 + t\,X_1$, with velocity $\omega_t = X_1 - X_0$. Its official code (`ConditionalCFM` in
# `cosyvoice/flow/flow_matching.py`) keeps, as Lipman et al. do, a small $\sigma_{\min}$ — and so does minicosy:
#
# $$\phi_t = \big(1 - (1 - \sigma)\,t\big)\,X_0 + t\,X_1, \qquad
# \omega_t = \frac{d\phi_t}{dt} = X_1 - (1 - \sigma)\,X_0, \qquad \sigma = 10^{-6},$$
#
# $$\mathcal L = \mathbb E_{t, X_0, X_1}\, \big\lVert v_\theta(\phi_t, t) - \omega_t \big\rVert^2 .$$
#
# At $t = 0$ the point is pure noise; at $t = 1$ it is $X_1 + \sigma X_0$ (a tiny Gaussian around the data point keeps
# the field defined everywhere). With $\sigma = 10^{-6}$ the two forms differ by $\sigma t X_0$, far below anything a
# network resolves (checked below). In the package the pair $(\phi_t, \omega_t)$ is `conditional_flow(x0, x1, t)`;
# `sigma_min=0` gives the paper's form.
#
# **The toy.** Eight Gaussian blobs on a circle of radius 2, in two **classes** — even and odd blobs — which section 2
# uses as the condition. (In the real model the condition is the speech tokens, the speaker and the prompt.)

# %%
K_BLOBS, RADIUS, BLOB_STD, N_CLASSES = 8, 2.0, 0.15, 2
angles = 2 * math.pi * torch.arange(K_BLOBS) / K_BLOBS
CENTERS = torch.stack([RADIUS * angles.cos(), RADIUS * angles.sin()], dim=1)  # (8, 2); blob k is class k % 2
NULL = N_CLASSES  # the "no condition" label of classifier-free guidance (section 2)


def sample_toy(n, gen):
    # n points of the toy data (n, 2) and their classes (n,)
    k = torch.randint(0, K_BLOBS, (n,), generator=gen)
    return CENTERS[k] + BLOB_STD * torch.randn(n, 2, generator=gen), k % N_CLASSES


def conditional_flow_from_scratch(x0, x1, t, sigma=SIGMA_MIN):
    t = t[:, None]  # (B,) → (B, 1): one time per sample
    x_t = (1 - (1 - sigma) * t) * x0 + t * x1  # φ_t = (1 − (1 − σ)t)·X0 + t·X1   [CV2 §2.4, σ as Lipman et al.]
    u_t = x1 - (1 - sigma) * x0  # ω_t = X1 − (1 − σ)·X0   [CV2 §2.4, σ as Lipman et al.]
    return x_t, u_t


g = torch.Generator().manual_seed(0)
x1, cls = sample_toy(4096, g)
x0 = torch.randn(x1.shape, generator=g)
t = torch.rand(4096, generator=g)
ours = conditional_flow_from_scratch(x0, x1, t)
package = conditional_flow(x0, x1, t)
assert all(torch.equal(a, b) for a, b in zip(ours, package))  # bit for bit the package's path
assert torch.allclose(conditional_flow(x0, x1, torch.ones(4096))[0], x1 + SIGMA_MIN * x0, atol=1e-6)  # t = 1: X1 + σX0
x_paper, u_paper = conditional_flow(x0, x1, t, sigma_min=0.0)  # the paper's form: σ = 0
assert torch.allclose(x_paper, (1 - t[:, None]) * x0 + t[:, None] * x1) and torch.equal(u_paper, x1 - x0)
gap = float((package[0] - x_paper).abs().max())
print("from-scratch (x_t, u_t) == minicosy.conditional_flow:", True)
print(f"largest |φ_t(σ = 1e-6) − φ_t(σ = 0)| over 4,096 pairs: {gap:.1e}")
assert gap <= 1e-6 * float(x0.abs().max()) + 1e-6


# %% [markdown]
# The training pairs are **independent**: any noise point may be paired with any data point, so the straight lines
# cross (left panel). The network cannot know which line a point $x_t$ came from; minimising the squared error it
# learns the **average** velocity of all the lines through $x_t$ (Lipman et al., Thm. 2):
#
# $$v^\star(x, t) = \mathbb E\big[\,\omega_t \,\big|\, \phi_t = x\,\big].$$
#
# For the toy this field has a closed form. Given blob $k$ (mean $\mu_k$, variance $s^2 I$) and $a = 1 - (1-\sigma)t$,
# $x_t$ is Gaussian with mean $t\mu_k$ and variance $V = a^2 + t^2 s^2$, and Gaussian conditioning gives
#
# $$v^\star(x, t) = \sum_k p(k \mid x)\Big[\mu_k + \frac{t s^2 - (1 - \sigma) a}{V}\,(x - t\mu_k)\Big], \qquad
# p(k \mid x) \propto \exp\!\Big(-\frac{\lVert x - t\mu_k \rVert^2}{2V}\Big).$$
#
# We check it against the definition — the average $\omega_t$ of the sampled pairs whose $x_t$ falls in a small disc
# — and draw its trajectories (right panel): they bend and never cross. At $t = 0$ every $p(k \mid x)$ is the prior, so
# $v^\star(x, 0) = \bar\mu - (1-\sigma)x$ points every sample at the **mean of the data**, here the centre of the ring.

# %%
def exact_field(x, t, centers=CENTERS, s=BLOB_STD, sigma=SIGMA_MIN):
    # v*(x, t) = E[ω_t | φ_t = x] for data = equal-weight Gaussian blobs at `centers`; x (n, 2), t scalar or (n,)
    t = torch.as_tensor(t, dtype=x.dtype).reshape(-1, 1).expand(x.shape[0], 1)  # (n, 1)
    a = 1 - (1 - sigma) * t
    V = a ** 2 + t ** 2 * s ** 2  # Var(x_t | k), per dimension
    d = x[:, None, :] - t[:, :, None] * centers[None]  # x − t·μ_k: (n, K, 2)
    post = (-(d ** 2).sum(-1) / (2 * V)).softmax(dim=1)  # p(k | x): (n, K)
    u_k = centers[None] + ((t * s ** 2 - (1 - sigma) * a) / V)[:, :, None] * d  # E[ω_t | x, k]
    return (post[..., None] * u_k).sum(1)


def class_field(x, t, c):
    # the exact field of each sample's condition: its class's four blobs, or all eight for NULL; t, c (n,)
    out = exact_field(x, t)
    for k in range(N_CLASSES):
        m = c == k
        out[m] = exact_field(x[m], t[m], CENTERS[k::N_CLASSES])
    return out


# the definition, by Monte Carlo: 400 000 pairs at t = 0.5, those whose x_t lands within 0.1 of a point
g = torch.Generator().manual_seed(1)
xb, _ = sample_toy(400_000, g)
x_half, u_half = conditional_flow(torch.randn(xb.shape, generator=g), xb, torch.full((400_000,), 0.5))
point = torch.tensor([0.6, 0.25])
near = (x_half - point).norm(dim=1) < 0.1
u_near = u_half[near]  # the velocities of every line through the disc
mc_mean, exact = u_near.mean(0), exact_field(point[None], 0.5)[0]
print(f"{int(near.sum())} lines through the disc: mean ω_t {np.round(mc_mean.numpy(), 2)} | v* {np.round(exact.numpy(), 2)}")
assert (mc_mean - exact).norm() < 0.1

# %%
g = torch.Generator().manual_seed(2)
pairs1, _ = sample_toy(40, g)
pairs0 = torch.randn(pairs1.shape, generator=g)
start = torch.randn(300, 2, generator=torch.Generator().manual_seed(3))
path = []  # the exact field's trajectories, integrated finely (200 Euler steps on a uniform grid)
end = euler_solve(lambda x, t, i: (path.append(x), exact_field(x, t))[1], start, t_span=torch.linspace(0, 1, 201))
path = torch.stack(path + [end])  # (201, 300, 2)
toy_data, _ = sample_toy(2000, torch.Generator().manual_seed(4))

fig, ax = plt.subplots(1, 2, figsize=(10, 4.6))
for a0, a1 in zip(pairs0, pairs1):
    ax[0].plot([a0[0], a1[0]], [a0[1], a1[1]], color="grey", lw=0.6, alpha=0.6)
ax[0].scatter(*pairs0.T, s=10, color="tab:blue", label="X0 (noise)")
ax[0].scatter(*pairs1.T, s=10, color="tab:orange", label="X1 (data)")
ax[0].set(title="training: independent pairs, straight lines")
ax[1].scatter(*toy_data.T, s=2, color="tab:orange", alpha=0.3, label="data")
lines = ax[1].plot(path[:, :60, 0].numpy(), path[:, :60, 1].numpy(), color="tab:green", lw=0.6)
lines[0].set_label("trajectories of v*")
ax[1].scatter(*path[0, :60].T, s=8, color="tab:blue", label="starts (noise)")
ax[1].set(title="the field they average to: v*(x, t), curved trajectories")
for a in ax:
    a.set(xlim=(-3.2, 3.2), ylim=(-3.2, 3.2), aspect="equal", xlabel="x[0]", ylabel="x[1]")
    a.legend(loc="lower left", fontsize=8)
plt.tight_layout()
plt.show()


# %% [markdown]
# ### Integrating: Euler on the cosine grid
#
# The package integrates with Euler steps, $x_{i+1} = x_i + (t_{i+1} - t_i)\,v(x_i, t_i)$, on CosyVoice 2's cosine
# grid (§2.4, as the official `ConditionalCFM`):
#
# $$t_i = 1 - \cos\Big(\frac{\pi}{2}\cdot\frac{i}{n}\Big), \qquad i = 0, \dots, n.$$
#
# The first steps are short ($t_1 \approx 0.012$ for $n = 10$) and the last long: near $t = 0$ the field still points
# at the mean and then quickly turns towards one particular blob (one particular utterance), so the solver follows
# the bend with small steps there. Two checks: our own loop equals `euler_solve`, and Euler is **exact** on a single
# straight path — with one data point the field $v(x, t) = \frac{X_1 - (1-\sigma)x}{1 - (1-\sigma)t}$ is constant along
# every trajectory, so even **one** step lands on $X_1 + \sigma X_0$. The curvature of the *averaged* field is the only
# reason to take several steps.

# %%
# NBVAL_CHECK_OUTPUT
def cosine_grid_from_scratch(n):
    i = torch.arange(n + 1, dtype=torch.float64)
    return (1 - torch.cos(0.5 * math.pi * i / n)).float()  # t_i = 1 − cos(π/2 · i/n)   [CV2 §2.4]


def euler_from_scratch(v, x, ts):
    for t0, t1 in zip(ts[:-1], ts[1:]):
        x = x + (t1 - t0) * v(x, t0)  # x_{i+1} = x_i + (t_{i+1} − t_i)·v(x_i, t_i)
    return x


assert torch.equal(cosine_grid_from_scratch(N_STEPS), cosine_timesteps(N_STEPS))
start = torch.randn(500, 2, generator=torch.Generator().manual_seed(5))
assert torch.equal(euler_from_scratch(exact_field, start, cosine_timesteps(N_STEPS)),
                   euler_solve(lambda x, t, i: exact_field(x, t), start, N_STEPS))
print("cosine grid, n = 10:", [round(float(v), 3) for v in cosine_timesteps(N_STEPS)])

# one data point: the field is constant along each straight line, so Euler is exact for any number of steps
target = torch.tensor([[1.5, -0.5]])
single = lambda x, t: (target - (1 - SIGMA_MIN) * x) / (1 - (1 - SIGMA_MIN) * t)  # v for a one-point data set
for n in (1, 2, 10):
    assert torch.allclose(euler_solve(lambda x, t, i: single(x, t), start, n), target + SIGMA_MIN * start, atol=1e-5)
print("one data point: 1, 2 and 10 Euler steps all land on X1 + σ·X0")


# %% [markdown]
# ### A network learns the field
#
# Now forget the formula and learn $v_\theta$ from samples, exactly as the real model does: a small MLP of $x$, a
# sinusoidal embedding of $t$ and a class embedding (with an extra "no condition" label, used 20 % of the time —
# section 2 needs it), trained on `conditional_flow` targets with the squared error, 1,500 steps of 256 pairs. The loss
# cannot reach zero: $\omega_t$ varies around its mean at every $x_t$ (the lines through a point
# disagree). Its floor is the loss of the exact field $v^\star$ itself, computed with the formula above.

# %%
class ToyField(nn.Module):
    # v_θ(x, t | c): an MLP over [x, sinusoidal(t), class embedding]; class NULL = no condition

    def __init__(self, hidden=128, n_freq=8):
        super().__init__()
        self.register_buffer("freqs", math.pi * torch.arange(1, n_freq + 1, dtype=torch.float32))
        self.cls = nn.Embedding(N_CLASSES + 1, 16)
        self.net = nn.Sequential(nn.Linear(2 + 2 * n_freq + 16, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 2))

    def forward(self, x, t, c):
        t = torch.as_tensor(t, dtype=x.dtype).reshape(-1).expand(x.shape[0])  # a scalar t (the solver's) or (n,)
        temb = torch.cat([torch.sin(t[:, None] * self.freqs), torch.cos(t[:, None] * self.freqs)], dim=1)
        return self.net(torch.cat([x, temb, self.cls(c)], dim=1))


torch.manual_seed(0)
toy = ToyField()
opt = torch.optim.Adam(toy.parameters(), lr=3e-3)
TOY_STEPS, TOY_BATCH, P_UNCOND = 1500, 256, 0.2
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, TOY_STEPS)
g = torch.Generator().manual_seed(0)
toy_losses = []
for step in range(TOY_STEPS):
    x1, c = sample_toy(TOY_BATCH, g)
    x0 = torch.randn(x1.shape, generator=g)
    t = torch.rand(TOY_BATCH, generator=g)
    c = torch.where(torch.rand(TOY_BATCH, generator=g) < P_UNCOND, torch.full_like(c, NULL), c)  # CFG dropout
    x_t, u_t = conditional_flow(x0, x1, t)
    loss = ((toy(x_t, t, c) - u_t) ** 2).mean()  # ‖v_θ(φ_t, t | c) − ω_t‖²
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    toy_losses.append(loss.item())
toy.eval()

# the floor: the exact (class-conditional) field on fresh samples, and the network on the same samples
g = torch.Generator().manual_seed(6)
x1, c = sample_toy(20_000, g)
c = torch.where(torch.rand(20_000, generator=g) < P_UNCOND, torch.full_like(c, NULL), c)
t = torch.rand(20_000, generator=g)
x_t, u_t = conditional_flow(torch.randn(x1.shape, generator=g), x1, t)
with torch.no_grad():
    v_net = toy(x_t, t, c)
floor = float(((class_field(x_t, t, c) - u_t) ** 2).mean())
net_loss = float(((v_net - u_t) ** 2).mean())
field_err = float(((v_net - class_field(x_t, t, c)) ** 2).mean())
print(f"loss: first 50 steps {np.mean(toy_losses[:50]):.3f} → held-out {net_loss:.3f}; floor (exact field) {floor:.3f}; "
      f"‖v_θ − v*‖² = {field_err:.3f}")
assert net_loss < 1.1 * floor and field_err < 0.1 * floor  # the network has learned v*, up to a few per cent


# %% [markdown]
# **Sampling** is the ODE from noise, with the package's own `euler_solve` and cosine grid, for 1, 2, 5 and 10 steps
# (unconditional: class `NULL`). One step lands every sample near the centre — the field at $t = 0$ points at the mean
# — and the blobs appear as the steps resolve the bend. Below, the 10-step trajectories of a few samples.

# %%
@torch.no_grad()
def toy_sample(n_steps=N_STEPS, cls=NULL, w=0.0, n=2000, seed=1, record=None):
    # Euler over the cosine grid from fixed noise; w > 0: classifier-free guidance towards `cls` (section 2)
    x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    c, c_null = torch.full((n,), cls), torch.full((n,), NULL)

    def velocity(x, t, i):
        if record is not None:
            record.append(x)
        v_cond = toy(x, t, c)
        return v_cond if w == 0 else guided_velocity(v_cond, toy(x, t, c_null), w)

    x = euler_solve(velocity, x0, n_steps)
    if record is not None:
        record.append(x)
    return x


def blob_distance(x):
    return float(torch.cdist(x, CENTERS).min(1).values.mean())  # mean distance to the nearest blob centre


steps_list = (1, 2, 5, 10)
samples = {n: toy_sample(n) for n in steps_list}
dist = {n: blob_distance(x) for n, x in samples.items()}
radius = {n: float(x.norm(dim=1).mean()) for n, x in samples.items()}
data_dist = blob_distance(toy_data)
print("mean distance to the nearest blob:", {n: round(d, 2) for n, d in dist.items()}, f"| the data itself: {data_dist:.2f}")
print("mean radius:", {n: round(r, 2) for n, r in radius.items()}, f"| the ring: {RADIUS}")
assert radius[1] < 0.5 * RADIUS  # one step: near the mean of the data, the centre
assert dist[10] < dist[2] < dist[1] and dist[10] < 2.5 * data_dist  # more steps: onto the blobs

# %%
traj = []
toy_sample(N_STEPS, n=40, seed=7, record=traj)
traj = torch.stack(traj)  # (11, 40, 2): x at every grid time
fig, ax = plt.subplots(1, 5, figsize=(15, 3.3))
for a, n in zip(ax, steps_list):
    a.scatter(*toy_data.T, s=1, color="tab:orange", alpha=0.15)
    a.scatter(*samples[n][:600].T, s=2, color="tab:blue")
    a.set(title=f"{n} Euler step{'s' if n > 1 else ''}", xlim=(-3, 3), ylim=(-3, 3), aspect="equal", xlabel="x[0]")
ax[4].scatter(*toy_data.T, s=1, color="tab:orange", alpha=0.15)
ax[4].plot(traj[:, :, 0].numpy(), traj[:, :, 1].numpy(), color="tab:green", lw=0.7, marker=".", ms=3)
ax[4].set(title="10 steps: trajectories", xlim=(-3, 3), ylim=(-3, 3), aspect="equal", xlabel="x[0]")
ax[0].set_ylabel("x[1]")
ax[0].legend(handles=[Patch(color="tab:orange", label="data"), Patch(color="tab:blue", label="samples")], fontsize=8,
             loc="lower left")
plt.tight_layout()
plt.show()

# %% [markdown]
# The dots on the trajectories are the cosine grid: dense at the start, where each sample chooses its blob, sparse at
# the end, where it only travels straight in.

# %% [markdown]
# ## 2 · Classifier-free guidance
#
# A conditional model $v(x, t \mid c)$ follows the condition only as sharply as it learned to. **Classifier-free
# guidance** (Ho & Salimans) trains the *same* network also without the condition — in CosyVoice 2 the flow drops
# `mu`, the speaker and the prompt together with probability 0.2 — and at inference extrapolates away from the
# unconditional field (`guided_velocity` in `matching.py`):
#
# $$\tilde v = (1 + w)\,v(x, t \mid c) - w\,v(x, t \mid \varnothing) = v(x, t \mid c) + w\,\big[v(x, t \mid c) - v(x, t \mid \varnothing)\big].$$
#
# $w = 0$ is the plain conditional model; $w > 0$ exaggerates what the condition changes. CosyVoice 2 uses
# $w = 0.7$. The package runs the conditional and the unconditional pass as **one batch of two**, so guidance doubles
# the estimator's work but not the number of calls.
#
# On the toy the condition is the class (even or odd blobs). Sampling class 0 (the even blobs, ●), we count how many
# samples end nearest a blob of the right class:

# %%
v_c, v_u = torch.randn(3, 2), torch.randn(3, 2)
assert torch.allclose(guided_velocity(v_c, v_u, 0.7), v_c + 0.7 * (v_c - v_u))  # the two forms above
assert torch.equal(guided_velocity(v_c, v_u, 0.0), v_c) and torch.allclose(guided_velocity(v_c, v_u, -1.0), v_u)

even = torch.arange(K_BLOBS) % N_CLASSES == 0
guided = {w: toy_sample(N_STEPS, cls=0, w=w) for w in (0.0, 0.7, 1.5)}
right = {w: float(even[torch.cdist(x, CENTERS).argmin(1)].float().mean()) for w, x in guided.items()}
spread = {w: blob_distance(x) for w, x in guided.items()}
print("share of class-0 samples on a class-0 blob:", {w: round(r, 3) for w, r in right.items()})
print("mean distance to the nearest blob:        ", {w: round(d, 3) for w, d in spread.items()})
print(f"the data's own blobs: {data_dist:.3f}")
assert right[0.7] > right[0.0] and right[1.5] > right[0.0]  # guidance follows the condition more faithfully ...
assert all(1 - right[w] < 0.5 * (1 - right[0.0]) for w in (0.7, 1.5))  # ... removing most of the strays ...
assert spread[1.5] < spread[0.0] and spread[1.5] < data_dist  # ... and tightening the blobs, past the data's own

# %%
fig, ax = plt.subplots(1, 3, figsize=(12, 4))
for a, (w, x) in zip(ax, guided.items()):
    a.scatter(*toy_data.T, s=1, color="lightgrey")
    a.scatter(*x[:800].T, s=2, color="tab:blue")
    a.scatter(*CENTERS[even].T, s=80, facecolors="none", edgecolors="tab:green", lw=2, label="class 0 blobs")
    a.set(title=f"class 0, w = {w}: {100 * right[w]:.1f} % on class 0", xlim=(-3, 3), ylim=(-3, 3), aspect="equal",
          xlabel="x[0]", ylabel="x[1]")
ax[0].legend(loc="lower left", fontsize=8)
plt.tight_layout()
plt.show()


# %% [markdown]
# Guidance removes most of the samples that strayed to a wrong blob (the share off class 0 printed above more than
# halves), and it tightens the blobs — past the data: at $w = 1.5$ the samples sit closer to the blob centres than the
# real points do (squeezed into narrow streaks; both asserted). That is
# the trade-off of guidance: fidelity to the condition against diversity; in speech, too much of it gives over-sharpened,
# exaggerated spectra, which is why the paper stops at 0.7 rather than "as much as possible". Section 5 turns the same
# knob on real mel.
#
# **Try it.** The sliders re-sample class 0 with another number of Euler steps and another guidance weight.

# %%
def toy_player(n_steps=N_STEPS, w=GUIDANCE):
    x = toy_sample(n_steps, cls=0, w=w)
    on_class = float(even[torch.cdist(x, CENTERS).argmin(1)].float().mean())
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(*toy_data.T, s=1, color="lightgrey")
    ax.scatter(*x[:800].T, s=2, color="tab:blue")
    ax.set(title=f"{n_steps} steps, w = {w}: {100 * on_class:.1f} % on class 0", xlim=(-3, 3), ylim=(-3, 3),
           aspect="equal", xlabel="x[0]", ylabel="x[1]")
    plt.tight_layout()
    plt.show()


slider_player(toy_player,
              n_steps=widgets.IntSlider(value=N_STEPS, min=1, max=40, description="Euler steps", continuous_update=False),
              w=widgets.FloatSlider(value=GUIDANCE, min=0.0, max=4.0, step=0.1, description="guidance w",
                                    continuous_update=False))

# %% [markdown]
# ## 3 · The package's model: `ChunkAwareFlow`
#
# The toy's $x$ was 2 numbers; CosyVoice 2's is a whole mel spectrogram, $x \in \mathbb R^{80 \times F}$ at 50 Hz, and
# its condition is the speech tokens at 25 Hz, a speaker vector and a prompt. Fig. 2 of the paper, as built in
# `minicosy/flow/model.py`:
#
# ```
# tokens (T) ─▶ embed ─▶ lookahead conv ─▶ causal blocks ─▶ ×2 upsample ─▶ causal blocks ─▶ mu (80, 2T)
#                        (sees P = 4 future tokens)        (25 → 50 Hz)
# [x_t, mu, speaker, cond] (4·80, 2T) ─▶ estimator: causal convs + masked attention, time t ─▶ v (80, 2T)
# ```
#
# * the **token encoder** turns tokens into `mu`: 80 channels of content features per 50 Hz frame. No loss touches
#   `mu` directly (only the velocity is trained), so it is not a mel — section 5 draws it;
# * the **estimator** is the velocity network $v_\theta(x_t, t \mid \mu, \text{spk}, \text{cond})$; its input stacks four
#   80-channel signals: the current point $x_t$, `mu`, the projected speaker vector broadcast over time, and `cond` —
#   the prompt's mel on the first frames, zeros elsewhere;
# * the attention masks (non-causal, full-causal, chunk) and the lookahead are notebook 04's subject; here everything
#   runs offline with the non-causal mask.
#
# We load the trained tiny flow, and count the parameters of the same architecture at the paper's widths. The paper
# preset is built on PyTorch's `meta` device: shapes only, no memory, no initialisation.

# %%
flow = ChunkAwareFlow.from_pretrained(FLOW_STEM, device=device)
cfg, UP = flow.cfg, flow.cfg.up
with torch.device("meta"):
    paper = ChunkAwareFlow(FlowConfig.paper())  # vocab 6561 = 3^8 FSQ codes, 192-d x-vector


def part_counts(m):
    enc = m.encoder
    parts = {"token embedding": enc.embed, "lookahead conv": enc.lookahead, "blocks at 25 Hz": enc.pre,
             "×2 upsampling conv": enc.up_conv, "blocks at 50 Hz": enc.post, "norm + projection to 80": [enc.norm, enc.proj],
             "speaker projection": m.spk_proj, "estimator": m.estimator}
    mods = lambda p: p if isinstance(p, (list, nn.ModuleList)) else [p]
    return {k: sum(q.numel() for mod in mods(p) for q in mod.parameters()) for k, p in parts.items()}


# %%
# NBVAL_CHECK_OUTPUT
tiny_parts, paper_parts = part_counts(flow), part_counts(paper)
print(f"{'':26s} {'tiny (trained)':>15s} {'paper widths':>15s}")
for k in tiny_parts:
    print(f"{k:26s} {tiny_parts[k]:15,d} {paper_parts[k]:15,d}")
print(f"{'total':26s} {flow.num_parameters():15,d} {paper.num_parameters():15,d}")
print(f"tiny: d_enc {cfg.d_enc}, {cfg.enc_pre_layers}+{cfg.enc_post_layers} encoder blocks, d_est {cfg.d_est}, "
      f"{cfg.est_layers} estimator layers, vocab {cfg.vocab_size}, speaker {cfg.spk_dim}-d, lookahead P = {cfg.lookahead}")
blocks_share = (paper_parts["blocks at 25 Hz"] + paper_parts["blocks at 50 Hz"]) / paper.num_parameters()
print(f"tiny / paper: {flow.num_parameters() / paper.num_parameters():.3f} | estimator share, tiny: "
      f"{tiny_parts['estimator'] / flow.num_parameters():.2f} | encoder-block share, paper: {blocks_share:.2f}")
assert sum(tiny_parts.values()) == flow.num_parameters() and sum(paper_parts.values()) == paper.num_parameters()
assert tiny_parts["estimator"] > 0.5 * flow.num_parameters() and blocks_share > 0.5

# %% [markdown]
# The same code at the paper's widths (encoder $d = 512$ with 6 + 4 blocks, estimator $d = 256$ with 12 layers) has
# the parameter count printed above, most of it in the encoder's transformer blocks; the tiny preset keeps the
# architecture at a small fraction of that — most of it in the estimator (both shares printed and asserted) — so that
# it trains on two CPU cores (section 5 prints how long the trained checkpoint took).
#
# ### One real utterance through the model
#
# A fixture test utterance (a train voice, `flite_slt`, never trained on) and a prompt from the same voice. Its
# speech tokens come from the trained speech tokenizer (notebook 01) at 16 kHz; its mel from `log_mel` at 24 kHz.

# %%
tokenizer = SpeechTokenizer.from_pretrained(PRETRAINED / "speech_tokenizer", device=device)
speaker_encoder = SpeakerEncoder.from_pretrained(PRETRAINED / "speaker", device=device)
vocoder = Vocoder.from_pretrained(PRETRAINED, device=device)
SR, HOP = vocoder.cfg.sample_rate, vocoder.cfg.hop_length  # 24 kHz, 480 samples = one 50 Hz frame
root = manifest_root(FIXTURES)
fixtures = {u.id: u for u in read_manifest(FIXTURES)}
# every fixture clip's tokens at once (section 4 trains on some of them)
fixture_tokens = dict(zip(fixtures, tokenizer.encode_batch([load_audio(u.audio_path(root), 16000) for u in fixtures.values()], 16000)))
TEST_ID, PROMPT_ID = "flite_slt-test-00000", "flite_slt-valid-00000"
wav = torch.as_tensor(load_audio(fixtures[TEST_ID].audio_path(root), SR))
raw_tokens, raw_mel = fixture_tokens[TEST_ID], log_mel(wav)  # (T,), (80, F)
tokens, mel = align_tokens_and_frames(raw_tokens, raw_mel, UP)
prompt_wav = torch.as_tensor(load_audio(fixtures[PROMPT_ID].audio_path(root), SR))
prompt_tokens, prompt_mel = align_tokens_and_frames(fixture_tokens[PROMPT_ID], log_mel(prompt_wav), UP)
spk = speaker_encoder.embed(prompt_mel)  # (spk_dim,): the prompt's voice, L2-normalised

# %% [markdown]
# **Tokens and frames.** The rule is two mel frames per token. The tokenizer gives $\lfloor n_{16k} / 640 \rfloor$ tokens
# and the mel front end $\lfloor n_{24k} / 480 \rfloor$ (+1) frames, so the two disagree by a frame or a token at the end;
# `align_tokens_and_frames` keeps $n = \min(\lfloor F/2 \rfloor, T)$ tokens and exactly $2n$ frames (the official
# rule). Training and evaluation both crop this way.

# %%
# NBVAL_CHECK_OUTPUT
print(f"'{fixtures[TEST_ID].text}' ({fixtures[TEST_ID].duration} s)")
print(f"tokenizer: {raw_tokens.numel()} tokens (25 Hz) | log_mel: {raw_mel.shape[1]} frames (50 Hz)"
      f" → aligned: {tokens.numel()} tokens, {mel.shape[1]} frames")
print(f"prompt '{fixtures[PROMPT_ID].text}': {prompt_tokens.numel()} tokens, {prompt_mel.shape[1]} frames | "
      f"speaker vector {tuple(spk.shape)}, norm {float(spk.norm()):.3f}")
assert mel.shape[1] == UP * tokens.numel() and prompt_mel.shape[1] == UP * prompt_tokens.numel()
assert abs(raw_mel.shape[1] - UP * raw_tokens.numel()) <= 2  # the lengths disagree by a frame or a token at most

# %% [markdown]
# **Shapes.** Forward hooks on the package's modules record what flows through one inference call (one Euler step
# here). The prompt's tokens are **prepended**, so the encoder sees $T_p + T$ tokens and the estimator $2(T_p + T)$
# frames; with guidance the estimator's batch is 2 (conditional and unconditional). The output is trimmed back to the
# $2T$ frames of the utterance.

# %%
# NBVAL_CHECK_OUTPUT
shapes = []
probes = {"token embedding": flow.encoder.embed, "lookahead conv": flow.encoder.lookahead,
          "blocks at 25 Hz": flow.encoder.pre[-1], "×2 upsampling conv": flow.encoder.up_conv,
          "blocks at 50 Hz": flow.encoder.post[-1], "projection (mu, B·F·80)": flow.encoder.proj,
          "estimator input conv": flow.estimator.inp, "estimator blocks": flow.estimator.blocks[-1],
          "estimator output (v)": flow.estimator.out}
hooks = [m.register_forward_hook(lambda mod, args, out, name=name: shapes.append((name, tuple(out.shape))))
         for name, m in probes.items()]
out = flow.inference(tokens, prompt_tokens, prompt_mel, spk, n_steps=1)
for h in hooks:
    h.remove()
T_all = prompt_tokens.numel() + tokens.numel()
print(f"tokens {tokens.numel()} + prompt {prompt_tokens.numel()} = {T_all} → frames {UP * T_all}")
for name, shape in shapes:
    print(f"  {name:26s} {shape}")
print("output (trimmed of the prompt):", tuple(out.shape))
assert out.shape == mel.shape and dict(shapes)["estimator output (v)"] == (2, UP * T_all, cfg.n_mels)

# %% [markdown]
# ### Inside the estimator: one block, by hand
#
# The estimator stacks its four inputs on channels, $h^0 = \mathrm{CausalConv}([x_t;\ \mu;\ s;\ c])$, embeds the time
# $t$ once, and then repeats one pair of blocks `est_layers` times (a flat stack: the official estimator is a 1-D U-Net
# of such blocks, `# simplification:` in `minicosy/flow/model.py`). One pair:
#
# $$e = \mathrm{MLP}\big(\big[\sin(1000\,t\,\omega_k),\ \cos(1000\,t\,\omega_k)\big]_k\big), \qquad \omega_k = 10000^{-k/(K-1)}$$
#
# $$h' = h + \mathrm{CausalConv}_2\Big(\mathrm{Mish}\big(\mathrm{CausalConv}_1(\mathrm{LN}(h)) + W e\big)\Big)
# \qquad \text{(time-conditioned causal ResNet block)}$$
#
# $$h'' = h' + \mathrm{Attn}\big(\mathrm{LN}(h')\big), \qquad h''' = h'' + \mathrm{MLP}\big(\mathrm{LN}(h'')\big)
# \qquad \text{(pre-norm transformer block, rotary positions)}$$
#
# A causal convolution of kernel $k$ pads $k - 1$ zeros on the left only, so frame $f$ sees frames $f-k+1..f$. Below,
# the whole chain from the four inputs to the first pair's output, in plain torch with the trained weights of
# `flow.estimator`, against the package's own modules (captured with forward hooks) during a real velocity call on
# the utterance above: the state is the fixed noise at $t = 0.3$, no mask (offline).

# %%
def causal_conv(x, conv):
    # x (B, C_in, F) → (B, C_out, F): k − 1 zeros on the left, none on the right
    return F.conv1d(F.pad(x, (conv.weight.shape[-1] - 1, 0)), conv.weight, conv.bias)


def rotary_from_scratch(x):
    # rotate channel pairs (x[2i], x[2i+1]) of x (B, nh, F, hs) by the angle f·10000^(−2i/hs) of frame f
    F_, hs = x.shape[-2:]
    ang = torch.arange(F_).float()[:, None] / 10000 ** (torch.arange(0, hs, 2).float() / hs)  # (F, hs/2)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * ang.cos() - x2 * ang.sin(), x1 * ang.sin() + x2 * ang.cos()), dim=-1).flatten(-2)


def first_pair_from_scratch(est, x, mu, spk, cond, t):
    # x, mu, cond (B, 80, F); spk (B, 80), projected; t (B,) → (h' after the ResNet block, h''' after the transformer)
    half = est.t_dim // 2
    omega = torch.exp(-math.log(10000.0) * torch.arange(half) / (half - 1))
    ang = 1000.0 * t[:, None] * omega[None]
    e = est.time_mlp(torch.cat([ang.sin(), ang.cos()], dim=1))  # the time MLP: Linear, SiLU, Linear
    h = causal_conv(torch.cat([x, mu, spk[:, :, None].expand_as(x), cond], dim=1), est.inp).transpose(1, 2)  # (B, F, d)
    res, blk = est.res[0], est.blocks[0]
    d = h.shape[-1]
    z = causal_conv(F.layer_norm(h, (d,), res.norm.weight, res.norm.bias).transpose(1, 2), res.conv1)
    z = causal_conv(F.mish(z + res.time(e)[:, :, None]), res.conv2)
    h1 = h + z.transpose(1, 2)  # h' = h + conv₂(Mish(conv₁(LN h) + W e))
    B, F_, nh = h1.shape[0], h1.shape[1], blk.attn.nh
    a = F.layer_norm(h1, (d,), blk.ln1.weight, blk.ln1.bias)
    q, k, v = blk.attn.qkv(a).view(B, F_, 3, nh, d // nh).permute(2, 0, 3, 1, 4)  # each (B, nh, F, hs)
    q, k = rotary_from_scratch(q), rotary_from_scratch(k)
    weights = (q @ k.transpose(-1, -2) / math.sqrt(d // nh)).softmax(dim=-1)  # (B, nh, F, F); no mask offline
    h2 = h1 + blk.attn.proj((weights @ v).transpose(1, 2).reshape(B, F_, d))  # h'' = h' + Attn(LN h')
    m = F.layer_norm(h2, (d,), blk.ln2.weight, blk.ln2.bias)
    return h1, h2 + blk.mlp[2](F.gelu(blk.mlp[0](m)))  # h''' = h'' + W₂ GELU(W₁ LN h'')


flow.eval()  # dropout off
seen = {}
hooks = [flow.estimator.res[0].register_forward_hook(lambda mod, args, out: seen.setdefault("res", out)),
         flow.estimator.blocks[0].register_forward_hook(lambda mod, args, out: seen.setdefault("block", out))]
with torch.no_grad():
    all_tokens_, n_p_, prompt_, spk_p = flow.prepare(tokens, prompt_tokens, prompt_mel, spk)
    mu_ = flow.encoder(all_tokens_, None, n_prompt=n_p_)
    cond_ = torch.zeros_like(mu_)
    cond_[:, :, : prompt_.shape[2]] = prompt_
    x_, t_ = flow.noise.slice(0, mu_.shape[2]), torch.tensor([0.3])
    flow.estimator(x_, mu_, spk_p, cond_, t_, None)  # the package's pass (hooks record)
    ours_res, ours_block = first_pair_from_scratch(flow.estimator, x_, mu_, spk_p, cond_, t_)
for h in hooks:
    h.remove()
err = {name: float((ours - seen[name]).abs().max()) for name, ours in (("res", ours_res), ("block", ours_block))}
print(f"first pair on {tuple(ours_block.shape)} (batch, frames, width): max |scratch − package| after the ResNet block "
      f"{err['res']:.1e}, after the transformer block {err['block']:.1e}")
assert max(err.values()) < 1e-4  # the block by hand is the package's block

# %% [markdown]
# ## 4 · The training recipe, as code
#
# `make_inputs(model, items, FlowTrainConfig(), gen)` in `minicosy/flow/train.py` turns a list of utterances (tokens,
# mel, the utterance's own speaker vector) into one padded batch. Per utterance it draws
#
# * one of the paper's **four masks** — non-causal, full-causal, chunk-$M$, chunk-$2M$ (notebook 04) — or, for one
#   utterance in five (`p_first_chunk`), the **scheduled** chunk mask a low-latency stream uses: a short first chunk
#   of $\lceil M/3 \rceil$ tokens after the prompt, then chunks of $M$ or $2M$;
# * with probability 0.5 a **prompt**: the first $\lfloor u \cdot 0.3 \cdot T \rfloor$ tokens, $u \sim U(0, 1)$ — their
#   mel goes into `cond` and the chunk mask treats them as one block, as at inference;
# * a **CFG dropout** flag with probability 0.2 (the model then zeroes `mu`, speaker and `cond` together);
# * $t \sim U(0, 1)$ **warped by the cosine schedule**, $t \leftarrow 1 - \cos(\frac{\pi}{2} t)$ — training sees most
#   often the early times that inference samples most densely;
# * fresh noise $X_0$, and $(x_t, u_t)$ from `conditional_flow` on the **normalised** mel (per-bin mean and std of the
#   training set, a minicosy simplification);
#
# and a `loss_mask` that keeps the real, **non-prompt** frames: the prompt is given, not generated.
#
# We build the fixture's train and valid utterances the way the trainer does (`load_mels`, `attach_tokens`,
# `speaker_vectors`) and draw one batch of eight.

# %%
data = load_mels(FIXTURES, "train") + load_mels(FIXTURES, "valid")  # [{id, voice, mel (80, F)}]
data = attach_tokens(data, fixture_tokens, cfg.vocab_size, UP)  # + tokens, both cropped to 2 frames per token
speaker_vectors(speaker_encoder, data)  # + spk: each utterance's own speaker vector
tc = FlowTrainConfig()
items = data[:8]
batch = make_inputs(flow, items, tc, torch.Generator().manual_seed(0))
B, T_pad = batch["tokens"].shape
n_prompt = [int((~batch["loss_mask"][b, 0, : UP * int(batch["lengths"][b])]).sum()) // UP for b in range(B)]


M_, F_ = cfg.chunk_tokens, -(-cfg.chunk_tokens // 3)  # the chunk and the scheduled first chunk ⌈M/3⌉
MASK_KINDS = {"non-causal": ("non_causal", None, None), "full-causal": ("full_causal", None, None),
              "chunk-M": ("chunk", M_, None), "chunk-2M": ("chunk", 2 * M_, None),
              "first F, then M": ("chunk", M_, F_), "first F, then 2M": ("chunk", 2 * M_, F_)}


def mask_kind(bt, b, p):
    # which mask utterance b of batch bt drew: compare with each candidate (prompt block, padding)
    T = bt["tokens"].shape[1]
    for name, (kind, chunk, first) in MASK_KINDS.items():
        mask = attention_mask(kind, T, chunk, prefix=p, first_chunk=first)
        if torch.equal(bt["mask"][b], with_padding(mask, bt["lengths"][b:b + 1])[0]):
            return name


kinds = [mask_kind(batch, b, p) for b, p in enumerate(n_prompt)]
for key in ("tokens", "lengths", "x_t", "t", "speaker", "cond", "mask", "drop", "u_t", "loss_mask"):
    print(f"{key:10s} {tuple(batch[key].shape)}")

# %%
# NBVAL_CHECK_OUTPUT
x1_norm = torch.zeros_like(batch["x_t"])
for b, d in enumerate(items):
    L = d["tokens"].numel()
    x1_norm[b, :, : UP * L] = flow.normalize(d["mel"].float())
    frames = torch.arange(UP * T_pad)
    prompt_f, real_f = frames < UP * n_prompt[b], frames < UP * L
    assert torch.equal(batch["loss_mask"][b, 0], real_f & ~prompt_f)  # loss: real frames after the prompt
    assert torch.equal(batch["cond"][b][:, prompt_f], x1_norm[b][:, prompt_f])  # cond = the prompt's mel ...
    assert not batch["cond"][b][:, ~prompt_f].any()  # ... and zeros elsewhere
    assert n_prompt[b] <= tc.prompt_max * L and kinds[b] is not None
# the path: recover X0 from the target, then the OT path must give x_t
x0_rec = (x1_norm - batch["u_t"]) / (1 - SIGMA_MIN)
assert torch.allclose(batch["x_t"], conditional_flow(x0_rec, x1_norm, batch["t"])[0], atol=1e-4)
print("every utterance: one of the masks above, prompt ≤ 30 % of its tokens, cond = prompt mel, loss on the rest")

# %%
fig, ax = plt.subplots(1, 2, figsize=(13, 3.6), gridspec_kw=dict(width_ratios=[2.2, 1]))
regions = torch.zeros(B, UP * T_pad)  # 0 padding, 1 prompt (cond, no loss), 2 generated (loss)
for b in range(B):
    regions[b, : UP * int(batch["lengths"][b])] = 2
    regions[b, : UP * n_prompt[b]] = 1
region_cmap = ListedColormap(["whitesmoke", "tab:orange", "tab:blue"])
im = ax[0].imshow(regions.numpy(), aspect="auto", cmap=region_cmap, vmin=-0.5, vmax=2.5)
cb = fig.colorbar(im, ax=ax[0], ticks=[0, 1, 2], shrink=0.9)
cb.ax.set_yticklabels(["padding", "prompt", "generated"])
labels = [f"{b}: {kinds[b]}, t = {float(batch['t'][b]):.2f}" + (", CFG drop" if bool(batch["drop"][b]) else "") for b in range(B)]
ax[0].set(xlabel="50 Hz frame", yticks=range(B), yticklabels=labels,
          title="one batch: prompt (orange: cond, no loss) | generated (blue: loss) | padding (white)")
b_show = max(range(B), key=lambda b: n_prompt[b])  # the utterance with the longest prompt
im = ax[1].imshow(batch["mask"][b_show].numpy(), cmap=ListedColormap(["#f0f0f0", "#4c72b0"]), vmin=0, vmax=1)
cb = fig.colorbar(im, ax=ax[1], ticks=[0.25, 0.75], shrink=0.9)
cb.ax.set_yticklabels(["masked", "may attend"])
ax[1].set(title=f"utterance {b_show}: {kinds[b_show]}, prompt of {n_prompt[b_show]} tokens",
          xlabel="key token", ylabel="query token")
plt.tight_layout()
plt.show()

# %% [markdown]
# One batch is too small to see the probabilities. Drawing 300 batches from the same eight utterances (2,400
# utterance draws) shows the recipe's numbers: about half get a prompt (a few draw a prompt that rounds to zero
# tokens), its length spreads evenly up to 30 %, one utterance in five is dropped for guidance, the paper's four masks come
# equally often (about 20 % each), the two scheduled ones about 10 % each (`p_first_chunk` = 0.2), and the warped times pile up near $t = 0$ (median $1 - \cos(\pi/4) \approx 0.29$).

# %%
# NBVAL_CHECK_OUTPUT
gen = torch.Generator().manual_seed(1)
draws = {"prompt": [], "prompt_frac": [], "drop": [], "t": [], "kind": []}
for _ in range(300):
    bt = make_inputs(flow, items, tc, gen)
    for b, d in enumerate(items):
        L = d["tokens"].numel()
        p = int((~bt["loss_mask"][b, 0, : UP * L]).sum()) // UP
        draws["prompt"].append(p > 0)
        draws["prompt_frac"].append(p / L)
        draws["kind"].append(mask_kind(bt, b, p))
    draws["drop"] += bt["drop"].tolist()
    draws["t"] += bt["t"].tolist()
share_prompt, share_drop = np.mean(draws["prompt"]), np.mean(draws["drop"])
kind_counts = Counter(draws["kind"])
t_median, max_frac = float(np.median(draws["t"])), max(draws["prompt_frac"])
print(f"with a prompt: {share_prompt:.2f} (p_prompt = {tc.p_prompt}) | longest prompt: {max_frac:.2f} of the tokens "
      f"(≤ {tc.prompt_max}) | CFG dropped: {share_drop:.2f} (cfg_drop = {tc.cfg_drop}) | median t: {t_median:.2f}")
assert 0.42 < share_prompt < 0.52 and max_frac <= tc.prompt_max and 0.16 < share_drop < 0.24
print("masks drawn:", {k: kind_counts[k] for k in MASK_KINDS})
assert abs(t_median - (1 - math.cos(math.pi / 4))) < 0.03
n_draws, paper_four = len(draws["kind"]), list(MASK_KINDS)[:4]
assert set(kind_counts) == set(MASK_KINDS)
assert all(0.15 < kind_counts[k] / n_draws < 0.25 for k in paper_four)            # (1 - 0.2) / 4 each
assert all(0.06 < kind_counts[k] / n_draws < 0.14 for k in MASK_KINDS if k not in paper_four)  # 0.2 / 2 each

# %% [markdown]
# ### Which norm, and why
#
# The paper writes the loss as an **L1** norm; the official code (and minicosy, `FlowTrainConfig.loss = "mse"`) uses the
# **squared** error. The `train.py` docstring gives the reason, and section 1 can show it: the field that transports the
# noise to the data is the conditional **mean** $\mathbb E[\omega_t \mid x_t]$ — the minimiser of the squared error.
# The minimiser of L1 is the conditional **median**, a different field wherever the velocities through a point are
# distributed asymmetrically, as in the toy disc of section 1:

# %%
# NBVAL_CHECK_OUTPUT
mc_median = u_near.median(dim=0).values
print(f"velocities through the disc around {[round(v, 2) for v in point.tolist()]} at t = 0.5 (section 1):")
print(f"  mean   (MSE's minimiser) {np.round(mc_mean.numpy(), 1)}  ≈ v* {np.round(exact.numpy(), 1)}")
print(f"  median (L1's minimiser)  {np.round(mc_median.numpy(), 1)}")
assert (mc_median - exact).norm() > 3 * (mc_mean - exact).norm()

# %% [markdown]
# `flow_loss` averages the error over the 80 bins of the `loss_mask` frames only. On our batch, with the trained model
# (eval mode, so dropout is off), it equals the masked mean written out by hand; `loss="l1"` gives the paper's variant.

# %%
flow.eval()
with torch.no_grad():
    mse, l1 = flow_loss(flow, batch, "mse"), flow_loss(flow, batch, "l1")
    v = flow(**{k: val for k, val in batch.items() if k not in ("u_t", "loss_mask")})
    m = batch["loss_mask"].float()
    # L = Σ m·(v − u_t)² / (Σ m · n_mels): the mean over real, non-prompt frames and all bins
    by_hand = float((((v - batch["u_t"]) ** 2) * m).sum() / (m.sum() * cfg.n_mels))
print(f"flow_loss: mse {float(mse):.3f} (by hand {by_hand:.3f}) | l1 {float(l1):.3f}")
assert abs(float(mse) - by_hand) < 1e-5 and math.isfinite(float(l1))

# %% [markdown]
# ## 5 · The trained flow: tokens → mel → audio
#
# Zero-shot synthesis of the test utterance of section 3 with its **ground-truth** tokens (the LM is not involved):
# the prompt clip from the same voice gives its tokens (prepended), its mel (`cond`) and — through the trained
# speaker encoder — the speaker vector; the flow solves the ODE with the paper's settings (10 Euler steps, cosine grid,
# guidance 0.7) from the fixed pre-drawn noise, and the trained vocoder (notebook 05) turns the mel into audio.

# %%
# NBVAL_IGNORE_OUTPUT
trained = flow.meta.get("trained", {})
print(f"flow checkpoint: {flow.meta.get('dtype')} weights, {trained.get('steps')} steps, {trained.get('minutes')} min on "
      f"{trained.get('device')}, last valid loss {trained.get('last_valid', {}).get('valid_loss', float('nan')):.3f}")

# %%
gen_mel = flow.inference(tokens, prompt_tokens, prompt_mel, spk)  # (80, 2T): N_STEPS = 10, GUIDANCE = 0.7
with torch.no_grad():
    audio = {"recording": wav[: mel.shape[1] * HOP], "copy synthesis (vocoder on the real mel)": vocoder(mel),
             "flow → vocoder": vocoder(gen_mel)}
x0_frames = flow.noise.slice(UP * prompt_tokens.numel(), UP * T_all)[0]  # the noise the generated frames start from
with torch.no_grad():  # mu of the utterance's frames (80 channels, the estimator's condition)
    mu_frames = flow.encoder(flow.prepare(tokens, prompt_tokens, prompt_mel, spk)[0], None,
                             n_prompt=prompt_tokens.numel())[0, :, UP * prompt_tokens.numel():]
l1 = lambda a: float((a - mel).abs().mean())  # log-mel L1 to the ground truth
baselines = {"flow (10 steps, w = 0.7)": l1(gen_mel), "mean mel (per bin)": l1(flow.mel_mean[:, None].expand_as(mel)),
             "the starting noise": l1(flow.denormalize(x0_frames))}
for name, v in baselines.items():
    print(f"log-mel L1 to the ground truth, {name:26s} {v:.3f}")
for name, a in audio.items():
    print(name)
    display(Audio(a.numpy(), rate=SR, normalize=False))

# %%
# NBVAL_CHECK_OUTPUT
print("mel:", tuple(gen_mel.shape), "= the ground truth's", tuple(mel.shape), "| finite:", bool(torch.isfinite(gen_mel).all()))
print("audio samples:", {k.split(" ")[0]: a.numel() for k, a in audio.items()})
print("flow closer to the ground truth than its starting noise:", baselines["flow (10 steps, w = 0.7)"] < baselines["the starting noise"])
assert gen_mel.shape == mel.shape and bool(torch.isfinite(gen_mel).all())
assert all(a.numel() == mel.shape[1] * HOP and bool(torch.isfinite(a).all()) for a in audio.values())
assert baselines["flow (10 steps, w = 0.7)"] < baselines["the starting noise"]

# %%
fig, ax = plt.subplots(3, 1, figsize=(10, 7.5), sharex=True)
vmin, vmax = float(mel.min()), float(mel.max())
im = ax[0].imshow(mel.numpy(), origin="lower", aspect="auto", cmap=MEL_CMAP, vmin=vmin, vmax=vmax)
ax[0].set(title="ground truth (the recording's log-mel)", ylabel="mel bin")
fig.colorbar(im, ax=ax[0], label="log-mel")
im = ax[1].imshow(gen_mel.numpy(), origin="lower", aspect="auto", cmap=MEL_CMAP, vmin=vmin, vmax=vmax)
ax[1].set(title=f"flow: 10 Euler steps, guidance 0.7 (log-mel L1 {baselines['flow (10 steps, w = 0.7)']:.2f})", ylabel="mel bin")
fig.colorbar(im, ax=ax[1], label="log-mel")
im = ax[2].imshow(mu_frames.numpy(), origin="lower", aspect="auto", cmap="viridis")
ax[2].set(title="mu: the token encoder's output (80 free channels, its own colour scale)", ylabel="channel",
          xlabel="50 Hz frame")
fig.colorbar(im, ax=ax[2], label="mu value")
plt.tight_layout()
plt.show()

# %% [markdown]
# The generated mel has the recording's timing — the tokens fix where each sound goes — and its own fine detail:
# harmonics, formants and the voice of the prompt. It is one plausible rendering, not a copy, so it differs from the
# recording in the detail. `mu`, the estimator's content condition, is *not* a mel estimate: no loss touches it (as in
# the official CosyVoice 2, the flow's only loss is on the velocity), so its 80 channels are whatever features the
# estimator found useful. It need not resemble a spectrogram, and it carries none of the harmonics: those come from
# the ODE.
#
# ### Watching the ODE
#
# `flow.inference` is a thin wrapper. Rebuild it from the package's pieces — `prepare` (validation, the prompt
# prepended, the speaker projected), the encoder, `cond`, the fixed noise, `velocity` (guided, as one batch of two) and
# `euler_solve` — and record the state at every step. It must reproduce `inference` exactly. Besides $x_t$ we record
# the model's current **guess of the end point**, $\hat x_1 = x_t + (1 - t)\,v$ (the OT path gives
# $X_1 = \phi_t + (1 - t)\,\omega_t$ up to $\sigma$).

# %%
with torch.inference_mode():
    all_tokens, n_p, prompt, spk_proj = flow.prepare(tokens, prompt_tokens, prompt_mel, spk)
    mu = flow.encoder(all_tokens, None, n_prompt=n_p)  # (1, 80, 2(T_p + T)): non-causal; the prompt's lookahead
    #                                                  stops at its last token (notebook 04, section 5)
    cond = torch.zeros_like(mu)
    cond[:, :, : prompt.shape[2]] = prompt  # the prompt's (normalised) mel on the first frames
    x0 = flow.noise.slice(0, mu.shape[2])  # the fixed noise, by absolute frame position
    states, guesses = [], []

    def velocity(x, t, i):
        v = flow.velocity(x, t, mu, spk_proj, cond, None, GUIDANCE)
        states.append(x)
        guesses.append(x + (1 - t) * v)  # x̂1 = x_t + (1 − t)·v
        return v

    x_end = euler_solve(velocity, x0, N_STEPS)
states.append(x_end)
rebuilt = flow.denormalize(x_end[0, :, UP * n_p:])
assert torch.allclose(rebuilt, gen_mel, atol=1e-5)  # = flow.inference
ts = cosine_timesteps(N_STEPS)
trim = lambda x: flow.denormalize(x[0, :, UP * n_p:])
l1_path = [l1(trim(x)) for x in states]
l1_guess = [l1(trim(x)) for x in guesses]
print("log-mel L1 to the ground truth along the ODE:")
print("  x_t at t =", [round(float(t), 2) for t in ts])
print("  L1(x_t)   ", [round(v, 2) for v in l1_path])
print("  L1(x̂1)    ", [round(v, 2) for v in l1_guess])
assert l1_path[-1] < l1_path[0] and all(math.isfinite(v) for v in l1_path + l1_guess)


def fast_share(m):
    # the share of a mel's temporal-modulation energy (per bin, mean removed) above 12.5 Hz, half the 25 Hz Nyquist
    power = torch.fft.rfft(m - m.mean(dim=1, keepdim=True), dim=1).abs() ** 2  # (80, F/2 + 1)
    return float(power[:, power.shape[1] // 2:].sum() / power.sum())


guess0, final = trim(guesses[0]), trim(x_end)
corr = lambda a, b: float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])  # noqa: E731
to_final = [float((trim(g) - final).abs().mean()) for g in guesses]
print("  mean |x̂1 − final mel| ", [round(v, 2) for v in to_final])
print(f"x̂1 at t = 0: correlation with the recording's mel {corr(guess0, mel):.2f}, with mu {corr(guess0, mu_frames):.2f}")
print(f"share of fast (> 12.5 Hz) modulation: x̂1 at t = 0 {fast_share(guess0):.4f} | final mel {fast_share(final):.4f} | "
      f"recording {fast_share(mel):.4f}")
assert corr(guess0, mel) > 0.5 and corr(guess0, mel) > abs(corr(guess0, mu_frames)) + 0.3  # the utterance's shape, not mu
assert fast_share(guess0) < fast_share(final)  # ... with less fine detail than the end point
assert all(b <= a + 1e-3 for a, b in zip(to_final, to_final[1:]))  # the guess moves towards the final mel at every step

# %%
snap = [0, 3, 5, 7, 10]
fig, ax = plt.subplots(2, len(snap), figsize=(15, 4.8), sharey=True, layout="constrained")
for j, i in enumerate(snap):
    im = ax[0, j].imshow(trim(states[i]).numpy(), origin="lower", aspect="auto", cmap=MEL_CMAP, vmin=vmin, vmax=vmax)
    ax[0, j].set_title(f"x_t, step {i}: t = {float(ts[i]):.2f}", fontsize=10)
    g_i = min(i, N_STEPS - 1)
    ax[1, j].imshow(trim(guesses[g_i]).numpy(), origin="lower", aspect="auto", cmap=MEL_CMAP, vmin=vmin, vmax=vmax)
    ax[1, j].set_title(f"guess x̂1 at t = {float(ts[g_i]):.2f}", fontsize=10)
    ax[1, j].set_xlabel("frame")
ax[0, 0].set_ylabel("mel bin")
ax[1, 0].set_ylabel("mel bin")
fig.colorbar(im, ax=ax, label="log-mel", shrink=0.8)
plt.show()

# %% [markdown]
# The top row is the state itself: noise that fades as $t$ grows. The bottom row is what the model *expects* the end to
# be at each step. Already at $t = 0$ the guess has the utterance's shape — it correlates with the recording's mel,
# not with `mu`, whose channels are not mel bins — but less fine detail than the final mel: a smaller share of its
# energy sits in fast temporal modulations (all three printed and asserted above). Step after step it moves to the
# final output — its distance to it shrinks at every step — as the sample commits to one particular rendering.
#
# **The prompt.** Below, the untrimmed output: the first frames are the prompt's region. The estimator was never
# trained to generate them (no loss there, and `cond` already holds them), so they are whatever the model makes of
# them — `inference` trims them off. Its conditioning effect is on the frames after it, through attention.

# %%
fig, ax = plt.subplots(1, 2, figsize=(13, 2.9), sharey=True, layout="constrained")
im = ax[0].imshow(flow.denormalize(cond[0] + (cond[0] == 0) * flow.normalize(flow.mel_mean[:, None])).numpy(),
                  origin="lower", aspect="auto", cmap=MEL_CMAP, vmin=vmin, vmax=vmax)
ax[0].set(title="cond: the prompt's mel, then nothing (zeros = the mean mel)", xlabel="frame", ylabel="mel bin")
ax[1].imshow(flow.denormalize(x_end[0]).numpy(), origin="lower", aspect="auto", cmap=MEL_CMAP, vmin=vmin, vmax=vmax)
ax[1].set(title="ODE output before trimming", xlabel="frame")
for a in ax:
    a.axvline(UP * n_p - 0.5, color="white", ls="--")
fig.colorbar(im, ax=ax, label="log-mel")
plt.show()

# %% [markdown]
# ### Steps and guidance
#
# The same utterance with 1, 2, 5 and 10 Euler steps (guidance 0.7), and with guidance 0, 0.7 and 1.5 (10 steps), each
# measured by its log-mel L1 to the recording. One Euler step returns exactly the model's first guess $\hat x_1$ at
# $t = 0$ (checked below).
#
# Read L1 with care. A distance to *one* recording rewards a prediction in the middle of the plausible ones, and
# penalises a sharp rendering whose detail differs from the recording's — so L1 need not fall steadily with the step
# count. Guidance is a trade-off, as on the toy: here the paper's $w = 0.7$ brings the mel closer to the recording
# than no guidance, and $w = 1.5$ overshoots, landing farther than $w = 0.7$ (both asserted below). Every setting lands
# far closer than the noise it started from; which one *sounds* best is for the listening judges of
# `minicosy eval flow` (WER, speaker similarity) to say. Listen to the 1-step and the 10-step result below.

# %%
sweep_steps = {n: flow.inference(tokens, prompt_tokens, prompt_mel, spk, n_steps=n) for n in (1, 2, 5, 10)}
sweep_w = {w: flow.inference(tokens, prompt_tokens, prompt_mel, spk, guidance=w) for w in (0.0, 0.7, 1.5)}
for label, sweep in (("steps", sweep_steps), ("guidance", sweep_w)):
    print(f"log-mel L1, {label:9s}", " | ".join(f"{k}: {l1(m):.3f}" for k, m in sweep.items()))
assert all(bool(torch.isfinite(m).all()) for m in [*sweep_steps.values(), *sweep_w.values()])
assert torch.allclose(sweep_steps[1], trim(guesses[0]), atol=1e-5)  # one Euler step = the first guess x̂1
assert torch.allclose(sweep_steps[10], gen_mel) and torch.allclose(sweep_w[0.7], gen_mel)
assert max(l1(m) for m in [*sweep_steps.values(), *sweep_w.values()]) < baselines["the starting noise"]
assert l1(sweep_w[0.7]) < l1(sweep_w[0.0]) and l1(sweep_w[1.5]) > l1(sweep_w[0.7])  # guidance helps, then overshoots
print("1 Euler step (guidance 0.7) → vocoder; the 10-step result is the 'flow → vocoder' player above")
with torch.no_grad():
    display(Audio(vocoder(sweep_steps[1]).numpy(), rate=SR, normalize=False))

# %%
fig, ax = plt.subplots(1, 2, figsize=(11, 3.4))
for a, (label, sweep) in zip(ax, (("Euler steps (w = 0.7)", sweep_steps), ("guidance w (10 steps)", sweep_w))):
    keys = list(sweep)
    a.plot(keys, [l1(sweep[k]) for k in keys], "o-", label="flow")
    a.axhline(baselines["mean mel (per bin)"], color="grey", ls=":", label="mean mel (per bin)")
    a.axhline(baselines["the starting noise"], color="black", ls="--", label="the starting noise")
    a.set(xlabel=label, xticks=keys, ylabel="log-mel L1 to the recording", ylim=(0, 1.1 * baselines["the starting noise"]))
    a.legend(fontsize=8, loc="lower right")
ax[0].set_xscale("log")
ax[0].set_xticks([1, 2, 5, 10], labels=["1", "2", "5", "10"])
plt.tight_layout()
plt.show()

# %% [markdown]
# ### Training history and the corpus evaluation
#
# The export records the training run: steps, minutes and one validation loss per evaluation, drawn below.
# `minicosy eval flow` judges the flow on the corpus's test split — ground-truth tokens, a prompt from the same voice,
# all four masks, the trained vocoder, WER and speaker similarity by the independent judges (pocketsphinx and
# resemblyzer, models minicosy did not train) — and writes `flow_eval.json` beside the checkpoint. The cell after the
# curve prints its table: per voice group, the recording and copy synthesis (the vocoder on the real mel, the ceiling
# the flow can reach) above the flow under each mask.

# %%
history = trained["history"]  # one row per validation of the training run
assert history[-1] == trained["last_valid"]
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot([r["step"] for r in history], [r["valid_loss"] for r in history], "o-", label="valid loss")
ax.set(xlabel="step", ylabel=f"valid loss ({trained['train_config']['loss']})", title="flow training (from the export)")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %%
EVAL = FLOW_STEM.parent / "flow_eval.json"
if EVAL.is_file():
    from minicosy.flow.evaluate import eval_markdown

    result = json.loads(EVAL.read_text())
    print(f"{EVAL.relative_to(REPO_ROOT) if EVAL.is_relative_to(REPO_ROOT) else EVAL.name}: split {result['split']}, "
          f"{result['per_voice']} utterances per voice, {result['n_steps']} steps, guidance {result['guidance']}")
    print("\n".join(line for line in eval_markdown(result).splitlines() if line.startswith("|")))
    for group, d in result["goals"].items():  # the cost of the streaming mask
        if d.get("chunk_M_relative_wer") is not None:
            print(f"{group.replace('_', ' ')}: chunk-M WER {100 * d['chunk_M_relative_wer']:+.1f} % relative to non-causal")
else:
    print(f"{EVAL.name} is not beside the checkpoint: `minicosy eval flow` writes it")


# %% [markdown]
# ## 6 · Exercises
#
# 1. **The OT path by hand.** For scalars $X_0 = 2$, $X_1 = -1$, $t = 0.25$ and $\sigma = 0$ (the paper's form), what
#    are $\phi_t$ and $\omega_t$? Set `phi_t` and `omega_t`; the check calls `conditional_flow`.
# 2. **The estimator's work.** `flow.inference(tokens, prompt_tokens, prompt_mel, spk)` with the defaults (10 steps,
#    guidance 0.7): how many times is the estimator called, and how many 50 Hz frames does it process in total (summed
#    over the batch and the calls)? Set `estimator_calls` and `estimator_frames`; the check counts them with a hook.
# 3. **The longest prompt.** A 50-token training utterance that draws a prompt: at most how many of its 100 mel frames
#    carry no loss? Set `max_prompt_frames`; the check draws 400 prompts with `make_inputs`.
# 4. **Guided Euler, written yourself.** Implement `my_guided_euler(flow, tokens, prompt_tokens, prompt_mel, spk,
#    n_steps, w)`: zero-shot synthesis with classifier-free guidance, returning the log-mel `(80, 2T)` that
#    `flow.inference(tokens, prompt_tokens, prompt_mel, spk, n_steps=n_steps, guidance=w)` returns. Build it from
#    `flow.prepare` (→ all tokens, $T_p$, the normalised prompt mel, the projected speaker), `flow.encoder(all_tokens,
#    None, n_prompt=T_p)` (→ `mu`; `n_prompt` stops the prompt's lookahead at its last token), `cond` (the prompt mel on the first frames, zeros elsewhere), the fixed noise
#    `flow.noise.slice(0, frames)`, `cosine_timesteps` and calls of `flow.estimator(x, mu, spk, cond, t, None)` with
#    `t` of shape `(1,)` — the unconditional pass gets zeros for `mu`, the speaker and `cond`. Do not call
#    `flow.velocity`, `flow.solve`, `guided_velocity` or `euler_solve`. Trim the prompt's $2T_p$ frames and
#    denormalise (`flow.denormalize`). The check compares with `flow.inference` for three settings of steps and $w$,
#    from the same fixed noise.
#
# Each check prints *not attempted* until you fill in its answer. The collapsed cell after them holds the solutions
# and runs the same checks on them.

# %%
def check(name, ok):
    print(f"{name}: {'not attempted' if ok is None else ('correct' if ok else 'not yet — try again')}")


def ex1_ok(phi_t, omega_t):
    x_t, u_t = conditional_flow(torch.tensor([[2.0]]), torch.tensor([[-1.0]]), torch.tensor([0.25]), sigma_min=0.0)
    return abs(phi_t - float(x_t)) < 1e-6 and abs(omega_t - float(u_t)) < 1e-6


def ex2_ok(estimator_calls, estimator_frames):
    seen = []
    h = flow.estimator.register_forward_hook(lambda mod, args, out: seen.append(out.shape[0] * out.shape[2]))
    flow.inference(tokens, prompt_tokens, prompt_mel, spk)
    h.remove()
    return (estimator_calls, estimator_frames) == (len(seen), sum(seen))


def ex3_ok(max_prompt_frames):
    gen = torch.Generator().manual_seed(0)
    item = dict(tokens=torch.zeros(50, dtype=torch.long), mel=torch.zeros(cfg.n_mels, 100), spk=torch.ones(cfg.spk_dim))
    always = FlowTrainConfig(p_prompt=1.0)
    no_loss = [int((~make_inputs(flow, [item], always, gen)["loss_mask"]).sum()) for _ in range(400)]
    return max_prompt_frames == max(no_loss)


def ex4_ok(fn):
    # None: not attempted; else does fn reproduce flow.inference (same fixed noise) for three settings?
    try:
        with torch.no_grad():
            if fn(flow, tokens, prompt_tokens, prompt_mel, spk, 1, 0.0) is None:
                return None
            return all(torch.allclose(fn(flow, tokens, prompt_tokens, prompt_mel, spk, n, w),
                                      flow.inference(tokens, prompt_tokens, prompt_mel, spk, n_steps=n, guidance=w),
                                      atol=1e-4)
                       for n, w in ((N_STEPS, GUIDANCE), (4, 1.5), (2, 0.0)))
    except Exception:  # noqa: BLE001 — any error in the learner's code is a wrong answer
        return False


# %%
# NBVAL_CHECK_OUTPUT
# Exercise 1: replace None with numbers
phi_t = None    # φ_t for X0 = 2, X1 = −1, t = 0.25, σ = 0
omega_t = None  # ω_t
check("exercise 1", None if None in (phi_t, omega_t) else ex1_ok(phi_t, omega_t))

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 2: replace None with integers (hint: tokens.numel(), prompt_tokens.numel(), UP, N_STEPS)
estimator_calls = None   # forward calls of flow.estimator
estimator_frames = None  # Σ over the calls of batch × frames
check("exercise 2", None if None in (estimator_calls, estimator_frames) else ex2_ok(estimator_calls, estimator_frames))

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 3: replace None with an integer
max_prompt_frames = None  # the most frames without loss, 50-token utterance with a prompt
check("exercise 3", None if max_prompt_frames is None else ex3_ok(max_prompt_frames))


# %%
# NBVAL_CHECK_OUTPUT
# Exercise 4: guided Euler sampling from the estimator itself
def my_guided_euler(flow, tokens, prompt_tokens, prompt_mel, spk, n_steps, w):
    return None  # your code here: the log-mel (80, 2T), prompt frames trimmed


check("exercise 4", ex4_ok(my_guided_euler))

# %% jupyter={"source_hidden": true}
# NBVAL_CHECK_OUTPUT
# Solutions — try the exercises first.
# 1: φ = (1 − t)·X0 + t·X1 = 0.75·2 − 0.25 = 1.25; ω = X1 − X0 = −3.
sol1 = (1.25, -3.0)
# 2: one call per Euler step; guidance runs conditional + unconditional as a batch of 2 over the prompt's and the
#    utterance's frames: 10 calls × 2 × 2·(T_p + T) frames.
sol2 = (N_STEPS, N_STEPS * 2 * UP * (prompt_tokens.numel() + tokens.numel()))
# 3: the prompt is ⌊u·0.3·50⌋ = ⌊15u⌋ tokens with u < 1: at most 14 tokens = 28 frames.
sol3 = 2 * 14


def guided_euler(flow, tokens, prompt_tokens, prompt_mel, spk, n_steps, w):  # 4
    all_tokens, n_prompt, prompt, s = flow.prepare(tokens, prompt_tokens, prompt_mel, spk)
    mu = flow.encoder(all_tokens, None, n_prompt=n_prompt)  # (1, 80, 2(T_p + T))
    cond = torch.zeros_like(mu)
    cond[:, :, : prompt.shape[2]] = prompt  # the prompt's mel on the first frames
    x = flow.noise.slice(0, mu.shape[2])  # the fixed noise: the same start as flow.inference
    ts = cosine_timesteps(n_steps)
    for t0, t1 in zip(ts[:-1], ts[1:]):
        v_cond = flow.estimator(x, mu, s, cond, t0.reshape(1), None)
        v_uncond = flow.estimator(x, torch.zeros_like(mu), torch.zeros_like(s), torch.zeros_like(cond), t0.reshape(1),
                                  None)
        x = x + (t1 - t0) * ((1 + w) * v_cond - w * v_uncond)  # Euler step on ṽ = (1 + w)·v_cond − w·v_uncond
    return flow.denormalize(x[0, :, UP * n_prompt:])


results = [ex1_ok(*sol1), ex2_ok(*sol2), ex3_ok(sol3), ex4_ok(guided_euler)]
for n, ok in enumerate(results, 1):
    check(f"solution {n}", ok)
wrong = ex4_ok(lambda f, tk, pt, pm, sp, n, w: f.inference(tk, pt, pm, sp, n_steps=n, guidance=0.0))  # ignores w
print("exercise 4's check rejects a wrong answer (no guidance):", wrong is False)
assert all(results) and wrong is False

# %% [markdown]
# ## Summary
#
# * Flow matching regresses a network on the velocity of straight noise-to-data lines (CV2 §2.4; the official code
#   and Lipman et al. add a tiny $\sigma$); with the squared
#   error it learns their **average**, $v^\star(x, t) = \mathbb E[\omega_t \mid x_t]$, whose trajectories are curved —
#   the reason the ODE needs several Euler steps, concentrated by the cosine grid where the field bends, near $t = 0$.
# * One Euler step returns the model's first, averaged guess $\hat x_1$; the following steps commit to one rendering. Classifier-free guidance,
#   $(1 + w)\,v_{\text{cond}} - w\,v_{\text{uncond}}$ with $w = 0.7$, follows the condition more faithfully at the cost
#   of a second (batched) pass; too much overshoots.
# * `ChunkAwareFlow`: tokens → lookahead conv → blocks → ×2 → blocks → `mu`; the estimator reads
#   $[x_t, \mu, \text{speaker}, \text{cond}]$ through pairs of a time-conditioned causal ResNet block and a pre-norm
#   transformer block (one pair rebuilt by hand above). Training draws per utterance a mask, a 0–30 % prompt for half
#   of them and a 20 % guidance dropout, and puts the loss on the generated frames only.
# * Zero-shot synthesis: the prompt's tokens prepended, its mel in `cond`, its speaker vector; 10 steps from fixed
#   noise; the prompt frames trimmed; the trained vocoder makes it audible.

# %% [markdown]
# ## Next
#
# Notebook 04 (`04_chunk_masks.ipynb`) opens the attention masks and the lookahead, and streams this flow chunk by
# chunk with the same output as the offline chunk-masked run.
