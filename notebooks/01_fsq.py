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
# **Prerequisites.** Notebook 00: the corpus and its voices, the fixture clips in `data/fixtures`, the 16 kHz /
# 100 Hz features and the rule that 640 samples make one token.
#
# **Runtime.** Under a minute on 2 CPU cores in the default (tiny) mode. A GPU changes nothing: the notebook pins
# the CPU, because tokens are discrete outputs and must be identical on every machine and every run. Nothing big is
# trained here: the live run takes seconds; the trained checkpoints in `data/pretrained/tiny` were made with
# `minicosy train tokenizer --preset tiny [--quantizer vq]` on the full corpus, for the minutes recorded in their
# JSON files (read out in §9).
#
# **Contents** (a bare § below is a section of this notebook; the paper's are written "paper §").
# 1 · FSQ on a 2-D toy · 2 · the straight-through gradient · 3 · Eq. 1 step by step ·
# 4 · Eq. 2 step by step (and the shift the paper leaves out) · 5 · choosing D and K · 6 · the tokenizer and its
# length rule · 7 · training: SenseVoice and minicosy's encoder, the CTC loss, the recipe · 8 · the trained
# tokenizer: tokens, the recognition head slot by slot, codebook use, CER · 9 · FSQ vs VQ · 10 · what the tokens
# keep: same sentence, other voice · 11 · exercises · summary.

# %%
import difflib
import itertools
import json
import os
from dataclasses import replace

import librosa
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Audio, display

from minicosy.audio import load_audio, tokenizer_features
from minicosy.data.corpus import HELDOUT_VOICES, split_voice_id
from minicosy.data.corpus import VOICES as ALL_VOICES
from minicosy.data.manifest import read_manifest
from minicosy.judges import cer
from minicosy.speech_tokenizer.evaluate import sequence_match
from minicosy.speech_tokenizer.fsq import FSQ, codebook_usage, round_ste
from minicosy.speech_tokenizer.model import (ALPHABET, SAMPLES_PER_TOKEN, TOKEN_RATE, SpeechTokenizer,
                                             SpeechTokenizerConfig, ctc_greedy_decode, text_to_ids)
from minicosy.speech_tokenizer.train import TrainConfig, load_split, spec_augment, speed_perturb, train_step, vtlp
from minicosy.text.normalize import normalize_transcript
from minicosy.utils import FIXTURES_DIR, REPO_ROOT, pick_device, seed_everything

MEL_CMAP = plt.get_cmap("magma", 32)   # 32 colour levels: light PNGs
plt.rcParams.update({"figure.dpi": 90, "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9,
                     "xtick.labelsize": 8, "ytick.labelsize": 8, "legend.fontsize": 8})
PRESET = os.environ.get("MINICOSY_PRESET", "tiny")   # "tiny" (default) or "paper": the sizes used in §6
CFG = getattr(SpeechTokenizerConfig, PRESET)()
PRETRAINED = REPO_ROOT / "data" / "pretrained" / "tiny"   # the trained checkpoints are tiny ones
RESULTS = REPO_ROOT / "results"                           # measured figures stored with the code
FIXTURES = FIXTURES_DIR / "manifest.jsonl"
fixtures = read_manifest(FIXTURES)
seed_everything(0)
# The trained tokenizer learned from corpus v3: its thirty train voices and their pseudo-speakers (notebook 00).
TRAIN_VOICES = [v.id for v in ALL_VOICES if v.role == "train"]
# §9 compares two quantizers trained on corpus v2, whose twenty voices are the first twenty rows of the voice table;
# the fixture clips of §10 pair those same twenty voices sentence by sentence.
VOICES = ALL_VOICES[:20]
V2_TRAIN_VOICES = [v.id for v in VOICES if v.role == "train"]
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

fig, ax = plt.subplots(1, 2, figsize=(10, 4), dpi=90)
zz = torch.linspace(-3, 3, 601)
for K, c in [(1, "C0"), (2, "C1")]:
    ax[0].plot(zz, K * torch.tanh(zz), c, alpha=0.5, label=f"bound K·tanh(z), K={K}")
    ax[0].plot(zz, torch.round(K * torch.tanh(zz)), c, label=f"rounded: {2 * K + 1} levels")
ax[0].set_xlabel("z"); ax[0].set_ylabel("value"); ax[0].set_title("one coordinate: bound, then round")
ax[0].legend(fontsize=8)
b = torch.tanh(z)
ax[1].scatter(b[:, 0], b[:, 1], c=idx, cmap="tab10", s=10)
ax[1].scatter(grid[:, 0], grid[:, 1], c="k", marker="x", s=60)
for i, (x, y) in enumerate(grid.tolist()):
    ax[1].annotate(str(i), (x, y), textcoords="offset points", xytext=(6, 6))
ax[1].set_xlabel("tanh(z₀)"); ax[1].set_ylabel("tanh(z₁)")
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
goal = torch.tensor([[1.0, -1.0]])                   # the code c* we want
sgd = torch.optim.SGD([zp], lr=0.5)
path = [toy.quantize(zp).detach().squeeze(0).tolist()]
for _ in range(30):
    q = toy.quantize(zp)                             # ẑ: the only thing the loss reads
    loss = ((q - goal) ** 2).sum()
    sgd.zero_grad(); loss.backward()
    if len(path) == 1:                               # the first gradient, checked against the formula above
        assert torch.allclose(zp.grad, 2 * (q - goal).detach() * (1 - torch.tanh(zp.detach()) ** 2))
    sgd.step()
    path.append(toy.quantize(zp).detach().squeeze(0).tolist())
