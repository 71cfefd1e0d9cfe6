# %% [markdown]
# # 01 · FSQ: the supervised speech tokenizer of CosyVoice 2
#
# **What you build.** The component that turns speech into the discrete tokens the language model predicts:
# 16 kHz audio → 80-bin log-mel at 100 Hz → **Encoder1** (two stride-2 convolutions, 100 → 25 Hz, then transformer
# blocks) → **finite scalar quantization (FSQ)** → one token id every 40 ms. While it trains, an **Encoder2 + CTC
# speech-recognition head** reads the quantised vectors and must recognise the transcript. That recognition loss is
# the only training signal, so the tokens keep *what was said* and shed much of *who said it* — what the LM and the
# flow model of the later notebooks need.
#
# **Paper.** CosyVoice 2 (Du et al., arXiv 2412.10117): §2.2 and Fig. 1(a) — the supervised semantic speech
# tokenizer, Eq. 1 (FSQ inside the encoder), Eq. 2 (a code's token index); §4 — FSQ against the vector quantizer
# (VQ) of CosyVoice 1 (codebook use). FSQ itself: Mentzer et al., "Finite Scalar Quantization: VQ-VAE Made Simple"
# (arXiv 2309.15505), §3. CosyVoice 2 released no training code for its tokenizer; the training recipe here is
# minicosy's own, and every place it departs from the paper is listed in `docs/paper_vs_code.md` §2.
#
# **Prerequisites.** Notebook 00: the corpus and its voices, the committed fixture clips, the 16 kHz / 100 Hz
# features and the rule that 640 samples make one token.
#
# **Runtime.** Under a minute on 2 CPU cores in the default (tiny) mode. A GPU changes nothing: the notebook pins
# the CPU, because tokens are discrete outputs and must be identical on every machine and every run. Nothing big is
# trained here: the live run takes seconds; the committed checkpoints were trained with
# `minicosy train tokenizer --preset tiny [--quantizer vq]` on the full corpus, for the minutes recorded in their
# JSON files (read out in §9).
#
# **Contents** (a bare § below is a section of this notebook; the paper's are written "paper §").
# 1 · FSQ on a 2-D toy · 2 · the straight-through gradient · 3 · Eq. 1 step by step ·
# 4 · Eq. 2 step by step (and the shift the paper leaves out) · 5 · choosing D and K · 6 · the tokenizer and its
# length rule · 7 · training: the loss and the recipe · 8 · the committed tokenizer: tokens, transcript, codebook use,
# CER · 9 · FSQ vs VQ, corpus v1 vs v2 · 10 · what the tokens keep: same sentence, other voice · 11 · exercises.

# %%
import difflib
import json
import os
from dataclasses import replace

import librosa
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Audio, display

from minicosy.audio import load_audio, tokenizer_features
from minicosy.data.corpus import HELDOUT_VOICES
from minicosy.data.corpus import VOICES as ALL_VOICES
from minicosy.data.manifest import read_manifest
from minicosy.judges import cer
from minicosy.speech_tokenizer.evaluate import collapse_repeats, sequence_match
from minicosy.speech_tokenizer.fsq import FSQ, codebook_usage, round_ste
from minicosy.speech_tokenizer.model import (SAMPLES_PER_TOKEN, TOKEN_RATE, SpeechTokenizer, SpeechTokenizerConfig,
                                             text_to_ids)
from minicosy.speech_tokenizer.train import TrainConfig, load_split, spec_augment, speed_perturb, train_step, vtlp
from minicosy.text.normalize import normalize_transcript
from minicosy.utils import FIXTURES_DIR, REPO_ROOT, pick_device, seed_everything

MEL_CMAP = plt.get_cmap("magma", 32)   # 32 colour levels: light PNGs
PRESET = os.environ.get("MINICOSY_PRESET", "tiny")   # "tiny" (default) or "paper": the sizes used in §6
CFG = getattr(SpeechTokenizerConfig, PRESET)()
PRETRAINED = REPO_ROOT / "data" / "pretrained" / "tiny"   # the committed checkpoints are tiny ones
FIXTURES = FIXTURES_DIR / "manifest.jsonl"
fixtures = read_manifest(FIXTURES)
seed_everything(0)
# The committed tokenizer learned from corpus v2: its twenty voices are the first twenty rows of today's
# voice table (corpus v3 adds fourteen train voices it never heard; notebook 00).
VOICES = ALL_VOICES[:20]
TRAIN_VOICES = [v.id for v in VOICES if v.role == "train"]
torch.set_num_threads(1)   # these models are tiny: one thread is fastest, and robust on a shared CPU

# %%
# NBVAL_IGNORE_OUTPUT
device = torch.device("cpu")   # pinned: tokens are discrete, a GPU kernel may flip a rounding near a boundary
print(f"device: {device} (pinned; pick_device() would choose {pick_device()}) | preset: {PRESET}")

# %% [markdown]
# ## 1 · FSQ on a 2-D toy
#
# FSQ quantizes each coordinate on its own (Mentzer et al. §3). A coordinate $z_j$ is first **bounded** to
# $[-K, K]$ and then **rounded** to the nearest integer, so it takes one of $2K+1$ values:
#
# $$f(z) = K \tanh(z), \qquad \hat z_j = \mathrm{round}\big(f(z_j)\big) \in \{-K, \dots, K\}.$$
#
# With $D$ coordinates the codebook is the grid $\{-K,\dots,K\}^D$ of $(2K+1)^D$ points. Nothing in it is learnt,
# so no code can fall out of use because the quantizer neglected it: whether a code is used depends only on the
# encoder in front of it. In 2-D with $K = 1$ the codebook is the 3 × 3 grid: 9 codes.

# %%
toy = FSQ(input_dim=2, num_dims=2, K=1)
z = torch.randn(400, 2) * 1.2
codes = toy.quantize(z)                                     # bound + round: the package call
assert torch.equal(codes, torch.round(1 * torch.tanh(z)))   # the same thing by hand
idx = toy.codes_to_indices(codes)
grid = toy.indices_to_codes(torch.arange(toy.codebook_size))

fig, ax = plt.subplots(1, 2, figsize=(10, 4), dpi=72)
zz = torch.linspace(-3, 3, 601)
for K, c in [(1, "C0"), (2, "C1")]:
    ax[0].plot(zz, K * torch.tanh(zz), c, alpha=0.5, label=f"bound K·tanh(z), K={K}")
    ax[0].plot(zz, torch.round(K * torch.tanh(zz)), c, label=f"rounded: {2 * K + 1} levels")
ax[0].set_xlabel("z"); ax[0].set_title("one coordinate: bound, then round"); ax[0].legend(fontsize=8)
b = torch.tanh(z)
ax[1].scatter(b[:, 0], b[:, 1], c=idx, cmap="tab10", s=10)
ax[1].scatter(grid[:, 0], grid[:, 1], c="k", marker="x", s=60)
for i, (x, y) in enumerate(grid.tolist()):
    ax[1].annotate(str(i), (x, y), textcoords="offset points", xytext=(6, 6))
ax[1].set_title("2-D: bounded points coloured by their code index"); ax[1].set_aspect("equal")
plt.tight_layout(); plt.show()

# %%
# NBVAL_CHECK_OUTPUT
print("codebook size:", toy.codebook_size)
for i, c in enumerate(grid.long().tolist()):
    print(f"index {i}: code {c}")
assert toy.codebook_size == 3 ** 2

# %% [markdown]
# ## 2 · The straight-through gradient
#
# `round` has zero gradient almost everywhere, so nothing in front of it could learn. The straight-through
# estimator (Bengio et al. 2013, arXiv 1308.3432) uses the rounded value in the forward pass and the identity in the
# backward pass:
#
# $$\mathrm{round\_ste}(x) = x + \mathrm{sg}\big(\mathrm{round}(x) - x\big),\qquad
# \frac{\partial\, \mathrm{round\_ste}(x)}{\partial x} := 1,$$
#
# where $\mathrm{sg}$ (stop-gradient, `.detach()`) is the identity forward and has zero gradient backward.