assert path[0] != path[-1] == goal.squeeze(0).tolist()
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
# thousands, and the tiny LM's output layer stays small. The cell prints the bitrate of a few settings and compares it
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
assert text_bits < np.log2(tiny.codebook_size) * TOKEN_RATE     # the tiny bitrate is above the text's

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
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8), dpi=90)
    b = q.bound(z)
    cell = (codes[:, 0] + K) + (2 * K + 1) * (codes[:, 1] + K)   # which rounding cell of coordinates 0 and 1
    ax[0].scatter(b[:, 0], b[:, 1], c=cell, cmap=plt.get_cmap("tab20", (2 * K + 1) ** 2), s=6)
    g = torch.arange(-K, K + 1).float()
    gx, gy = torch.meshgrid(g, g, indexing="ij")
    ax[0].scatter(gx.flatten(), gy.flatten(), c="k", marker="x", s=50)
    ax[0].set_aspect("equal"); ax[0].set_xlabel("coordinate 0 after K·tanh"); ax[0].set_ylabel("coordinate 1")
    ax[0].set_title(f"D={D}, K={K}: coordinates 0 and 1, {(2 * K + 1) ** 2} rounding cells", fontsize=9)
    shown = counts[: min(len(counts), 400)]
    ax[1].bar(np.arange(len(shown)), shown.numpy(), width=1.0)
    used = int((counts > 0).sum())
    ax[1].set_title(f"{q.codebook_size} codes; {n} points hit {used} ({used / q.codebook_size:.0%})", fontsize=9)
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
# ### Where the tokenizer sits: SenseVoice in the paper, a small encoder here
#
# In CosyVoice 2 the tokenizer is not a model of its own. FSQ is inserted into **SenseVoice-Large**, a large
# multilingual speech recogniser (An et al. 2024, "FunAudioLLM", arXiv 2407.04051): its first transformer blocks
# become Encoder1, FSQ follows them, and the rest of SenseVoice-Large — *Encoder2* and its *ASR decoder* — reads the
# quantised $\hat H$ and predicts the transcript's text tokens; the whole stack is trained with that recognition loss
# alone (paper §2.2, Fig. 1(a)). The tokens inherit what a big recogniser has learnt about speech.
#
# minicosy cannot start from SenseVoice (nothing is downloaded here, and a tiny LM needs far less), so it trains a
# small Encoder1 + FSQ + Encoder2 **from scratch** (§6 counted their parameters), with a **CTC head over 29
# characters** in place of SenseVoice's decoder over text tokens. CTC is the simplest recognition loss that needs no
# alignment between the audio and the text, and the next cells take it apart.
#
# ### CTC: the blank and the collapse
#
# For $T$ tokens the head emits $S = 2T$ **slots** (`ctc_upsample = 2`: two per 40 ms token, one every 20 ms), each a
# distribution $p_s(\cdot)$ over 29 symbols: the **blank** `_` (index 0), space, apostrophe and a–z (`ALPHABET`).
# The transcript $y$ has $L < S$ characters, and nothing says which slots carry which character. CTC (Graves et al.
# 2006) lets each slot say "this character" or "nothing new" and sums over all the ways. A **path** $\pi$ picks one
# symbol per slot; the **collapse** $\mathcal B$ turns a path into text in two steps, in this order:
#
# 1. merge every run of the same symbol into one;
# 2. delete the blanks.
#
# $\mathcal B(\texttt{hh\_e\_ll\_lo\_}) = \texttt{hello}$: step 1 gives `h_e_l_lo_`, step 2 `hello`. The blank
# between the two runs of `l` is what keeps the double letter — `llll` alone merges into one `l` — and blanks fill
# the slots where nothing new is said. A transcript's probability is the sum over the paths that collapse to it, and
# the loss is its negative log:
#
# $$P(y \mid x) = \sum_{\pi:\ \mathcal B(\pi) = y}\ \prod_{s=1}^{S} p_s(\pi_s), \qquad
# \mathcal L_\text{CTC} = -\log P(y \mid x).$$
#
# The number of paths grows exponentially with $S$; `torch.nn.functional.ctc_loss` sums them with a forward
# recursion over the blank-padded transcript `_ y₁ _ y₂ … _`, in time $O(S \cdot L)$. On a toy of 5 slots and
# $y$ = `ab` the sum can be done by brute force: a path that collapses to `ab` holds only `_`, `a` and `b`, so the
# $3^5 = 243$ paths over those three symbols contain every term. (`ctc_greedy_decode` applied to a one-hot
# "posterior" that puts all its mass on one path returns $\mathcal B$ of that path; the package's `ctc_loss`
# averages over the $L$ characters.)
#
# At inference the head is read by **greedy (best-path) decoding**: the most probable symbol of each slot, then
# $\mathcal B$ (`ctc_greedy_decode`). That is not the most probable *text* — that would sum over paths again — but it
# is cheap and usually the same; §8 shows it slot by slot on a real clip.

# %%
def one_hot_path(text):
    # a "posterior" (1, S, V) that puts all its mass on one path, written with "_" for the blank
    return torch.nn.functional.one_hot(torch.tensor([[ALPHABET.index(c) for c in text]]), len(ALPHABET)).float()


def collapse_by_package(text):
    return ctc_greedy_decode(one_hot_path(text), torch.tensor([len(text)]))[0]


assert collapse_by_package("hh_e_ll_lo_") == "hello" and collapse_by_package("hh_e_llllo_") == "helo"

S_toy, y_toy = 5, "ab"
log_p = torch.randn(1, S_toy, len(ALPHABET), generator=torch.Generator().manual_seed(0)).log_softmax(-1)  # (1, S, V)
paths = ["".join(pth) for pth in itertools.product("_ab", repeat=S_toy) if collapse_by_package("".join(pth)) == y_toy]
p_y = sum(torch.exp(sum(log_p[0, s, ALPHABET.index(c)] for s, c in enumerate(pth))) for pth in paths)
package_loss = untrained.ctc_loss({"logits": log_p, "logit_lengths": torch.tensor([S_toy])}, [text_to_ids(y_toy)])
assert torch.allclose(-torch.log(p_y) / len(y_toy), package_loss, atol=1e-5)   # brute force = the forward recursion

# %%
# NBVAL_CHECK_OUTPUT
print(f"{len(paths)} of the 3^{S_toy} = {3 ** S_toy} paths over _, a, b collapse to {y_toy!r}, e.g. "
      + ", ".join(paths[:: max(1, len(paths) // 6)][:6]))
print(f"brute force -log P(y|x) / L = {(-torch.log(p_y) / len(y_toy)).item():.4f}; "
      f"package ctc_loss = {package_loss.item():.4f}")

# %% [markdown]
# ### Why two slots per token
#
# A path spells each character in a slot of its own and needs a blank between two equal neighbours (`ll` is spelled
# `l_l`), so a transcript of $L$ characters with $r$ adjacent repeats needs at least $L + r$ slots. At one slot per
# 25 Hz token that allows at most 25 characters a second, and fast speech, easy for a listener, goes beyond it.
# Where $S < L + r$ no path exists, $P(y \mid x) = 0$ and the loss is infinite (`ctc_loss` zeroes it,
# `zero_infinity=True`: the clip teaches nothing). minicosy's head therefore emits two slots per token — its output
# layer is twice as wide and reshaped, `ctc_upsample = 2` — which leaves room for 50 characters a second. (An
# attention decoder such as SenseVoice-Large's has no such limit.) On the 56 fixture clips:

# %%
# NBVAL_CHECK_OUTPUT
def min_slots(ids):
    # the fewest CTC slots that can spell `ids`: one per character, one blank between equal neighbours
    return len(ids) + sum(a == b for a, b in zip(ids, ids[1:]))


all_wavs = {u.id: load_audio(FIXTURES_DIR / u.path, 16000) for u in fixtures}
need = {u.id: (min_slots(text_to_ids(u.text)), len(all_wavs[u.id]) // SAMPLES_PER_TOKEN) for u in fixtures}
fastest = max(fixtures, key=lambda u: len(normalize_transcript(u.text)) / u.duration)
print(f"fastest clip: {fastest.id}, {len(normalize_transcript(fastest.text)) / fastest.duration:.1f} characters/s")
for up in (1, 2):
    short = [k for k, (n, T) in need.items() if n > up * T]
    worst = max(n / (up * T) for n, T in need.values())
    print(f"{up} slot(s) per token: {len(short)} of {len(need)} clips cannot be spelled; "
          f"the most demanding clip needs {worst:.0%} of its slots")
assert CFG.ctc_upsample == 2 and untrained.head.out_features == 2 * len(ALPHABET)
assert sum(n > T for n, T in need.values()) > 0 and all(n <= 2 * T for n, T in need.values())

# %% [markdown]
# ### The loss
#
# The loss is CTC between the head's slots and the normalised transcript $y$:
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
char_ids = [text_to_ids(d["text"]) for d in fixtures_train]
small_cfg = SpeechTokenizerConfig(d_model=64, n_heads=2, enc1_layers=1, enc2_layers=1, fsq_dims=4, fsq_K=1,
                                  dropout=0.0, utterance_cmn=False)


def fresh(cfg):
    m = SpeechTokenizer(cfg)
    allf = torch.cat([d["feats"].float() for d in fixtures_train], 1)
    m.feat_mean.copy_(allf.mean(1)); m.feat_std.copy_(allf.std(1))   # input normalisation from the data
    return m.train()


small = fresh(small_cfg)
out = small(*small.pad_features([d["feats"] for d in fixtures_train]))
ctc = small.ctc_loss(out, char_ids)                                  # CTC on Encoder2(Ĥ): the whole loss
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
# First the settings of the training recipe and of the two trained checkpoints in `data/pretrained/tiny`:

# %%
# NBVAL_CHECK_OUTPUT
tc = TrainConfig()
print(f"training recipe (TrainConfig): speed factors {tc.speed_perturb}, VTLP α in [{1 - tc.vtlp:.2f}, "
      f"{1 + tc.vtlp:.2f}], SpecAugment {'on' if tc.spec_augment else 'off'}; tiny preset per-utterance CMN "
      f"{'on' if SpeechTokenizerConfig.tiny().utterance_cmn else 'off'}")
for stem in ("speech_tokenizer", "vq_tokenizer"):
    meta = json.loads((PRETRAINED / f"{stem}.json").read_text())
    used = meta["trained"]["train_config"]
    print(f"trained {stem}: {meta['config']['quantizer']}, speed factors {tuple(used['speed_perturb'])}, "
          f"VTLP {used['vtlp']}, SpecAugment {used['spec_augment']}, "
          f"CMN {'on' if meta['config']['utterance_cmn'] else 'off'}")
    assert (tuple(used["speed_perturb"]), used["vtlp"], used["spec_augment"], meta["config"]["utterance_cmn"]) == \
        (tuple(tc.speed_perturb), tc.vtlp, tc.spec_augment, True), "trained with the recipe below"
assert tuple(tc.speed_perturb) == (0.9, 1.0, 1.1) and tc.vtlp == 0.12     # the figures quoted below

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

fig, ax = plt.subplots(1, 4, figsize=(13, 3.2), dpi=90, gridspec_kw={"width_ratios": [1, 1, 1, 1.1]},
                       layout="constrained")
for a_, (f, x) in zip(ax, sped.items()):
    a_.imshow(x.float().numpy(), origin="lower", aspect="auto", cmap=MEL_CMAP, vmin=-11, vmax=2,
              extent=[0, x.shape[1] / 100, 0, 80])
    a_.set_xlim(0, max(v.shape[1] for v in sped.values()) / 100)
    a_.set_title(f"speed ×{f}: {x.shape[1]} frames\ncentroid {centroid(x):.0f} Hz", fontsize=9)
    a_.set_xlabel("time (s)")
fig.colorbar(ax[0].images[0], ax=ax[:3], pad=0.01, label="log-mel")
ax[0].set_ylabel("mel bin")
for a, x in warped.items():
    ax[3].plot(x.float().mean(1).numpy(), label=f"VTLP α = {a:.2f}")
ax[3].set_xlabel("mel bin"); ax[3].set_ylabel("mean log-mel"); ax[3].legend(fontsize=8)
ax[3].set_title("VTLP: the spectrum stretched along frequency", fontsize=9)
plt.show()

# %% [markdown]
# SpecAugment and CMN act on the *normalised* features the network reads (`pad_features` applies the corpus
# statistics stored in the trained checkpoint, then CMN where the config turns it on). The check adds a fixed
# spectral tilt $c_b$ — what a different microphone would do — and shows that with CMN the network input does not
# change at all, while without CMN it moves by $c_b / s_b$.

# %%
tok = SpeechTokenizer.from_pretrained(PRETRAINED / "speech_tokenizer", device=device)   # the trained FSQ tokenizer
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

fig, ax = plt.subplots(1, 3, figsize=(13, 3), dpi=90, layout="constrained")
for a_, x, title in [(ax[0], off, "normalised, no CMN"), (ax[1], on, "normalised + per-utterance CMN"),
                     (ax[2], masked[0], f"+ SpecAugment: {zero_bands} bands, {zero_frames} frames zeroed")]:
    im = a_.imshow(x.numpy(), origin="lower", aspect="auto", cmap=plt.get_cmap("coolwarm", 32), vmin=-3, vmax=3)
    a_.set_title(title, fontsize=9); a_.set_xlabel("frame (10 ms)")
ax[0].set_ylabel("mel bin")
fig.colorbar(im, ax=ax, pad=0.01, label="network input (normalised)")
plt.show()

# %% [markdown]
# ### A live training run (seconds): FSQ against a plain VQ
#
# The package's `train_step` with the recipe above (speed perturbation, VTLP, SpecAugment), on the 12 training clips
# of the fixtures: 150 steps of the small FSQ model of this section, and of the same model with the textbook VQ-VAE
# quantizer (EMA codebook, no dead-code restarts) and the same 81 codes. Enough to watch the loss fall, not to learn
# to read — and to watch the two quantizers part ways. At the first count (step 15) both use only one or two codes:
# a fresh encoder maps every frame to nearly the same vector. Within a hundred steps FSQ spreads over a few dozen
# codes, while the plain VQ stays on a handful to the end: a VQ code moves only when vectors are assigned to it, and
# the commitment loss pulls the encoder towards the codes already in use, so an unused code stays unused. FSQ has no
# codes to move — its grid is fixed — so whatever spread the recognition loss gives the encoder's outputs reaches the
# grid. The trained checkpoints ran the same `train_step` for thousands of steps on the full corpus (§9 reads out
# how many).

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
vq_used = runs["vq, no restarts"][1]
assert fsq_used[0][1] <= 2 and vq_used[0][1] <= 2                   # both start on one or two codes
assert max(u for st, u in fsq_used if st <= 100) >= 20               # FSQ: a few dozen within 100 steps
assert max(u for _, u in vq_used) <= 8                               # the plain VQ: a handful to the end
assert fsq_used[-1][1] > 3 * vq_used[-1][1]

fig, ax = plt.subplots(1, 2, figsize=(11, 3.2), dpi=90)
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
# ## 8 · The trained tokenizer: tokens and the recognition head, slot by slot
#
# `SpeechTokenizer.from_pretrained()` loaded the trained tiny FSQ tokenizer in §7 (fp32 safetensors + JSON, in
# `data/pretrained/tiny`). It first transcribes the fixtures' valid and test clips (clips it never trained on); we
# show a *typical* one — the train-voice clip with the median CER — in three rows on one time axis:
#
# 1. its 100 Hz log-mel;
# 2. its 25 Hz tokens, each drawn as the column of its $D = 5$ FSQ codes $\hat h_j \in \{-1, 0, 1\}$, with the ids
#    written on top (an id is only a name for such a column, and the order of the names says little: ids 4 and 5
#    differ in one code, ids 8 and 9 in three — drawing ids as heights would invent a closeness that is not there);
# 3. the recognition head's two CTC slots per token: the posterior of each symbol in each slot (only the rows of the
#    blank and of the symbols in the reference or the output), with the greedy path's non-blank symbols on top.

# %%
evals = [u for u in fixtures if u.split in ("valid", "test")]
eval_wavs = [all_wavs[u.id] for u in evals]
refs = [normalize_transcript(u.text) for u in evals]
hyps = tok.transcribe(eval_wavs)
ranked = sorted((cer(r, h), k) for k, (r, h, u) in enumerate(zip(refs, hyps, evals))
                if u.voice in TRAIN_VOICES and len(eval_wavs[k]) <= 3 * 16000)
k_typ = ranked[len(ranked) // 2][1]                                  # the median clip
shown, shown_wav = evals[k_typ], eval_wavs[k_typ]
tokens = tok.encode(shown_wav, 16000)                                # (T,) ids at 25 Hz
assert tokens.shape == (len(shown_wav) // SAMPLES_PER_TOKEN,) and torch.equal(tokens, tok.encode(shown_wav, 16000))
mel = tokenizer_features(shown_wav)                                  # (80, F) at 100 Hz
codes = tok.quantizer.indices_to_codes(tokens).T                     # (D, T): the FSQ codes of each token
n_differ = [int((tok.quantizer.indices_to_codes(torch.tensor(a)) != tok.quantizer.indices_to_codes(torch.tensor(b)))
                .sum()) for a, b in ((4, 5), (8, 9))]
assert n_differ == [1, 3]                                            # neighbouring ids, unlike codes
tok.eval()
with torch.inference_mode():
    out = tok(*tok.prepare([shown_wav], 16000))                      # the whole model, as `transcribe` runs it
log_post = out["logits"][0]                                          # (S, V) = (2T, 29) log-probabilities
best = log_post.argmax(-1)                                           # (S,) the greedy path
path = "".join(ALPHABET[i] for i in best.tolist())
assert log_post.shape == (CFG.ctc_upsample * len(tokens), len(ALPHABET))


def shown_symbol(c):
    return {"_": "_ (blank)", " ": "␣ (space)"}.get(c, c)


rows = sorted({0} | {ALPHABET.index(c) for c in refs[k_typ] + hyps[k_typ]})   # blank + the symbols in play
fig, ax = plt.subplots(3, 1, figsize=(10, 7), dpi=90, sharex=True, layout="constrained",
                       gridspec_kw={"height_ratios": [2, 1, 2.4]})
im = ax[0].imshow(mel, origin="lower", aspect="auto", cmap=MEL_CMAP, vmin=-11, vmax=2,
                  extent=[0, mel.shape[1] / 100, 0, 80])
ax[0].set_ylabel("mel bin"); ax[0].set_title(f"{shown.voice}: “{shown.text}”")
fig.colorbar(im, ax=ax[0], pad=0.01, label="log-mel")
T_sec = len(tokens) / TOKEN_RATE
im = ax[1].imshow(codes.numpy(), origin="lower", aspect="auto", cmap=plt.get_cmap("coolwarm", 3), vmin=-1.5,
                  vmax=1.5, extent=[0, T_sec, -0.5, codes.shape[0] - 0.5], interpolation="nearest")
ax[1].set_yticks(range(codes.shape[0]), [f"ĥ{j}" for j in range(codes.shape[0])])
ax[1].set_ylabel("FSQ code")
fig.colorbar(im, ax=ax[1], pad=0.01, ticks=[-1, 0, 1], label="code value")
top = ax[1].secondary_xaxis("top")
top.set_xticks((np.arange(len(tokens)) + 0.5) / TOKEN_RATE, [str(t) for t in tokens.tolist()], rotation=90,
               fontsize=8)
top.set_xlabel("token id (25 Hz)", fontsize=8)
slot_rate = CFG.ctc_upsample * TOKEN_RATE                            # 50 slots per second
im = ax[2].imshow(log_post[:, rows].exp().T.numpy(), origin="lower", aspect="auto", cmap="Greys", vmin=0, vmax=1,
                  extent=[0, len(path) / slot_rate, -0.5, len(rows) - 0.5], interpolation="nearest")
ax[2].set_yticks(range(len(rows)), [shown_symbol(ALPHABET[i]) for i in rows])
ax[2].set_ylabel("CTC symbol"); ax[2].set_xlabel("time (s)")
fig.colorbar(im, ax=ax[2], pad=0.01, label="posterior $p_s$")
emitted = [s_ for s_, c in enumerate(path) if c != "_"]
top = ax[2].secondary_xaxis("top")
top.set_xticks((np.array(emitted) + 0.5) / slot_rate, [path[s_].replace(" ", "␣") for s_ in emitted], fontsize=8)
top.tick_params(length=0)
plt.show()
display(Audio(shown_wav, rate=16000))                               # ≤ 3 s by the choice above

# %% [markdown]
# The greedy path in text, one character per 20 ms slot (`_` the blank, `␣` a space), and its collapse in the two
# steps of §7. `read_tokens` starts from the token ids alone ($\hat H = \mathrm{ProjUp}(\text{codes of the ids})$,
# then Encoder2 and the head): it must agree with `transcribe`, which runs the whole model on the audio — the tokens
# carry everything the head uses. (This is also how later notebooks judge tokens generated by the LM.)

# %%
# NBVAL_CHECK_OUTPUT
hyp = hyps[k_typ]
merged = "".join(c for i, c in enumerate(path) if i == 0 or c != path[i - 1])   # step 1: merge runs
print(f"{shown.id}: {len(shown_wav)} samples → {len(tokens)} tokens → {len(path)} CTC slots")
print("tokens:", tokens.tolist())
print("greedy path   :", path.replace(" ", "␣"))
print("runs merged   :", merged.replace(" ", "␣"))
print("blanks dropped:", merged.replace("_", ""))
print("reference     :", refs[k_typ])
print("from the ids  :", tok.read_tokens([tokens])[0])
print(f"the blank wins {path.count('_') / len(path):.0%} of the slots; "
      f"CER of this clip {cer(refs[k_typ], hyp):.2f} (the median of {len(ranked)} train-voice clips)")
assert merged.replace("_", "") == hyp == ctc_greedy_decode(out["logits"], out["logit_lengths"])[0]
assert tok.read_tokens([tokens])[0] == hyp == tok.transcribe([shown_wav])[0]   # batched = alone
assert path.count("_") > len(path) / 2                                 # most slots say "nothing new"

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
# mean much — the full evaluation in §9 uses the whole valid split), with each code's count drawn from the most to
# the least used:

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

# %%
ranked_counts = counts.sort(descending=True).values.numpy()
fig, ax = plt.subplots(figsize=(9, 2.8), dpi=90)
ax.bar(np.arange(1, tok.codebook_size + 1), ranked_counts, width=1.0, color="C0")
ax.axhline(len(bag) / tok.codebook_size, color="k", ls="--", lw=1, label="every code equally often")
ax.axvline(perplexity, color="C3", lw=1, label=f"perplexity {perplexity:.0f}: the effective number of codes")
ax.set_xlim(0, tok.codebook_size + 1); ax.set_xlabel("code, from the most to the least used")
ax.set_ylabel("tokens"); ax.legend(fontsize=8)
ax.set_title(f"code use over {len(bag)} tokens of {len(evals)} fixture clips", fontsize=9)
plt.tight_layout(); plt.show()

# %% [markdown]
# ### CER against the full evaluation
#
# The evaluation file shipped beside the checkpoint (`minicosy eval tokenizer`, file
# `data/pretrained/tiny/speech_tokenizer_eval.json`) ran the same tokenizer over the whole valid split of the full
# corpus. The fixture clips are a separate small draw of sentences by the same voices, so the live CER can only
# *agree* with it, within a margin for a few dozen short clips. The cell asserts that the two differ by less than
# three standard errors of the live figure ($3\sigma/\sqrt{n}$, with $\sigma$ the spread of the per-clip CERs over
# the $n$ clips), and that the evaluation is of the checkpoint loaded here.

# %%
report = json.loads((PRETRAINED / "speech_tokenizer_eval.json").read_text())
CHECKPOINTS = {"fsq": "data/pretrained/tiny/speech_tokenizer", "vq": "data/pretrained/tiny/vq_tokenizer"}
shipped = {name: next(r for r in report["results"].values() if r["checkpoint"] == path)
           for name, path in CHECKPOINTS.items()}                     # the evaluation of the two checkpoints here
evaluated = shipped["fsq"]
assert evaluated["trained"]["steps"] == tok.meta["trained"]["steps"], "the evaluation is of this checkpoint"
assert evaluated["codebook_size"] == tok.codebook_size
groups = {"train": TRAIN_VOICES, "held-out": HELDOUT_VOICES}
live, margin = {}, {}
for group, voices in groups.items():
    pairs = [(r, h) for r, h, u in zip(refs, hyps, evals) if u.voice in voices]
    live[group] = cer([r for r, _ in pairs], [h for _, h in pairs])            # pooled over the clips
    per_clip = [cer(r, h) for r, h in pairs]
    margin[group] = 3 * np.std(per_clip) / np.sqrt(len(pairs))               # three standard errors

# %%
# NBVAL_CHECK_OUTPUT
print(f"evaluation: split {report['split']} of the full corpus, {evaluated['n_utterances']} utterances")
for group, key in (("train", "cer_train_voices"), ("held-out", "cer_heldout_voices")):
    n = sum(u.voice in groups[group] for u in evals)
    print(f"CER on {group:8s} voices: live on {n:2d} fixture clips {live[group]:.0%} (± {margin[group]:.0%}), "
          f"full evaluation {evaluated[key]:.0%}")
    assert abs(live[group] - evaluated[key]) < margin[group]
assert evaluated["cer_train_voices"] < evaluated["cer_heldout_voices"]   # unheard voices are harder


# %% [markdown]
# ## 9 · FSQ vs VQ
#
# CosyVoice 2 replaced CosyVoice 1's vector quantizer by FSQ and reports (paper §4) that FSQ uses its whole codebook
# where the VQ used under a quarter of its codes. minicosy trained both with the same encoder, the same 243 codes,
# the same corpus (version 2, sixteen train voices), the same recipe (§7) and the same 85 minutes of training, and
# evaluated both on corpus v2's valid split (`results/speech_tokenizer_eval_v2_valid.json`). The FSQ of that pair is
# the starting point of the tokenizer loaded here (see the v3 subsection below); the VQ is
# `data/pretrained/tiny/vq_tokenizer`:
#
# * **fsq** — the paper's quantizer ($D = 5$, $K = 1$ in the tiny preset);
# * **vq** — a VQ with an exponential-moving-average codebook and *dead-code restarts* (a code that stops being
#   used is moved onto a live encoder vector). Without restarts a VQ stays on a handful of codes (§7's live run),
#   which would make the comparison meaningless.
#
# The evaluation holds four kinds of figures, all on that valid split:
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
v2_report = json.loads((RESULTS / "speech_tokenizer_eval_v2_valid.json").read_text())
pair = {name: v2_report["results"][name] for name in ("fsq", "vq")}  # the two quantizers on corpus v2
print(f"{'tokenizer':9s} {'used':>8s} {'util.':>6s} {'perpl.':>6s} {'CER train':>9s} {'CER held':>8s} "
      f"{'probe tok':>9s} {'probe mel':>9s} {'chance':>6s} {'steps':>6s} {'min':>5s}")
for name, r in pair.items():
    sp, tr = r["speaker_probe"], r["trained"]
    print(f"{name:9s} {r['codes_used']:4d}/{r['codebook_size']:<3d} {r['utilisation']:6.0%} "
          f"{r['perplexity']:6.0f} {r['cer_train_voices']:9.0%} {r['cer_heldout_voices']:8.0%} "
          f"{sp['tokens']:9.0%} {sp['mel']:9.0%} {sp['chance']:6.0%} {tr['steps']:6d} {tr['minutes']:5.0f}")
print("held-out voices of the evaluation:", ", ".join(pair["fsq"]["heldout_voices"]))
vq_trained = json.loads((PRETRAINED / "vq_tokenizer.json").read_text())["trained"]
fsq_trained = tok.meta["trained"]          # the loaded FSQ: trained from the pair's FSQ with the same recipe
assert fsq_trained["init"]["steps"] == pair["fsq"]["trained"]["steps"]                       # it started from it
assert {split_voice_id(v)[0] for v in vq_trained["train_voices"]} == set(V2_TRAIN_VOICES)    # corpus v2's voices
assert pair["fsq"]["trained"]["train_utterances"] == pair["vq"]["trained"]["train_utterances"]  # the same data
recipe = {name: {k: t["train_config"][k] for k in ("speed_perturb", "vtlp", "spec_augment")}
          for name, t in (("fsq", fsq_trained), ("vq", vq_trained))}
assert recipe["fsq"] == recipe["vq"]                                                   # ... and the same recipe

# %%
names = list(pair)
colour = {"fsq": "C0", "vq": "C3"}
cols = [colour[n] for n in names]
fig, ax = plt.subplots(1, 3, figsize=(12, 3.4), dpi=90)
ax[0].bar(names, [100 * pair[n]["utilisation"] for n in names], color=cols)
ax[0].set_ylim(0, 105); ax[0].set_ylabel("% of the codebook used"); ax[0].set_xlabel("tokenizer")
ax[0].set_title("codebook utilisation", fontsize=9)
x = np.arange(len(names))
ax[1].bar(x - 0.2, [100 * pair[n]["cer_train_voices"] for n in names], 0.4, color=cols, label="train voices")
ax[1].bar(x + 0.2, [100 * pair[n]["cer_heldout_voices"] for n in names], 0.4, color=cols, alpha=0.5,
          label="held-out voices")
ax[1].set_xticks(x, names); ax[1].set_xlabel("tokenizer"); ax[1].set_ylabel("CER (%)")
ax[1].set_title("CER: train voices (solid) / held-out (pale)", fontsize=9)
ax[2].bar(names, [100 * pair[n]["speaker_probe"]["tokens"] for n in names], color=cols)
ax[2].axhline(100 * pair["fsq"]["speaker_probe"]["mel"], color="C2", lw=1.5, label="probe on the log-mel")
ax[2].axhline(100 * pair["fsq"]["speaker_probe"]["chance"], color="k", ls="--", lw=1, label="chance")
ax[2].set_xlabel("tokenizer"); ax[2].set_ylabel("speaker-ID accuracy (%)")
ax[2].set_title("speaker probe on token embeddings", fontsize=9); ax[2].legend(fontsize=8)
plt.tight_layout(); plt.show()

# %% [markdown]
# **What the figures show** at this scale (one tiny run per quantizer, both evaluated on the same valid split; the
# next cell prints each comparison and asserts every statement made here).
#
# * **Codebook use.** Both tokenizers use nearly all their codes, and the VQ spreads its tokens more evenly (a higher
#   perplexity). The paper's gap (FSQ 100% vs VQ 23%, paper §4) is a gap between FSQ and a VQ that lets codes die:
#   §7's live run shows a plain VQ stuck on a handful of codes, and a plain VQ-VAE quantizer (no restarts) of the
#   same size, trained for as long on the full corpus (there on corpus version 1, eight train voices), used 2 of its
#   243 codes (`results/speech_tokenizer_eval_v1.json`). FSQ gets its codebook use with no codebook, no auxiliary
#   loss and no restarts.
# * **CER.** The two are level on the train voices (within one point) and FSQ is lower on the held-out ones. One run
#   each cannot tell the quantizers apart from the spread between runs. In the same 85 minutes the VQ made fewer
#   steps: its nearest-code search and codebook updates make each step slower.
# * **Speaker.** A linear probe names the voice from the mean log-mel almost every time, from FSQ's token embeddings
#   far less often, and from the VQ's more often than from FSQ's: FSQ's coarse grid keeps less of the speaker, which
#   is what the LM and the flow model want from the tokens (the flow gets the voice from its own speaker embedding).

# %%
# NBVAL_CHECK_OUTPUT
plain = json.loads((RESULTS / "speech_tokenizer_eval_v1.json").read_text())["results"]["vq-plain"]
fsq_r, vq_r = pair["fsq"], pair["vq"]
print(f"utilisation fsq {fsq_r['utilisation']:.0%}, vq {vq_r['utilisation']:.0%}; perplexity fsq "
      f"{fsq_r['perplexity']:.0f}, vq {vq_r['perplexity']:.0f}; plain VQ: {plain['codes_used']} of "
      f"{plain['codebook_size']} codes ({plain['utilisation']:.1%})")
print(f"CER train voices fsq {fsq_r['cer_train_voices']:.1%}, vq {vq_r['cer_train_voices']:.1%}; held-out voices "
      f"fsq {fsq_r['cer_heldout_voices']:.1%}, vq {vq_r['cer_heldout_voices']:.1%}")
print(f"training: fsq {fsq_r['trained']['steps']} steps in {fsq_r['trained']['minutes']:.0f} min, "
      f"vq {vq_r['trained']['steps']} steps in {vq_r['trained']['minutes']:.0f} min")
print(f"speaker probe: log-mel {fsq_r['speaker_probe']['mel']:.0%}, vq tokens {vq_r['speaker_probe']['tokens']:.0%}, "
      f"fsq tokens {fsq_r['speaker_probe']['tokens']:.0%} (chance {fsq_r['speaker_probe']['chance']:.0%})")
assert min(fsq_r["utilisation"], vq_r["utilisation"]) >= 0.9 and vq_r["perplexity"] > fsq_r["perplexity"]
assert plain["codes_used"] == 2 and plain["codebook_size"] == tok.codebook_size        # the collapse
assert abs(fsq_r["cer_train_voices"] - vq_r["cer_train_voices"]) < 0.01                # level on train voices
assert fsq_r["cer_heldout_voices"] < vq_r["cer_heldout_voices"]                        # FSQ lower held out
assert fsq_r["trained"]["minutes"] == vq_r["trained"]["minutes"] == 85
assert vq_r["trained"]["steps"] < fsq_r["trained"]["steps"]
mel_probe = fsq_r["speaker_probe"]["mel"]
assert fsq_r["speaker_probe"]["tokens"] < vq_r["speaker_probe"]["tokens"] < mel_probe and mel_probe > 0.9

# %% [markdown]
# ### A wider corpus: from the v2 tokenizer to the one loaded here
#
# The FSQ of §9 learned its characters from corpus v2, whose sentences come from a template grammar of under two
# thousand words. Corpus v3 (notebook 00) reads tens of thousands of distinct sentences with a real lexicon, in
# thirty base voices, plus the hand-written **natural** sentences. A CTC head spells characters, so a vocabulary it
# never heard costs it dearly. The tokenizer loaded in this notebook (`fsq_v3` below) is the same
# architecture and size, started from that checkpoint's weights and trained for an hour on v3 (one CPU thread). Both
# are evaluated on v3's test split and on the natural split (every voice reads every natural sentence):

# %%
# NBVAL_CHECK_OUTPUT
v3_eval = {split: json.loads((RESULTS / f"speech_tokenizer_eval_v3_{split}.json").read_text())["results"]
           for split in ("test", "natural")}
print(f"{'split':8s} {'tokenizer':9s} {'utts':>5s} {'CER train':>9s} {'CER held':>8s} {'probe tok':>9s} {'chance':>6s}")
for split, res in v3_eval.items():
    for name in ("fsq_v2", "fsq_v3"):
        r = res[name]
        print(f"{split:8s} {name:9s} {r['n_utterances']:5d} {r['cer_train_voices']:9.1%} "
              f"{r['cer_heldout_voices']:8.1%} {r['speaker_probe']['tokens']:9.1%} {r['speaker_probe']['chance']:6.1%}")
v3_meta = tok.meta                                                     # the loaded tokenizer's JSON
print("v3 started from:", v3_meta["trained"]["init"]["from"], "| minutes on v3:", v3_meta["trained"]["minutes"])
cut = {(split, group): 1 - res["fsq_v3"][f"cer_{group}_voices"] / res["fsq_v2"][f"cer_{group}_voices"]
       for split, res in v3_eval.items() for group in ("train", "heldout")}
print("relative CER reduction v2 → v3:", ", ".join(f"{s} {g} {c:.0%}" for (s, g), c in cut.items()))
assert all(cut[s, "train"] > 0.35 for s in v3_eval) and all(0.15 < cut[s, "heldout"] < 0.35 for s in v3_eval)
assert v3_eval["natural"]["fsq_v2"]["cer_train_voices"] < v3_eval["test"]["fsq_v2"]["cer_train_voices"]
assert all(abs(v3_eval["natural"]["fsq_v3"][k] - v3_eval["test"]["fsq_v3"][k]) < 0.02
           for k in ("cer_train_voices", "cer_heldout_voices"))
for res in v3_eval.values():
    assert res["fsq_v3"]["cer_train_voices"] < res["fsq_v2"]["cer_train_voices"] - 0.1      # train voices: far fewer
    assert res["fsq_v3"]["cer_heldout_voices"] < res["fsq_v2"]["cer_heldout_voices"] - 0.05  # held out: fewer
    assert res["fsq_v3"]["speaker_probe"]["tokens"] < res["fsq_v2"]["speaker_probe"]["tokens"]  # less speaker

# %%
fig, ax = plt.subplots(1, 2, figsize=(10, 3.2), dpi=90, sharey=True)
for a, (split, res) in zip(ax, v3_eval.items()):
    x = np.arange(2)
    for k, (name, c) in enumerate((("fsq_v2", "C7"), ("fsq_v3", "C0"))):
        a.bar(x + (k - 0.5) * 0.38, [100 * res[name]["cer_train_voices"], 100 * res[name]["cer_heldout_voices"]],
              0.38, color=c, label=name)
    a.set_xticks(x, ["train voices", "held-out voices"]); a.set_title(f"corpus v3, {split} split", fontsize=9)
ax[0].set_ylabel("CER of the tokenizer's own head (%)"); ax[0].legend(fontsize=8)
plt.tight_layout(); plt.show()

# %% [markdown]
# On both splits the hour on v3 cuts the error on the voices it trained on by about two fifths or more and on voices
# it never heard by a fifth to a third (the relative reductions are printed above), and its tokens carry less of the
# speaker (a lower probe accuracy), as a tokenizer for an LM should. The v2 tokenizer reads the natural sentences
# better than the test split's — they use common words, which even a small grammar contains — while the v3 one reads
# the two splits alike: what the head had lacked was vocabulary. Even so about a quarter of the characters are still
# misread on train voices and a third on unheard ones; that is the floor every later token CER stands on.

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
# `festival_slt_hts` / `rhvoice_slt`, is the same recorded person in two engines — notebook 00, §8 — and, as the
# check below shows, the most alike.) First one pair by hand, two train voices from two engines: `difflib` finds the matching blocks, and their
# share must be the package's `sequence_match`.

# %%
voice_ids = [v.id for v in VOICES]
test_clip = {u.voice: u for u in fixtures if u.split == "test"}
valid_clip = {u.voice: u for u in fixtures if u.split == "valid"}
test_tokens = dict(zip(voice_ids, tok.encode_batch([all_wavs[test_clip[v].id] for v in voice_ids], 16000)))
a_id, b_id = "festival_kal", "rhvoice_bdl"                           # two train voices: two engines, two people
assert test_clip[a_id].text == test_clip[b_id].text
a, b = test_tokens[a_id].tolist(), test_tokens[b_id].tolist()
blocks = difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()
M = sum(bl.size for bl in blocks)
assert abs(2 * M / (len(a) + len(b)) - sequence_match(a, b)) < 1e-12   # by hand = the package

fig, ax = plt.subplots(2, 1, figsize=(10, 3.8), dpi=90, sharex=True, layout="constrained")
for a_, seq, vid, side in [(ax[0], a, a_id, "a"), (ax[1], b, b_id, "b")]:
    c = tok.quantizer.indices_to_codes(torch.tensor(seq)).T.numpy()          # (D, T): one column per token
    im = a_.imshow(c, origin="lower", aspect="auto", cmap=plt.get_cmap("coolwarm", 3), vmin=-1.5, vmax=1.5,
                   extent=[0, len(seq) / TOKEN_RATE, -0.5, c.shape[0] - 0.5], interpolation="nearest")
    for bl in blocks:
        start = bl.a if side == "a" else bl.b
        if bl.size:
            a_.add_patch(plt.Rectangle((start / TOKEN_RATE, -0.5), bl.size / TOKEN_RATE, c.shape[0], fill=False,
                                       ec="lime", lw=2))
    a_.set_yticks(range(c.shape[0]), [f"ĥ{j}" for j in range(c.shape[0])]); a_.set_ylabel("FSQ code")
    a_.set_title(f"{vid}: “{test_clip[vid].text}”", fontsize=9)
fig.colorbar(im, ax=ax, pad=0.01, ticks=[-1, 0, 1], label="code value")
ax[1].set_xlabel("time (s); green boxes: runs of tokens the two readings share")
plt.show()
for vid in (a_id, b_id):
    display(Audio(all_wavs[test_clip[vid].id][: 3 * 16000], rate=16000))
print(f"{M} matching tokens of {len(a)} + {len(b)}: sequence_match = {sequence_match(a, b):.2f}")

# %% [markdown]
# Now every pair of the fixtures. The check asserts the ordering on average: same sentence by two voices above two
# sentences by one voice, raw and collapsed.

# %%
same_pairs = [(voice_ids[i], voice_ids[i + 10]) for i in range(10)]
assert all(test_clip[v].text == test_clip[w].text for v, w in same_pairs)
ten_voices = voice_ids[:10]                                           # the voices with a valid clip too
other_tokens = dict(zip(ten_voices, tok.encode_batch([all_wavs[valid_clip[v].id] for v in ten_voices], 16000)))
assert all(test_clip[v].text != valid_clip[v].text for v in ten_voices)
agree, most_alike = {}, {}
for collapse in (False, True):
    same = [sequence_match(test_tokens[v], test_tokens[w], collapse) for v, w in same_pairs]
    diff = [sequence_match(test_tokens[v], other_tokens[v], collapse) for v in ten_voices]
    kind = "collapsed" if collapse else "raw"
    agree[kind], most_alike[kind] = (float(np.mean(same)), float(np.mean(diff))), same_pairs[int(np.argmax(same))]
sim = np.array([[sequence_match(test_tokens[v], test_tokens[w]) for w in voice_ids] for v in voice_ids])

# %%
# NBVAL_CHECK_OUTPUT
for kind, (s, d) in agree.items():
    print(f"{kind:9s}: same sentence, two voices {s:.2f} ({len(same_pairs)} pairs) vs "
          f"two sentences, one voice {d:.2f} ({len(ten_voices)} pairs): margin {s - d:+.2f}; "
          f"most alike: {' / '.join(most_alike[kind])}")
    assert s > d and most_alike[kind] == ("festival_slt_hts", "rhvoice_slt")   # one person, two engines

# %%
off_diag = sim.copy()
np.fill_diagonal(off_diag, np.nan)                                   # a clip against itself: 1, left blank
fig, ax = plt.subplots(figsize=(7.5, 6.5), dpi=90)
im = ax.imshow(off_diag, cmap="viridis", vmin=0, vmax=float(np.nanmax(off_diag)))
for v, w in same_pairs:                                              # outline the same-sentence pairs
    i, j = voice_ids.index(v), voice_ids.index(w)
    for r, c in ((i, j), (j, i)):
        ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, ec="w", lw=1.2))
ax.set_xticks(range(20), [v + (" *" if v in HELDOUT_VOICES else "") for v in voice_ids], rotation=70,
              ha="right", fontsize=8)
ax.set_yticks(range(20), [v + (" *" if v in HELDOUT_VOICES else "") for v in voice_ids], fontsize=8)
ax.set_xlabel("test clip of voice"); ax.set_ylabel("test clip of voice")
ax.set_title("sequence_match of the 20 fixture test clips\n(outlined: the same sentence by two voices; * held out)",
             fontsize=9)
plt.colorbar(im, fraction=0.046, label="sequence_match (raw tokens)"); plt.tight_layout(); plt.show()

# %% [markdown]
# The evaluation of §9 (corpus v2's valid split) measures the same thing over the full corpus, for the **held-out** voices only
# (every valid sentence there is read by two voices): the pairs that matter for zero-shot synthesis. Both margins
# are positive — a held-out voice's tokens agree more with another voice reading the same sentence than with another
# sentence — and the VQ's margin is the larger one: on this measure its tokens agree across voices better, although
# its embeddings carry more of the speaker (§9).

# %%
# NBVAL_CHECK_OUTPUT
margins = {}
for name, r in pair.items():
    cva = r["cross_voice_agreement"]
    s_, d, m = cva["same_sentence"], cva["different_sentence"], cva["margin"]
    margins[name] = m
    print(f"{name}: same sentence {s_['raw']:.2f} / {s_['collapsed']:.2f} ({s_['pairs']} pairs) vs "
          f"different {d['raw']:.2f} / {d['collapsed']:.2f} ({d['pairs']} pairs): "
          f"margin {m['raw']:+.2f} / {m['collapsed']:+.2f} (raw / collapsed)")
assert all(m[k] > 0 for m in margins.values() for k in ("raw", "collapsed"))
assert all(margins["vq"][k] > margins["fsq"][k] for k in ("raw", "collapsed"))

# %% [markdown]
# ## 11 · Exercises
#
# 1. **Eq. 2 by hand.** With $K = 2$, $D = 3$, what is the token index of the codes $(2, -2, 1)$? Set `answer_1`.
# 2. **The inverse.** Write `my_indices_to_codes(mu, D, K)` returning the list of $D$ codes of an index, without
#    package calls. The check runs it over a whole codebook.
# 3. **The length rule.** How many tokens does a clip of 3.7 s at 16 kHz give? Set `answer_3`.
# 4. **Eq. 2 as printed.** With $K = 1$, $D = 5$ (the tiny preset), the unshifted sum $\sum_j \hat h_j 3^j$ of which
#    code is the most negative, and what is that number? Set `answer_4 = (codes, number)`.
# 5. **Perplexity.** A tokenizer emits the ten tokens `[4, 4, 4, 4, 9, 9, 9, 9, 17, 17]`. What are its
#    utilisation (243 codes) and perplexity? Set `answer_5 = (utilisation, perplexity)`; two decimals are enough.
# 6. **Greedy CTC decoding.** Write `my_greedy_decode(log_post)`: from the head's log-probabilities of one clip,
#    a tensor `(S, V)` over `ALPHABET` (index 0 the blank), return the transcript — the best symbol of each slot,
#    then the collapse $\mathcal B$ of §7, then the characters. No package calls. The check compares it with
#    `ctc_greedy_decode` on the clip of §8, on random posteriors full of repeats and blanks, and on a few paths
#    where the order of the two steps of $\mathcal B$ matters.
#
# Each check prints *not attempted* until you fill in its answer. The collapsed cell after them holds the solutions;
# it also shows that the check of exercise 6 rejects the two steps of $\mathcal B$ taken in the wrong order.

# %%
def check(name, ok):
    print(f"{name}: {'not attempted' if ok is None else ('correct' if ok else 'not yet — try again')}")


q23 = FSQ(4, num_dims=3, K=2)
q5 = FSQ(4, num_dims=5, K=1)
u5 = codebook_usage(torch.tensor([4, 4, 4, 4, 9, 9, 9, 9, 17, 17]), 243)
gen6 = torch.Generator().manual_seed(6)
random_posts = []
for _ in range(30):                                   # mostly blank, a and b: repeats and blanks everywhere
    logits = torch.randn(24, len(ALPHABET), generator=gen6) - 8
    logits[:, [0, 3, 4]] += 8 + 2 * torch.randn(24, 3, generator=gen6)
    random_posts.append(logits.log_softmax(-1))
hand_paths = ["a_a", "aa__a", "_", "__ab_ba__", "hh_e_ll_lo_", "b__bb_b"]
posts6 = [log_post] + random_posts + [one_hot_path(t)[0].log_softmax(-1) for t in hand_paths]


def ex1_ok(a):
    return a == q23.codes_to_indices(torch.tensor([[2., -2., 1.]])).item()


def ex2_ok(fn):
    return all(list(fn(i, 3, 2)) == q23.indices_to_codes(torch.tensor(i)).long().tolist()
               for i in range(q23.codebook_size))


def ex3_ok(a):
    return a == int(3.7 * 16000) // SAMPLES_PER_TOKEN


def ex4_ok(a):
    lowest = q5.indices_to_codes(torch.tensor(0))                # index 0 = every digit 0 = every code -K
    return list(a[0]) == lowest.long().tolist() and a[1] == -(q5.codebook_size - 1) // 2


def ex5_ok(a):
    return abs(a[0] - u5["utilisation"]) < 0.005 and abs(a[1] - u5["perplexity"]) < 0.005


def ex6_ok(fn):
    return all(fn(lp) == ctc_greedy_decode(lp[None], torch.tensor([len(lp)]))[0] for lp in posts6)


# %%
# NBVAL_CHECK_OUTPUT
# Exercises 1, 3, 4, 5: replace None with your answers
answer_1 = None          # the index of codes (2, -2, 1) with K = 2, D = 3
answer_3 = None          # tokens for 3.7 s at 16 kHz
answer_4 = None          # (codes, number): the most negative unshifted index for K = 1, D = 5
answer_5 = None          # (utilisation, perplexity) of [4, 4, 4, 4, 9, 9, 9, 9, 17, 17] with 243 codes
for n, a, ok in [(1, answer_1, ex1_ok), (3, answer_3, ex3_ok), (4, answer_4, ex4_ok), (5, answer_5, ex5_ok)]:
    check(f"exercise {n}", None if a is None else ok(a))


# %%
# NBVAL_CHECK_OUTPUT
# Exercise 2: write the body of my_indices_to_codes
def my_indices_to_codes(mu, D, K):
    return None          # your code here: a list of D integers in [-K, K]


check("exercise 2", None if my_indices_to_codes(0, 3, 2) is None else ex2_ok(my_indices_to_codes))


# %%
# NBVAL_CHECK_OUTPUT
# Exercise 6: write the body of my_greedy_decode
def my_greedy_decode(log_post):
    return None          # your code here: a string over ALPHABET's characters, no blanks


check("exercise 6", None if my_greedy_decode(log_post) is None else ex6_ok(my_greedy_decode))


# %% jupyter={"source_hidden": true}
# NBVAL_CHECK_OUTPUT
# Solutions — try the exercises first.
# 1: digits ĥ + K = (4, 0, 3) in base 5: 4 + 0·5 + 3·25 = 79.
sol1 = 79


# 2: peel the base-(2K+1) digits off with divmod, least significant first, and shift them back by -K.
def sol_indices_to_codes(mu, D, K):
    codes = []
    for _ in range(D):
        mu, digit = divmod(mu, 2 * K + 1)
        codes.append(digit - K)
    return codes


# 3: 3.7 s × 16000 = 59200 samples; 59200 // 640 = 92 tokens (the last 320 samples make no token).
sol3 = 92
# 4: every code at -1: -(1 + 3 + 9 + 27 + 81) = -121, i.e. -(3^5 - 1) / 2.
sol4 = ((-1, -1, -1, -1, -1), -121)
# 5: 3 codes of 243 are used; shares 0.4, 0.4, 0.2, so perplexity = exp(-2·0.4·ln 0.4 - 0.2·ln 0.2) ≈ 2.87.
sol5 = (3 / 243, float(np.exp(-(2 * 0.4 * np.log(0.4) + 0.2 * np.log(0.2)))))


# 6: argmax per slot; merge runs of the same symbol; then drop the blanks (index 0).
def sol_greedy_decode(log_post):
    best = log_post.argmax(-1).tolist()
    merged = [c for i, c in enumerate(best) if i == 0 or c != best[i - 1]]
    return "".join(ALPHABET[c] for c in merged if c != 0)


def wrong_order_decode(log_post):                     # drops the blanks first: "a_a" would read "a"
    best = [c for c in log_post.argmax(-1).tolist() if c != 0]
    return "".join(ALPHABET[c] for i, c in enumerate(best) if i == 0 or c != best[i - 1])


results = [ex1_ok(sol1), ex2_ok(sol_indices_to_codes), ex3_ok(sol3), ex4_ok(sol4), ex5_ok(sol5),
           ex6_ok(sol_greedy_decode)]
for n, ok in enumerate(results, 1):
    check(f"solution {n}", ok)
print("exercise 6 rejects the two steps in the wrong order:", not ex6_ok(wrong_order_decode))
assert all(results) and not ex6_ok(wrong_order_decode)

# %% [markdown]
# ## Summary
#
# * FSQ bounds each of $D$ coordinates with $K\tanh$ and rounds it: the codebook is the fixed grid
#   $\{-K, \dots, K\}^D$ of $(2K+1)^D$ codes — nothing to learn, so no code falls out of use through the quantizer.
# * The straight-through estimator passes the gradient through the rounding, so a loss that reads only $\hat H$
#   still trains ProjDown and Encoder1 (Eq. 1).
# * Eq. 2 writes a code as a base-$(2K+1)$ number; the $+K$ shift (in the released tokenizer, not in the printed
#   equation) makes the ids run from 0 to $(2K+1)^D - 1$.
# * The tokenizer turns 16 kHz audio into 100 Hz log-mels and, through two stride-2 convolutions, 25 Hz tokens:
#   $n$ samples give $\lfloor n/640 \rfloor$ tokens.
# * It is trained by speech recognition alone: in the paper inside SenseVoice-Large, here as a small encoder trained
#   from scratch with a CTC head. CTC sums over every path that collapses (merge repeats, drop blanks) to the
#   transcript; two slots per token leave room for fast speech; greedy decoding reads the best path.
# * On the trained tiny tokenizers, FSQ and a VQ with dead-code restarts both use nearly all 243 codes (a plain VQ
#   stays on a handful), FSQ's tokens keep less of the speaker, and the same sentence read by two voices gives token
#   sequences that agree more than two sentences read by one voice.

# %% [markdown]
# **Next:** notebook 02 · LM sequences — the text-speech language model that learns to predict these 25 Hz tokens
# from text.