# %%
x = torch.tensor([-1.4, -0.3, 0.2, 0.6, 1.7], requires_grad=True)
torch.round(x).sum().backward()
plain = x.grad.clone()
x.grad = None
round_ste(x).sum().backward()
assert plain.abs().sum() == 0 and torch.equal(x.grad, torch.ones(5))
assert torch.equal(round_ste(x), torch.round(x))   # forward: exactly the rounded value

# %%
# NBVAL_CHECK_OUTPUT
print("forward  round_ste(x):", round_ste(x).tolist())
print("gradient of round     :", plain.tolist())
print("gradient of round_ste :", x.grad.tolist())

# %% [markdown]
# With this gradient, a loss that sees **only the quantised value** can still move the continuous input in front of
# the rounding. Below, a point $z$ is pushed to a chosen code by gradient descent on
# $\mathcal L = \lVert \hat z - c^\ast\rVert^2$, where $\hat z = \mathrm{round\_ste}(\tanh z)$: no term reads $z$
# itself. The gradient reaching $z$ is $2(\hat z - c^\ast)\cdot(1 - \tanh^2 z)$ — the rounding is skipped, the bound
# is not. This is how the speech-recognition loss trains `ProjDown` and Encoder1 (§7): it reads Encoder2's output on
# the quantised $\hat H$ and nothing else.

# %%
zp = torch.tensor([[-1.5, 0.1]], requires_grad=True)
target = torch.tensor([[1.0, -1.0]])                 # the code c* we want
sgd = torch.optim.SGD([zp], lr=0.5)
path = [toy.quantize(zp).detach().squeeze(0).tolist()]
for _ in range(30):
    q = toy.quantize(zp)                             # ẑ: the only thing the loss reads
    loss = ((q - target) ** 2).sum()
    sgd.zero_grad(); loss.backward()
    if len(path) == 1:                               # the first gradient, checked against the formula above
        assert torch.allclose(zp.grad, 2 * (q - target).detach() * (1 - torch.tanh(zp.detach()) ** 2))
    sgd.step()
    path.append(toy.quantize(zp).detach().squeeze(0).tolist())
assert path[0] != path[-1] == target.squeeze(0).tolist()
steps = [k for k in range(1, len(path)) if path[k] != path[k - 1]]
print("codes along the way:", " → ".join(str(path[k]) for k in [0] + steps),
      f"(reached after {steps[-1]} steps; the loss is 0 from there on)")

# %% [markdown]
# ## 3 · Eq. 1 step by step
#
# $$\hat H = \mathrm{ProjUp}\big(\mathrm{ROUND}(\mathrm{ProjDown}(H))\big) \qquad \text{[CosyVoice 2, Eq. 1]}$$
#
# `ProjDown` is a linear map from the encoder width $d$ to $D$ numbers, `ROUND` is bound-and-round (with the
# straight-through gradient), `ProjUp` maps the $D$ integers back to width $d$ for Encoder2. We redo it by hand and
# compare with the package.

# %%
seed_everything(0)
fsq = FSQ(input_dim=16, num_dims=4, K=1)
H = torch.randn(1, 5, 16)                                          # (B, T, d)
low = H @ fsq.proj_down.weight.T + fsq.proj_down.bias              # ProjDown: (1, 5, 4)
bounded = 1 * torch.tanh(low)                                      # K·tanh: in [-1, 1]
rounded = torch.round(bounded)                                     # integers in {-1, 0, 1}
H_hat_by_hand = rounded @ fsq.proj_up.weight.T + fsq.proj_up.bias  # ProjUp: (1, 5, 16)

H_hat, indices = fsq(H)                                            # the package
assert torch.allclose(H_hat, H_hat_by_hand, atol=1e-6)
assert torch.equal(fsq.quantize(low), rounded)

# %%
# NBVAL_CHECK_OUTPUT
print("shapes: H", tuple(H.shape), "→ ProjDown", tuple(low.shape), "→ codes", tuple(rounded.shape),
      "→ Ĥ", tuple(H_hat.shape), "; indices", tuple(indices.shape), indices.dtype)
print("codes of the 5 frames:")
print(rounded[0].long().tolist())

# %% [markdown]
# ## 4 · Eq. 2 step by step
#
# Each frame's $D$ integer codes become one token id: a number written in base $2K+1$ whose digit $j$ is
# $\hat h_j + K$ (digit 0 is the least significant):
#
# $$\mu = \sum_{j=0}^{D-1} (\hat h_j + K)\,(2K+1)^j \qquad \text{[CosyVoice 2, Eq. 2, with the shift } +K\text{]}$$
#
# The inverse peels the digits off with integer division and remainder.

# %%
K, D = fsq.K, fsq.num_dims
digits = rounded[0].long() + K                          # (5, D) in {0, 1, 2}
powers = (2 * K + 1) ** torch.arange(D)                 # 1, 3, 9, 27
mu = (digits * powers).sum(-1)                          # Eq. 2
assert torch.equal(mu, indices[0])

back = []                                               # the inverse: repeated divmod
for m in mu.tolist():
    ds = []
    for _ in range(D):
        m, r = divmod(m, 2 * K + 1)
        ds.append(r - K)
    back.append(ds)
assert torch.equal(torch.tensor(back, dtype=torch.float), fsq.indices_to_codes(mu))
assert torch.equal(fsq.codes_to_indices(fsq.indices_to_codes(torch.arange(81))), torch.arange(81))

# %%
# NBVAL_CHECK_OUTPUT
for c, d_, m in zip(rounded[0].long().tolist(), digits.tolist(), mu.tolist()):
    terms = " + ".join(f"{x}·{p}" for x, p in zip(d_, powers.tolist()))
    print(f"codes {c} → digits {d_} → μ = {terms} = {m}")

# %% [markdown]
# **The paper prints Eq. 2 without the $+K$.** As printed, $\mu = \sum_j \hat h_j (2K+1)^j$ with digits in
# $\{-K, \dots, K\}$: a *balanced* base-$(2K+1)$ number. It still gives every code its own number, but half of those
# numbers are negative — they run from $-\frac{(2K+1)^D - 1}{2}$ to $+\frac{(2K+1)^D - 1}{2}$. A token id indexes an
# embedding table and a row of the LM's output layer, so it must lie in $0, \dots, (2K+1)^D - 1$. Adding $K$ to every
# digit adds the same constant to every index,
#
# $$K \sum_{j=0}^{D-1} (2K+1)^j = \frac{(2K+1)^D - 1}{2},$$
#
# so the shift keeps the codes and their order and only moves the range to start at 0. The released CosyVoice 2
# tokenizer does exactly this (its PyTorch port in the S3Tokenizer project reads `h = h.round() + 1`, with
# $K = 1$), and so does `FSQ.codes_to_indices`. The cell checks both claims on the whole $D = 4$, $K = 1$ codebook.

# %%
all_codes = fsq.indices_to_codes(torch.arange(fsq.codebook_size)).long()   # (81, 4): every code of the grid
as_printed = (all_codes * powers).sum(-1)                                   # Σ ĥ_j (2K+1)^j, no shift
shifted = fsq.codes_to_indices(all_codes.float())                           # the package: Σ (ĥ_j + K)(2K+1)^j
offset = (fsq.codebook_size - 1) // 2
assert len(set(as_printed.tolist())) == fsq.codebook_size       # as printed: still one number per code ...
assert torch.equal(shifted, as_printed + offset)                # ... the shift only adds a constant
assert offset == K * int(powers.sum())

# %%
# NBVAL_CHECK_OUTPUT
print(f"as printed: indices from {int(as_printed.min())} to {int(as_printed.max())}; "
      f"shifted by +K per digit (= +{offset} in all): {int(shifted.min())} to {int(shifted.max())}")


# %% [markdown]
# ## 5 · Choosing D and K
#
# The codebook has $(2K+1)^D$ entries, a token carries $\log_2 (2K+1)^D$ bits, and at 25 tokens/s that is the
# tokenizer's bitrate. The paper: $D = 8$, $K = 1$ → 6,561 codes. The tiny preset keeps the 3 levels but uses
# $D = 5$ → 243 codes: a tiny encoder trained for minutes spreads its tokens over a few hundred codes, not
# thousands, and the tiny LM's output layer stays small. The cell prints the budget for a few settings and compares it
# with what the words themselves need: the characters per second of the fixtures' transcripts, at
# $\log_2 28$ bits per character (space, apostrophe, a–z) at most.

# %%
# NBVAL_CHECK_OUTPUT
def describe(D=8, K=1):
    size = (2 * K + 1) ** D
    bits = np.log2(size)
    return f"D={D} K={K}: {size} codes, {bits:.2f} bits/token, {bits * TOKEN_RATE:.0f} bit/s at {TOKEN_RATE} Hz"


for D_, K_ in [(8, 1), (6, 1), (5, 1), (4, 2), (10, 1)]:
    print(describe(D_, K_))
paper, tiny = SpeechTokenizerConfig.paper(), SpeechTokenizerConfig.tiny()
print("paper preset:", describe(paper.fsq_dims, paper.fsq_K))
print("tiny preset: ", describe(tiny.fsq_dims, tiny.fsq_K))
assert (paper.codebook_size, tiny.codebook_size) == (3 ** 8, 3 ** 5)
chars_per_s = sum(len(normalize_transcript(u.text)) for u in fixtures) / sum(u.duration for u in fixtures)
text_bits = chars_per_s * np.log2(28)
print(f"the transcripts: {chars_per_s:.1f} characters/s → at most {text_bits:.0f} bit/s")
assert text_bits < np.log2(tiny.codebook_size) * TOKEN_RATE     # the tiny budget is above the text's

# %% [markdown]
# **Try it.** The sliders set $D$ and $K$; the left panel draws 2,000 random encoder outputs (standard normal in
# $D$ dimensions) after the bound, in their first two coordinates, coloured by the grid point those two coordinates
# round to (the grid points are the crosses); the right panel counts how many of the $(2K+1)^D$ codes the 2,000 points hit — the
# *utilisation* of §8. (The sliders need a live kernel; the saved notebook shows the default $D = 5$, $K = 1$.)

# %%
# NBVAL_IGNORE_OUTPUT
import ipywidgets as widgets


def draw_grid(D=5, K=1, n=2000):
    q = FSQ(input_dim=D, num_dims=D, K=K)
    z = torch.randn(n, D, generator=torch.Generator().manual_seed(0))   # stand-ins for ProjDown(H)
    codes = q.quantize(z)
    ids = q.codes_to_indices(codes)
    counts = torch.bincount(ids, minlength=q.codebook_size).sort(descending=True).values
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8), dpi=60)
    b = q.bound(z)
    cell = (codes[:, 0] + K) + (2 * K + 1) * (codes[:, 1] + K)   # which rounding cell of coordinates 0 and 1
    ax[0].scatter(b[:, 0], b[:, 1], c=cell, cmap=plt.get_cmap("tab20", (2 * K + 1) ** 2), s=6)
    g = torch.arange(-K, K + 1).float()
    gx, gy = torch.meshgrid(g, g, indexing="ij")
    ax[0].scatter(gx.flatten(), gy.flatten(), c="k", marker="x", s=50)
    ax[0].set_aspect("equal"); ax[0].set_xlabel("coordinate 0 after K·tanh"); ax[0].set_ylabel("coordinate 1")
    ax[0].set_title(f"D={D}, K={K}: coordinates 0 and 1, {(2 * K + 1) ** 2} rounding cells")
    shown = counts[: min(len(counts), 400)]
    ax[1].bar(np.arange(len(shown)), shown.numpy(), width=1.0)
    used = int((counts > 0).sum())
    ax[1].set_title(f"{q.codebook_size} codes; {n} points hit {used} ({used / q.codebook_size:.0%})")
    ax[1].set_xlabel("code, most used first" + (" (first 400)" if len(counts) > 400 else ""))
    ax[1].set_ylabel("points")
    plt.tight_layout(); plt.show()
    print(describe(D, K))


w_D = widgets.IntSlider(value=5, min=1, max=10, description="D")
w_K = widgets.IntSlider(value=1, min=1, max=4, description="K")
display(widgets.VBox([widgets.HBox([w_D, w_K]), widgets.interactive_output(draw_grid, {"D": w_D, "K": w_K})]))

# %% [markdown]
# ## 6 · The tokenizer and its length rule
#
# Encoder1 reads 80-bin log-mels at 100 Hz; two stride-2 convolutions bring them to 25 Hz (paper §2.2). The features are
# cropped to a multiple of 4 frames, so a clip of $n$ samples at 16 kHz gives exactly
#
# $$T_\text{tokens} = \lfloor n / 640 \rfloor \qquad (640 \text{ samples} = 40 \text{ ms}).$$
#
# Only Encoder1 and FSQ make the tokenizer used downstream; Encoder2 and the recognition head exist to train it.
# The parameter counts are for the preset chosen in the setup cell (`MINICOSY_PRESET`).

# %%
seed_everything(0)
untrained = SpeechTokenizer(CFG).eval()
parts = {"Encoder1 (convs + blocks)": [untrained.subsample, untrained.enc1, untrained.ln1],
         "FSQ (ProjDown, ProjUp)": [untrained.quantizer],
         "Encoder2 + CTC head (training only)": [untrained.enc2, untrained.ln2, untrained.head]}
print(f"preset {PRESET}: d = {CFG.d_model}, Encoder1 {CFG.enc1_layers} blocks, FSQ D = {CFG.fsq_dims}, "
      f"K = {CFG.fsq_K} ({untrained.codebook_size} codes)")
for name, mods in parts.items():
    print(f"  {name:38s} {sum(p.numel() for m in mods for p in m.parameters()):>11,d} parameters")
for n in [640, 1279, 16000, 40000]:
    t = untrained.encode(torch.zeros(n).uniform_(-0.1, 0.1), 16000)
    assert t.shape == (n // SAMPLES_PER_TOKEN,)
    print(f"{n:6d} samples → {t.shape[0]:3d} tokens")

# %% [markdown]
# ## 7 · Training: the loss and the recipe
#
# ### The loss
#
# The paper trains the tokenizer with the speech-recognition loss alone (paper §2.2). minicosy's recognition head emits,
# per 25 Hz frame, two slots of character posteriors (blank, space, apostrophe, a–z), and the loss is CTC (Graves et
# al. 2006) against the normalised transcript $y$:
#
# $$\mathcal L = \mathrm{CTC}\Big(\mathrm{Head}\big(\mathrm{Encoder2}(\hat H)\big),\ y\Big),
# \qquad \hat H = \mathrm{ProjUp}\big(\mathrm{ROUND}(\mathrm{ProjDown}(\mathrm{Encoder1}(X)))\big).$$
#
# The loss reads **only the quantised** $\hat H$ (`SpeechTokenizer.forward` → `asr_head(h_hat)` → `ctc_loss`).
# FSQ adds no term of its own: it has no codebook to learn, so `aux` is exactly 0 and Encoder1 learns only through
# the straight-through gradient of §2. The VQ baseline is different: it adds the commitment loss
# $\beta\,\lVert H - \mathrm{sg}(e)\rVert^2$ (VQ-VAE, van den Oord et al. 2017) and learns its codebook $e$ by moving
# averages. The cell checks all three statements on a small model and the 12 fixture training clips.

# %%
seed_everything(0)
fixtures_train = load_split(FIXTURES, "train")                      # cached 16 kHz log-mels + transcripts
assert len(fixtures_train) == 12
targets = [text_to_ids(d["text"]) for d in fixtures_train]
small_cfg = SpeechTokenizerConfig(d_model=64, n_heads=2, enc1_layers=1, enc2_layers=1, fsq_dims=4, fsq_K=1,
                                  dropout=0.0, utterance_cmn=False)


def fresh(cfg):
    m = SpeechTokenizer(cfg)
    allf = torch.cat([d["feats"].float() for d in fixtures_train], 1)
    m.feat_mean.copy_(allf.mean(1)); m.feat_std.copy_(allf.std(1))   # input normalisation from the data
    return m.train()


small = fresh(small_cfg)
out = small(*small.pad_features([d["feats"] for d in fixtures_train]))
ctc = small.ctc_loss(out, targets)                                  # CTC on Encoder2(Ĥ): the whole loss
ctc.backward()
assert out["aux"].item() == 0.0                                     # FSQ: no auxiliary loss
assert small.quantizer.proj_down.weight.grad.abs().sum() > 0        # the gradient crossed the rounding ...
assert small.subsample.conv1.weight.grad.abs().sum() > 0            # ... and reached Encoder1's first conv

vq_small = fresh(replace(small_cfg, quantizer="vq", vq_codebook_size=81))
vq_out = vq_small(*vq_small.pad_features([d["feats"] for d in fixtures_train]))
assert vq_out["aux"].item() > 0                                     # VQ: + commitment loss
print(f"fresh FSQ model: CTC {ctc.item():.2f} per character, aux {out['aux'].item():.1f}; "
      f"fresh VQ model: aux (commitment) {vq_out['aux'].item():.3f}")

# %% [markdown]
# ### The recipe: augmentation and normalisation
#
# A tokenizer trained on a handful of voices must give the same tokens for a voice it never heard. Four standard
# speech-recognition tools do that work here, all on cached log-mel features (so an epoch costs only the network):
#
# * **speed perturbation** (Ko et al. 2015): each clip is played $0.9\times$, $1\times$ or $1.1\times$ as fast. On a
#   log-mel that is a frequency warp by the factor (every frequency moves up as the clip speeds up) followed by a
#   time resampling to $F/\text{factor}$ frames (cropped to a multiple of 4, the length rule);
# * **vocal-tract-length perturbation**, VTLP (Jaitly & Hinton 2013): the spectrum is stretched along frequency,
#   $X'(f) = X(f / \alpha)$ with $\alpha$ drawn from $[0.88, 1.12]$ — a shorter or longer vocal tract;
# * **SpecAugment** (Park et al. 2019): random mel bands and time spans are zeroed, so no single cue is relied on;
# * **per-utterance cepstral mean normalisation** (CMN): after the corpus-wide normalisation with per-bin means
#   $m_b$ and deviations $s_b$, each clip's own mean over time is removed,
#   $$\tilde x_{b,t} = \frac{x_{b,t} - m_b}{s_b} - \frac1F \sum_{t'} \frac{x_{b,t'} - m_b}{s_b}.$$
#   A fixed filter (a microphone, a channel, part of a speaker's timbre) *adds* a constant $c_b$ to each log-mel bin
#   (exactly for a filter that is flat across each band, nearly so for a smooth one), and CMN removes it.
#
# First the settings of the training recipe and of the two committed checkpoints:

# %%
# NBVAL_CHECK_OUTPUT
tc = TrainConfig()
print(f"training recipe (TrainConfig): speed factors {tc.speed_perturb}, VTLP α in [{1 - tc.vtlp:.2f}, "
      f"{1 + tc.vtlp:.2f}], SpecAugment {'on' if tc.spec_augment else 'off'}; tiny preset per-utterance CMN "
      f"{'on' if SpeechTokenizerConfig.tiny().utterance_cmn else 'off'}")
for stem in ("speech_tokenizer", "vq_tokenizer"):
    meta = json.loads((PRETRAINED / f"{stem}.json").read_text())
    used = meta["trained"]["train_config"]
    print(f"committed {stem}: {meta['config']['quantizer']}, speed factors {tuple(used.get('speed_perturb', (1.0,)))}, "
          f"VTLP {used.get('vtlp', 0)}, SpecAugment {used.get('spec_augment')}, "
          f"CMN {'on' if meta['config'].get('utterance_cmn', False) else 'off'}")
assert tuple(tc.speed_perturb) == (0.9, 1.0, 1.1) and tc.vtlp == 0.12     # the figures quoted above

# %% [markdown]
# Speed perturbation and VTLP on one fixture clip. The check measures the *spectral centroid* — the mean frequency,
# weighted by energy — which must rise with the factor.

# %%
clip = next(u for u in fixtures if u.voice == "flite_awb" and u.split == "valid")
wav = load_audio(FIXTURES_DIR / clip.path, 16000)                   # (n,) at 16 kHz
raw = tokenizer_features(wav)
raw = raw[:, : raw.shape[1] // 4 * 4]                               # (80, F): F a multiple of 4, the length rule
centres = librosa.mel_frequencies(n_mels=82, fmin=0.0, fmax=8000.0)[1:-1]   # the 80 band centres in Hz


def centroid(feats):
    # energy-weighted mean frequency (Hz) of a log-mel (80, F)
    e = feats.float().exp().sum(1).numpy()
    return float((e * centres).sum() / e.sum())


sped = {f: speed_perturb(raw, f) for f in tc.speed_perturb}
for f, x in sped.items():
    assert x.shape == (80, max(4, round(raw.shape[1] / f) // 4 * 4))   # F / factor frames, a multiple of 4
alphas = (1 - tc.vtlp, 1.0, 1 + tc.vtlp)
warped = {a: vtlp(raw, a) for a in alphas}
assert torch.allclose(warped[1.0], raw)                              # α = 1 changes nothing
for group in (sped, warped):
    cs = [centroid(x) for x in group.values()]
    assert cs[0] < cs[1] < cs[2]                                     # higher factor → higher frequencies

fig, ax = plt.subplots(1, 4, figsize=(14, 3), dpi=56, gridspec_kw={"width_ratios": [1, 1, 1, 1.1]})
for a_, (f, x) in zip(ax, sped.items()):
    a_.imshow(x.float().numpy(), origin="lower", aspect="auto", cmap=MEL_CMAP, vmin=-11, vmax=2,
              extent=[0, x.shape[1] / 100, 0, 80])
    a_.set_xlim(0, max(v.shape[1] for v in sped.values()) / 100)
    a_.set_title(f"speed ×{f}: {x.shape[1]} frames, centroid {centroid(x):.0f} Hz", fontsize=9)
    a_.set_xlabel("time (s)")
ax[0].set_ylabel("mel bin")
for a, x in warped.items():
    ax[3].plot(x.float().mean(1).numpy(), label=f"VTLP α = {a:.2f}")
ax[3].set_xlabel("mel bin"); ax[3].set_ylabel("mean log-mel"); ax[3].legend(fontsize=8)
ax[3].set_title("VTLP: the spectrum stretched along frequency", fontsize=9)
plt.tight_layout(); plt.show()

# %% [markdown]
# SpecAugment and CMN act on the *normalised* features the network reads (`pad_features` applies the corpus
# statistics stored in the committed checkpoint, then CMN where the config turns it on). The check adds a fixed
# spectral tilt $c_b$ — what a different microphone would do — and shows that with CMN the network input does not
# change at all, while without CMN it moves by $c_b / s_b$.

# %%
tok = SpeechTokenizer.from_pretrained(PRETRAINED / "speech_tokenizer", device=device)   # the committed FSQ tokenizer
with_cmn = SpeechTokenizer(replace(tok.cfg, utterance_cmn=True)).eval()
without_cmn = SpeechTokenizer(replace(tok.cfg, utterance_cmn=False)).eval()
for m in (with_cmn, without_cmn):
    m.feat_mean.copy_(tok.feat_mean); m.feat_std.copy_(tok.feat_std)
tilt = torch.linspace(-2.0, 2.0, 80)[:, None]                        # c_b: a fixed filter, + in the log domain
on, on_tilted = (with_cmn.pad_features([x])[0][0] for x in (raw, raw + tilt))
off, off_tilted = (without_cmn.pad_features([x])[0][0] for x in (raw, raw + tilt))
assert torch.allclose(on, on_tilted, atol=1e-5)                      # CMN removes the tilt exactly
assert torch.allclose(off_tilted - off, (tilt / tok.feat_std[:, None]).expand_as(off), atol=1e-5)
assert on.mean(1).abs().max() < 1e-5                                 # every bin has mean 0 over time

feats, lengths = with_cmn.pad_features([raw])
masked = spec_augment(feats, lengths, torch.Generator().manual_seed(0))
zero_bands = int((masked[0] == 0).all(1).sum())
zero_frames = int((masked[0] == 0).all(0).sum())
assert masked.shape == feats.shape and zero_bands > 0 and zero_frames > 0
assert torch.equal(masked[masked != 0], feats[masked != 0])          # only masking, nothing else moves

fig, ax = plt.subplots(1, 3, figsize=(14, 3), dpi=56)
for a_, x, title in [(ax[0], off, "normalised, no CMN"), (ax[1], on, "normalised + per-utterance CMN"),
                     (ax[2], masked[0], f"+ SpecAugment: {zero_bands} bands, {zero_frames} frames zeroed")]:
    a_.imshow(x.numpy(), origin="lower", aspect="auto", cmap=plt.get_cmap("coolwarm", 32), vmin=-3, vmax=3)
    a_.set_title(title, fontsize=9); a_.set_xlabel("frame (10 ms)")
ax[0].set_ylabel("mel bin")
plt.tight_layout(); plt.show()

# %% [markdown]
# ### A live training run (seconds): FSQ against a plain VQ
#
# The package's `train_step` with the recipe above (speed perturbation, VTLP, SpecAugment), on the 12 training clips
# of the fixtures: 150 steps of the small FSQ model of this section, and of the same model with the textbook VQ-VAE
# quantizer (EMA codebook, no dead-code restarts) and the same 81 codes. Enough to watch the loss fall, not to learn
# to read — and to watch the two quantizers start very differently: the VQ begins on almost a single code, because
# the commitment loss is easiest to satisfy with a constant encoder output, while FSQ's fixed grid is spread over by
# whatever the encoder produces. The committed checkpoints ran the same `train_step` for thousands of steps on the
# full corpus (§9 reads out how many).

# %%
live_tc = TrainConfig(lr=3e-3, warmup=0)
runs = {}
for name, cfg in [("fsq", small_cfg), ("vq, no restarts", replace(small_cfg, quantizer="vq", vq_codebook_size=81,
                                                                   vq_restart=False))]:
    seed_everything(0)
    model = fresh(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=live_tc.lr)
    gen = torch.Generator().manual_seed(0)                           # draws the augmentations
    losses, used = [], []
    for step in range(1, 151):
        losses.append(train_step(model, opt, fixtures_train, live_tc, gen, lr=live_tc.lr))
        if step % 15 == 0:                                           # codes used on the (clean) training clips
            model.eval()
            with torch.no_grad():
                o = model(*model.pad_features([d["feats"] for d in fixtures_train]))
            used.append((step, codebook_usage(o["indices"][o["mask"]], model.codebook_size)["codes_used"]))
            model.train()
    runs[name] = (losses, used)
fsq_losses, fsq_used = runs["fsq"]
assert np.mean(fsq_losses[-10:]) < 0.6 * np.mean(fsq_losses[:10])   # the CTC loss falls
assert runs["vq, no restarts"][1][0][1] <= 2                         # the VQ starts on (almost) a single code
assert fsq_used[-1][1] > 3 * runs["vq, no restarts"][1][-1][1]      # FSQ already spreads over many more codes

fig, ax = plt.subplots(1, 2, figsize=(11, 3.2), dpi=64)
for name, (losses, used) in runs.items():
    ax[0].plot(losses, label=name)
    ax[1].plot(*zip(*used), marker="o", label=name)
ax[0].set_xlabel("step"); ax[0].set_ylabel("CTC loss per character"); ax[0].legend(fontsize=8)
ax[0].set_title("live run on the 12 fixture training clips, with augmentation", fontsize=9)
ax[1].set_xlabel("step"); ax[1].set_ylabel("codes used (of 81)"); ax[1].legend(fontsize=8)
ax[1].set_title("codebook use during the run", fontsize=9)
plt.tight_layout(); plt.show()
for name, (losses, used) in runs.items():
    print(f"{name:16s}: CTC loss {np.mean(losses[:10]):.2f} → {np.mean(losses[-10:]):.2f}, codes used "
          + ", ".join(str(u) for _, u in used))

# %% [markdown]
# ## 8 · The committed tokenizer: tokens, transcript, codebook use, CER
#
# `SpeechTokenizer.from_pretrained()` loaded the committed tiny FSQ tokenizer in §7 (fp32 safetensors + JSON). It
# first transcribes the fixtures' valid and test clips (clips it never trained on); we show a *typical* one — the
# train-voice clip with the median CER — with its 100 Hz log-mel and the 25 Hz token ids drawn under it (each token
# covers 4 mel frames), and the clip to listen to.

# %%
evals = [u for u in fixtures if u.split in ("valid", "test")]
eval_wavs = [load_audio(FIXTURES_DIR / u.path, 16000) for u in evals]
refs = [normalize_transcript(u.text) for u in evals]
hyps = tok.transcribe(eval_wavs)
ranked = sorted((cer(r, h), k) for k, (r, h, u) in enumerate(zip(refs, hyps, evals))
                if u.voice in TRAIN_VOICES and len(eval_wavs[k]) <= 3 * 16000)
k_typ = ranked[len(ranked) // 2][1]                                  # the median clip
shown, shown_wav = evals[k_typ], eval_wavs[k_typ]
tokens = tok.encode(shown_wav, 16000)
assert tokens.shape == (len(shown_wav) // SAMPLES_PER_TOKEN,) and torch.equal(tokens, tok.encode(shown_wav, 16000))
mel = tokenizer_features(shown_wav)
fig, ax = plt.subplots(2, 1, figsize=(10, 4.2), dpi=64, sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
ax[0].imshow(mel, origin="lower", aspect="auto", cmap=MEL_CMAP, vmin=-11, vmax=2, extent=[0, mel.shape[1] / 100, 0, 80])
ax[0].set_ylabel("mel bin"); ax[0].set_title(f"{shown.voice}: “{shown.text}”")
tt = (np.arange(len(tokens)) + 0.5) / TOKEN_RATE
ax[1].step(tt, tokens.numpy(), where="mid")
for x_, v in list(zip(tt, tokens.tolist()))[::3]:
    ax[1].annotate(str(v), (x_, v), fontsize=6)
ax[1].set_ylabel("token id"); ax[1].set_xlabel("time (s)")
plt.tight_layout(); plt.show()
display(Audio(shown_wav, rate=16000))                               # ≤ 3 s by the choice above

# %% [markdown]
# The tokens and what the recognition head reads in them. `read_tokens` starts from the token ids alone
# ($\hat H = \mathrm{ProjUp}(\text{codes of the ids})$, then Encoder2 and the head): it must agree with `transcribe`,
# which runs the whole model on the audio — the tokens carry everything the head uses. (This is also how later
# notebooks judge tokens generated by the LM.)

# %%
# NBVAL_CHECK_OUTPUT
hyp = hyps[k_typ]
print(f"{shown.id}: {len(shown_wav)} samples → {len(tokens)} tokens")
print("tokens:", tokens.tolist())
print("reference     :", refs[k_typ])
print("ASR head      :", hyp)
print("from the ids  :", tok.read_tokens([tokens])[0])
print(f"CER of this clip: {cer(refs[k_typ], hyp):.2f} (the median of {len(ranked)} train-voice clips)")
assert tok.read_tokens([tokens])[0] == hyp == tok.transcribe([shown_wav])[0]   # batched = alone

# %% [markdown]
# ### Codebook use, by hand
#
# Over a bag of $N$ tokens with counts $n_c$ per code $c$ and shares $p_c = n_c / N$:
#
# $$\text{utilisation} = \frac{|\{c : n_c > 0\}|}{(2K+1)^D}, \qquad
# \text{perplexity} = \exp\Big(-\sum_c p_c \log p_c\Big).$$
#
# Perplexity is the effective number of codes in use: $(2K+1)^D$ when every code is equally frequent, 1 when a single
# code is used. On the fixtures' valid and test clips (a few seconds each, far too few tokens for these figures to
# mean much — the committed evaluation in §9 uses the full valid split):

# %%
eval_tokens = tok.encode_batch(eval_wavs, 16000)
bag = torch.cat(eval_tokens)
counts = torch.bincount(bag, minlength=tok.codebook_size).double()
p = counts / counts.sum()
utilisation = int((counts > 0).sum()) / tok.codebook_size
perplexity = float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum()))
usage = codebook_usage(bag, tok.codebook_size)                      # the package
assert usage["codes_used"] == int((counts > 0).sum()) and usage["n_tokens"] == len(bag)
assert abs(usage["utilisation"] - utilisation) < 1e-6   # equal up to float32 rounding (a tensor division)
assert abs(usage["perplexity"] - perplexity) < 1e-9

# %%
# NBVAL_CHECK_OUTPUT
print(f"{len(evals)} fixture clips, {len(bag)} tokens: {usage['codes_used']} of {tok.codebook_size} codes used "
      f"(utilisation {utilisation:.1%}), perplexity {perplexity:.1f}")

# %% [markdown]
# ### CER against the committed evaluation
#
# The committed evaluation (`minicosy eval tokenizer`, file `data/pretrained/tiny/speech_tokenizer_eval.json`) ran
# the same tokenizer over the whole valid split of the full corpus. The fixture clips are a separate small draw of
# sentences by the same voices, so the live CER can only *agree* with it, within a margin for a few dozen short
# clips. The cell asserts that the two differ by less than three standard errors of the live figure
# ($3\sigma/\sqrt{n}$, with $\sigma$ the spread of the per-clip CERs over the $n$ clips), and that the evaluation is
# of the checkpoint loaded here.

# %%
report = json.loads((PRETRAINED / "speech_tokenizer_eval.json").read_text())
res = report["results"]
# newer evaluations name the corpus-v1 checkpoints "<name>_v1"; an evaluation without them holds v1 checkpoints only
V2 = any(k.endswith("_v1") for k in res)
by_corpus = ({"v1": {k[:-3]: r for k, r in res.items() if k.endswith("_v1")},
              "v2": {k: r for k, r in res.items() if not k.endswith("_v1")}} if V2 else {"v1": dict(res)})
latest = by_corpus["v2" if V2 else "v1"]
committed = latest["fsq"]
assert committed["checkpoint"] == "data/pretrained/tiny/speech_tokenizer"
if "trained" in committed:
    assert committed["trained"]["steps"] == tok.meta["trained"]["steps"], "the evaluation is of this checkpoint"
assert committed["codebook_size"] == tok.codebook_size
groups = {"train": TRAIN_VOICES, "held-out": HELDOUT_VOICES}
live, margin = {}, {}
for group, voices in groups.items():
    pairs = [(r, h) for r, h, u in zip(refs, hyps, evals) if u.voice in voices]
    live[group] = cer([r for r, _ in pairs], [h for _, h in pairs])            # pooled over the clips
    per_clip = [cer(r, h) for r, h in pairs]
    margin[group] = 3 * np.std(per_clip) / np.sqrt(len(pairs))               # three standard errors

# %%
# NBVAL_CHECK_OUTPUT
print(f"evaluation: corpus {report['corpus']}, split {report['split']}, {committed['n_utterances']} utterances")
for group, key in (("train", "cer_train_voices"), ("held-out", "cer_heldout_voices")):
    n = sum(u.voice in groups[group] for u in evals)
    print(f"CER on {group:8s} voices: live on {n:2d} fixture clips {live[group]:.0%} (± {margin[group]:.0%}), "
          f"committed evaluation {committed[key]:.0%}")
    assert abs(live[group] - committed[key]) < margin[group]
assert committed["cer_train_voices"] < committed["cer_heldout_voices"]   # unheard voices are harder


# %% [markdown]
# ## 9 · FSQ vs VQ, corpus v1 vs corpus v2
#
# CosyVoice 2 replaced CosyVoice 1's vector quantizer by FSQ and reports (paper §4) that FSQ uses its whole codebook
# where the VQ used under a quarter of its codes. minicosy trains both with the same encoder, the same 243-code budget
# and the same recipe:
#
# * **fsq** — the paper's quantizer ($D = 5$, $K = 1$ in the tiny preset);
# * **vq** — a VQ with an exponential-moving-average codebook and *dead-code restarts* (a code that stops being
#   used is moved onto a live encoder vector). Without restarts a VQ starts on a handful of codes (§7's live run)
#   and our tiny full-corpus runs stayed there, which would make the comparison meaningless.
#
# Each was trained twice: on **corpus v1** (8 train voices) and on **corpus v2** (16 train voices, with the recipe of
# §7). The committed evaluation holds four kinds of figures, all on the valid split:
#
# * **utilisation** and **perplexity** (§8);
# * **CER** of each tokenizer's own recognition head on the train voices and on the held-out voices (never heard in
#   training);
# * a **speaker probe** — the cross-validated accuracy of a logistic regression that names the voice from the
#   clip's mean token embedding $\hat H$, beside the same probe on the mean log-mel: lower on the tokens means less
#   of the speaker left in them (chance = 1 / number of voices);
# * **cross-voice agreement** (§10).

# %%
# NBVAL_CHECK_OUTPUT
def fmt(x, spec):
    return format(x, spec) if x is not None else "—"


print(f"{'corpus':6s} {'tokenizer':9s} {'used':>8s} {'util.':>6s} {'perpl.':>6s} {'CER train':>9s} {'CER held':>8s} "
      f"{'probe tok':>9s} {'probe mel':>9s} {'chance':>6s} {'steps':>6s} {'min':>5s}")
for corpus, rows in by_corpus.items():
    for name, r in rows.items():
        sp, tr = r["speaker_probe"], r.get("trained") or {}
        print(f"{corpus:6s} {name:9s} {r['codes_used']:4d}/{r['codebook_size']:<3d} {r['utilisation']:6.0%} "
              f"{r['perplexity']:6.0f} {r['cer_train_voices']:9.0%} {r['cer_heldout_voices']:8.0%} "
              f"{sp['tokens']:9.0%} {sp['mel']:9.0%} {sp['chance']:6.0%} {fmt(tr.get('steps'), '6d'):>6s} "
              f"{fmt(tr.get('minutes'), '5.0f'):>5s}")
print("held-out voices of the evaluation:", ", ".join(latest["fsq"]["heldout_voices"]))

# %%
names = [(c, n) for c, rows in by_corpus.items() for n in rows]
colour = {"fsq": "C0", "vq": "C3", "vq-plain": "C1"}
fig, ax = plt.subplots(1, 3, figsize=(13, 3.4), dpi=64)
labels = [f"{n}\n{c}" for c, n in names]
cols = [colour.get(n, "C7") for _, n in names]
hatch = ["//" if c == "v1" and V2 else "" for c, _ in names]
ax[0].bar(labels, [100 * by_corpus[c][n]["utilisation"] for c, n in names], color=cols, hatch=hatch)
ax[0].set_ylim(0, 105); ax[0].set_ylabel("% of the codebook used")
ax[0].set_title("codebook utilisation" + (" (hatched: v1 checkpoints)" if V2 else ""))
x = np.arange(len(names))
ax[1].bar(x - 0.2, [100 * by_corpus[c][n]["cer_train_voices"] for c, n in names], 0.4, color=cols, hatch=hatch,
          label="train voices")
ax[1].bar(x + 0.2, [100 * by_corpus[c][n]["cer_heldout_voices"] for c, n in names], 0.4, color=cols, hatch=hatch,
          alpha=0.5, label="held-out voices")
ax[1].set_xticks(x, labels); ax[1].set_ylabel("CER (%)"); ax[1].set_title("CER: train (solid) / held-out (pale)")
ax[1].set_ylim(0, 100 * min(1.0, 1.2 * max(by_corpus[c][n]["cer_heldout_voices"] for c, n in names)))
ax[2].bar(labels, [100 * by_corpus[c][n]["speaker_probe"]["tokens"] for c, n in names], color=cols, hatch=hatch)
ax[2].axhline(100 * latest["fsq"]["speaker_probe"]["mel"], color="C2", lw=1.5, label="probe on the log-mel")
ax[2].axhline(100 * latest["fsq"]["speaker_probe"]["chance"], color="k", ls="--", lw=1, label="chance")
ax[2].set_ylabel("speaker-ID accuracy (%)"); ax[2].set_title("speaker probe on token embeddings")
ax[2].legend(fontsize=8)
plt.tight_layout(); plt.show()

# %% [markdown]
# **What the committed figures show** at this scale (one tiny run per quantizer and corpus, all four checkpoints
# evaluated on the same corpus-v2 valid split; the next cell prints each comparison and asserts every statement made
# here).
#
# * **Codebook use.** Both tokenizers use nearly all their codes. The paper's gap (FSQ 100% vs VQ 23%, paper §4) is
#   a gap between FSQ and a VQ that lets codes die — §7's live run shows a plain VQ starting on one code, and a
#   full-corpus plain-VQ run of corpus v1 stayed below 1% (`results/speech_tokenizer_eval_v1.json`); with restarts
#   our VQ keeps every code alive and even spreads its tokens more evenly (a higher perplexity). FSQ gets its codebook
#   use with no codebook, no auxiliary loss and no restarts.
# * **CER.** With the corpus-v1 checkpoints the VQ's head had the lower CER on train and held-out voices. With sixteen
#   training voices and the v2 recipe both improved, the two are level on the train voices and FSQ is lower on the
#   held-out ones. One run each cannot tell the quantizers apart from the spread between runs; the v1 → v2 gain is
#   the larger effect.
# * **Speaker.** A linear probe names the voice from the mean log-mel almost every time, from FSQ's token embeddings
#   far less often, and from the VQ's more often than from FSQ's: FSQ's coarse grid keeps less of the speaker, which
#   is what the LM and the flow model want from the tokens (the flow gets the voice from its own speaker embedding).

# %%
# NBVAL_CHECK_OUTPUT
measures = {"utilisation": (lambda r: r["utilisation"], ".0%"),
            "perplexity": (lambda r: r["perplexity"], ".0f"),
            "CER, train voices": (lambda r: r["cer_train_voices"], ".1%"),
            "CER, held-out voices": (lambda r: r["cer_heldout_voices"], ".1%"),
            "speaker probe, tokens": (lambda r: r["speaker_probe"]["tokens"], ".0%")}
fig_ = {c: {m: tuple(f(rows[n]) for n in ("fsq", "vq")) for m, (f, _) in measures.items()}
        for c, rows in by_corpus.items()}
for c, ms in fig_.items():
    for m, (f, v) in ms.items():
        spec = measures[m][1]
        print(f"{c}  {m:22s} fsq {f:>6{spec}}   vq {v:>6{spec}}")
for c, ms in fig_.items():
    assert min(ms["utilisation"]) >= 0.9 and ms["perplexity"][1] > ms["perplexity"][0]       # codebook use
    mel = by_corpus[c]["fsq"]["speaker_probe"]["mel"]
    assert ms["speaker probe, tokens"][0] < ms["speaker probe, tokens"][1] < mel and mel > 0.9  # speaker
if "vq-plain" in by_corpus["v1"]:
    assert by_corpus["v1"]["vq-plain"]["utilisation"] < 0.1                                  # the collapse
assert (sum(v.role == "train" for v in VOICES[:10]), len(TRAIN_VOICES)) == (8, 16)           # v1, v2 train voices
v1 = fig_["v1"]
assert all(v1[m][1] < v1[m][0] for m in ("CER, train voices", "CER, held-out voices"))        # v1: VQ lower
if V2:
    v2 = fig_["v2"]
    assert abs(v2["CER, train voices"][0] - v2["CER, train voices"][1]) < 0.02                # v2: level ...
    assert v2["CER, held-out voices"][0] < v2["CER, held-out voices"][1]                      # ... FSQ lower held out
    assert tok.cfg.utterance_cmn and tuple(tok.meta["trained"]["train_config"]["speed_perturb"]) == (0.9, 1.0, 1.1)
    budget = {n: by_corpus["v2"][n]["trained"] for n in ("fsq", "vq")}
    assert abs(budget["fsq"]["minutes"] - budget["vq"]["minutes"]) < 5 and budget["vq"]["steps"] < budget["fsq"]["steps"]
    assert all(v2[m][k] < v1[m][k] for m in ("CER, train voices", "CER, held-out voices") for k in (0, 1))  # v1 → v2
    for k, n in enumerate(("fsq", "vq")):
        print(f"{n}: v1 → v2 checkpoint, CER train voices {v1['CER, train voices'][k]:.1%} → "
              f"{v2['CER, train voices'][k]:.1%}, held-out voices {v1['CER, held-out voices'][k]:.1%} → "
              f"{v2['CER, held-out voices'][k]:.1%}; trained {budget[n]['steps']} steps in {budget[n]['minutes']:.0f} min")

# %% [markdown]
# ## 10 · What the tokens keep: the same sentence by another voice
#
# If the tokens carry *what was said* and little of *who said it*, two voices reading the same sentence should give
# similar token sequences — more similar than one voice reading two different sentences. Similarity here is
# `sequence_match`, Python's `difflib` ratio $2M / (|a| + |b|)$ ($M$ = tokens in matching blocks), on the raw
# sequences and with repeats collapsed (`a a b b b c` → `a b c`: a slower reader repeats tokens, the content is
# the same).
#
# The fixtures were built for this: among the test clips, voice $i$ and voice $i + 10$ (in the corpus's voice
# order) read the same sentence, including the held-out pairs `mbrola_us3` / `pico_en_gb` and `mbrola_en1` /
# `rhvoice_lyubov`; each of the first ten voices also has a valid clip with another sentence. (One pair,
# `festival_slt_hts` / `rhvoice_slt`, is the same recorded person in two engines — notebook 00, §8 — and so the
# easiest.) First one pair by hand, two train voices from two engines: `difflib` finds the matching blocks, and their
# share must be the package's `sequence_match`.

# %%
voice_ids = [v.id for v in VOICES]
test_clip = {u.voice: u for u in fixtures if u.split == "test"}
valid_clip = {u.voice: u for u in fixtures if u.split == "valid"}
test_tokens = dict(zip(voice_ids, tok.encode_batch([load_audio(FIXTURES_DIR / test_clip[v].path, 16000)
                                                    for v in voice_ids], 16000)))
a_id, b_id = "festival_kal", "rhvoice_bdl"                           # two train voices: two engines, two people
assert test_clip[a_id].text == test_clip[b_id].text
a, b = test_tokens[a_id].tolist(), test_tokens[b_id].tolist()
blocks = difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()
M = sum(bl.size for bl in blocks)
assert abs(2 * M / (len(a) + len(b)) - sequence_match(a, b)) < 1e-12   # by hand = the package

fig, ax = plt.subplots(2, 1, figsize=(10, 3.6), dpi=64, sharex=True)
for a_, seq, vid, side in [(ax[0], a, a_id, "a"), (ax[1], b, b_id, "b")]:
    a_.step(np.arange(len(seq)) / TOKEN_RATE, seq, where="post", color="0.4")
    for bl in blocks:
        start = bl.a if side == "a" else bl.b
        if bl.size:
            a_.axvspan(start / TOKEN_RATE, (start + bl.size) / TOKEN_RATE, color="C2", alpha=0.3)
    a_.set_ylabel("token id"); a_.set_title(f"{vid}: “{test_clip[vid].text}”", fontsize=9)
ax[1].set_xlabel("time (s); green: runs of tokens the two readings share")
plt.tight_layout(); plt.show()
for vid in (a_id, b_id):
    display(Audio(load_audio(FIXTURES_DIR / test_clip[vid].path, 16000)[: 3 * 16000], rate=16000))
print(f"{M} matching tokens of {len(a)} + {len(b)}: sequence_match = {sequence_match(a, b):.2f}")

# %% [markdown]
# Now every pair of the fixtures. The check asserts the ordering on average: same sentence by two voices above two
# sentences by one voice, raw and collapsed.

# %%
same_pairs = [(voice_ids[i], voice_ids[i + 10]) for i in range(10)]
assert all(test_clip[v].text == test_clip[w].text for v, w in same_pairs)
v1_voices = voice_ids[:10]
other_tokens = dict(zip(v1_voices, tok.encode_batch([load_audio(FIXTURES_DIR / valid_clip[v].path, 16000)
                                                     for v in v1_voices], 16000)))
assert all(test_clip[v].text != valid_clip[v].text for v in v1_voices)
agree = {}
for collapse in (False, True):
    same = [sequence_match(test_tokens[v], test_tokens[w], collapse) for v, w in same_pairs]
    diff = [sequence_match(test_tokens[v], other_tokens[v], collapse) for v in v1_voices]
    agree["collapsed" if collapse else "raw"] = (float(np.mean(same)), float(np.mean(diff)))
sim = np.array([[sequence_match(test_tokens[v], test_tokens[w]) for w in voice_ids] for v in voice_ids])

# %%
# NBVAL_CHECK_OUTPUT
for kind, (s, d) in agree.items():
    print(f"{kind:9s}: same sentence, two voices {s:.2f} ({len(same_pairs)} pairs) vs "
          f"two sentences, one voice {d:.2f} ({len(v1_voices)} pairs): margin {s - d:+.2f}")
    assert s > d

# %%
off_diag = sim.copy()
np.fill_diagonal(off_diag, np.nan)                                   # a clip against itself: 1, left blank
fig, ax = plt.subplots(figsize=(6.5, 5.5), dpi=64)
im = ax.imshow(off_diag, cmap="viridis", vmin=0, vmax=float(np.nanmax(off_diag)))
for v, w in same_pairs:                                              # outline the same-sentence pairs
    i, j = voice_ids.index(v), voice_ids.index(w)
    for r, c in ((i, j), (j, i)):
        ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, ec="w", lw=1.2))
ax.set_xticks(range(20), [v + (" *" if v in HELDOUT_VOICES else "") for v in voice_ids], rotation=70,
              ha="right", fontsize=7)
ax.set_yticks(range(20), [v + (" *" if v in HELDOUT_VOICES else "") for v in voice_ids], fontsize=7)
ax.set_title("sequence_match of the 20 fixture test clips\n(outlined: the same sentence by two voices; * held out)",
             fontsize=9)
plt.colorbar(im, fraction=0.046); plt.tight_layout(); plt.show()

# %% [markdown]
# The committed evaluation measures the same thing on the valid split of the full corpus, for the **held-out** voices
# only (every valid sentence there is read by two voices): the pairs that matter for zero-shot synthesis.

# %%
# NBVAL_CHECK_OUTPUT
for corpus, rows in by_corpus.items():
    for name, r in rows.items():
        cva = r.get("cross_voice_agreement")
        if not cva:
            print(f"{corpus} {name:8s}: not measured in this evaluation")
            continue
        s, d, m = cva["same_sentence"], cva["different_sentence"], cva["margin"]
        print(f"{corpus} {name:8s}: same sentence {s['raw']:.2f} / {s['collapsed']:.2f} ({s['pairs']} pairs) vs "
              f"different {d['raw']:.2f} / {d['collapsed']:.2f} ({d['pairs']} pairs): "
              f"margin {m['raw']:+.2f} / {m['collapsed']:+.2f} (raw / collapsed)")
        assert m["raw"] > 0 and m["collapsed"] > 0
if V2:
    for n in ("fsq", "vq"):                       # the v2 checkpoints agree more across voices than the v1 ones
        assert all(by_corpus["v2"][n]["cross_voice_agreement"]["margin"][k]
                   > by_corpus["v1"][n]["cross_voice_agreement"]["margin"][k] for k in ("raw", "collapsed"))
    assert all(by_corpus["v2"]["vq"]["cross_voice_agreement"]["margin"][k]
               > by_corpus["v2"]["fsq"]["cross_voice_agreement"]["margin"][k] for k in ("raw", "collapsed"))

# %% [markdown]
# ## 11 · Exercises
#
# 1. **Eq. 2 by hand.** With $K = 2$, $D = 3$, what is the token index of the codes $(2, -2, 1)$? Set `answer_1`.
# 2. **The inverse.** Write `my_indices_to_codes(mu, D, K)` returning the list of $D$ codes of an index, without
#    package calls. The check runs it over a whole codebook.
# 3. **Budget.** How many tokens does a clip of 3.7 s at 16 kHz give? Set `answer_3`.
# 4. **Eq. 2 as printed.** With $K = 1$, $D = 5$ (the tiny preset), the unshifted sum $\sum_j \hat h_j 3^j$ of which
#    code is the most negative, and what is that number? Set `answer_4 = (codes, number)`.
# 5. **Perplexity.** A tokenizer emits the ten tokens `[4, 4, 4, 4, 9, 9, 9, 9, 17, 17]`. What are its
#    utilisation (243 codes) and perplexity? Set `answer_5 = (utilisation, perplexity)`; two decimals are enough.
#
# Each check prints *not attempted* until you fill it in.

# %%
answer_1 = None          # the index of codes (2, -2, 1) with K = 2, D = 3


def my_indices_to_codes(mu, D, K):
    return None          # your code here: a list of D integers in [-K, K]


answer_3 = None          # tokens for 3.7 s at 16 kHz
answer_4 = None          # (codes, number): the most negative unshifted index for K = 1, D = 5
answer_5 = None          # (utilisation, perplexity) of [4, 4, 4, 4, 9, 9, 9, 9, 17, 17] with 243 codes


# %%
def check(name, ok):
    print(f"{name}: {'not attempted' if ok is None else ('correct' if ok else 'not yet — try again')}")


q23 = FSQ(4, num_dims=3, K=2)
check("exercise 1", None if answer_1 is None else answer_1 == q23.codes_to_indices(torch.tensor([[2., -2., 1.]])).item())
if my_indices_to_codes(0, 3, 2) is None:
    check("exercise 2", None)
else:
    check("exercise 2", all(list(my_indices_to_codes(i, 3, 2)) == q23.indices_to_codes(torch.tensor(i)).long().tolist()
                            for i in range(q23.codebook_size)))
check("exercise 3", None if answer_3 is None else answer_3 == int(3.7 * 16000) // SAMPLES_PER_TOKEN)
q5 = FSQ(4, num_dims=5, K=1)
lowest = q5.indices_to_codes(torch.tensor(0))                    # index 0 = every digit 0 = every code -K
check("exercise 4", None if answer_4 is None else
      list(answer_4[0]) == lowest.long().tolist() and answer_4[1] == -(q5.codebook_size - 1) // 2)
u5 = codebook_usage(torch.tensor([4, 4, 4, 4, 9, 9, 9, 9, 17, 17]), 243)
check("exercise 5", None if answer_5 is None else
      abs(answer_5[0] - u5["utilisation"]) < 0.005 and abs(answer_5[1] - u5["perplexity"]) < 0.005)
