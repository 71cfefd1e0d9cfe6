# %% [markdown]
# # 04 · Chunk masks and lossless streaming in the flow
#
# **What you build here:** the part of CosyVoice 2 that lets *one* flow-matching model synthesise both offline and
# while the LM is still talking.
#
# 1. **The four attention masks** the paper trains with — non-causal, full-causal, chunk-$M$, chunk-$2M$ — drawn,
#    checked property by property, combined with key padding, drawn per utterance by the trainer, and explored with
#    sliders.
# 2. **The lookahead convolution** — the only place the model looks right of its chunk: its receptive field,
#    measured with gradients and with token impulses through the whole encoder.
# 3. **Latency arithmetic** — how many 25 Hz tokens the flow must have before it can emit its first 50 Hz mel
#    frames, for the tiny preset ($M = 15$), a short first chunk, and the official chunk ($M = 25$); and what the
#    voice prompt's block costs.
# 4. **Streaming equals offline** — first a 20-line toy (chunk-masked attention with a key/value cache) and the two
#    mistakes that break it; then the flow's cached chunk-by-chunk synthesis (`FlowStream`, `mode="cached"`) and the
#    official re-run-the-prefix baseline (`mode="recompute"`), which reproduce the offline chunk-masked mel to float
#    rounding, with and without a prompt computed once per voice.
# 5. **Cost** — the work per chunk, counted by hooks on the package's modules: flat for the cache, growing for the
#    re-run.
# 6. Four checked **exercises**, the last one an implementation of `attention_mask`.
#
# **Paper:** CosyVoice 2 (Du et al., arXiv 2412.10117) §2.4 (chunk-aware causal flow matching: the lookahead
# convolution, the four masks and why one model is trained on all of them) and §2.5 (latency of the streaming mode).
# Where minicosy departs from the paper or the official code: `docs/paper_vs_code.md` §2 "Flow matching" and
# "Streaming runtime".
#
# **Code:** `minicosy/flow/masks.py` (every mask), `minicosy/flow/model.py` (`LookaheadLayer`, `TokenEncoder`,
# `Estimator`, `ChunkAwareFlow`), `minicosy/flow/streaming.py` (`FlowStream`), `minicosy/flow/train.py`
# (`make_inputs` draws the masks).
#
# **Prerequisites:** notebook 00 (25 Hz tokens, 50 Hz mel, two frames per token). The flow itself (the ODE, guidance,
# training) is notebook 03's subject; here it is used as a black box whose *dependencies* we study.
#
# **Runtime:** about 20 s on 2 CPU cores (default, tiny preset; a GPU changes nothing, every check runs on the CPU);
# nothing is trained and nothing is downloaded. The model here has **random weights** on purpose — section 4 says why
# that is enough.

# %%
# NBVAL_IGNORE_OUTPUT
import json
import os
from collections import Counter
from dataclasses import replace

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch

from minicosy import ChunkAwareFlow, FlowConfig, attention_mask, pick_device, seed_everything
from minicosy.flow.masks import block_ends, chunk_spans, upsample_mask, with_padding
from minicosy.flow.matching import N_STEPS
from minicosy.flow.train import FlowTrainConfig, make_inputs
from minicosy.nn import Attention
from minicosy.speech_tokenizer.model import SpeechTokenizerConfig
from minicosy.utils import DEFAULT_CHECKPOINT, slider_player

PRESET = os.environ.get("MINICOSY_PRESET", "tiny")  # "paper": the published widths (slow on a CPU; checked outputs are tiny's)
VOCAB = SpeechTokenizerConfig.tiny().codebook_size  # 3^5 = 243 FSQ codes, the tiny speech tokenizer's
seed_everything(0)
torch.set_num_threads(1)  # small models: one thread is fastest, and robust on a shared CPU
plt.rcParams["figure.dpi"] = 90
plt.rcParams["image.interpolation"] = "nearest"
MEL_CMAP = plt.get_cmap("magma", 32)
MASK_CMAP = plt.get_cmap("Blues", 2)  # two colours: hidden (0), may attend (1)


def mask_colorbar(fig, im, ax, labels=("hidden", "may attend")):
    cb = fig.colorbar(im, ax=ax, ticks=[0.25, 0.75], fraction=0.03, pad=0.02)
    cb.ax.set_yticklabels(labels)
    return cb


device = torch.device("cpu")  # pinned: every check below is a CPU computation
cfg = FlowConfig.tiny(vocab_size=VOCAB) if PRESET == "tiny" else FlowConfig.paper()
model = ChunkAwareFlow(cfg).to(device).eval()  # random weights (seeded): see section 4
M, P, UP = cfg.chunk_tokens, cfg.lookahead, cfg.up
print(f"device: {device} (pinned; pick_device() would choose {pick_device()}) | preset: {PRESET} | "
      f"flow: {model.num_parameters() / 1e6:.2f} M parameters, chunk M = {M} tokens, lookahead P = {P} tokens")

# %% [markdown]
# ## 1 · The four masks
#
# Attention lets every position look at every other one. A streaming flow must not: a mel frame computed now must
# not depend on tokens the LM has not produced yet. CosyVoice 2 (§2.4) therefore trains its flow with four attention
# masks. Write $\text{mask}[i, j] = 1$ when query $i$ may attend key $j$. All four are one rule — *row $i$ sees every
# key up to the end of its own block* — with a different block size $C$:
#
# $$\text{mask}[i, j] = \big[\, j < \text{end}(i) \,\big], \qquad
# \text{end}(i) = \min\!\Big(T,\; C\,\big(\lfloor i / C \rfloor + 1\big)\Big)$$
#
# | mask | block $C$ | a query sees | use |
# |---|---|---|---|
# | non-causal | $C \ge T$ | everything | offline, the best quality |
# | full-causal | $C = 1$ | its past and itself | lowest latency, least context |
# | chunk-$M$ | $C = M$ | its past and the rest of its chunk | streaming with chunks of $M$ tokens |
# | chunk-$2M$ | $C = 2M$ | the same with twice the chunk | more context, twice the wait |
#
# `minicosy.attention_mask(kind, T, chunk_size)` builds them (`"chunk"` with `chunk_size` $M$ or $2M$). Drawn for
# $T = 12$ positions and $M = 3$ (dark = may attend):

# %%
T_DEMO, M_DEMO = 12, 3
kinds = {"non-causal": ("non_causal", None), "full-causal": ("full_causal", None),
         f"chunk-M (M = {M_DEMO})": ("chunk", M_DEMO), f"chunk-2M (2M = {2 * M_DEMO})": ("chunk", 2 * M_DEMO)}
masks = {name: attention_mask(kind, T_DEMO, C) for name, (kind, C) in kinds.items()}  # (T, T) bool each
fig, axes = plt.subplots(1, 4, figsize=(12.5, 3.4), layout="constrained")
for ax, (name, m) in zip(axes, masks.items()):
    im = ax.imshow(m.numpy(), cmap=MASK_CMAP, vmin=0, vmax=1)
    ax.set(title=name, xlabel="key j", xticks=range(0, T_DEMO, 3), yticks=range(0, T_DEMO, 3))
axes[0].set_ylabel("query i")
mask_colorbar(fig, im, axes)
plt.show()

# %% [markdown]
# **What each sees.** For every query: how many keys it may read, and how many of them lie to its *right* (the
# future). A position with $f$ future keys can only be computed once those $f$ positions exist — that is the latency
# a mask costs. Chunk-$M$ lets a position peek at most $M - 1$ positions ahead, and only inside its own chunk.

# %%
# NBVAL_CHECK_OUTPUT
for name, (kind, C) in kinds.items():
    seen = masks[name].sum(1)  # keys each query may read
    future = seen - 1 - torch.arange(T_DEMO)  # … of which to the right of the query
    print(f"{name:20s} keys seen {seen.tolist()} | future keys: max {int(future.max()):2d}, "
          f"mean {future.float().mean():.1f}")
    assert torch.equal(seen, block_ends(kind, T_DEMO, C))  # row i sees keys j < end(i)

# %% [markdown]
# **Properties, checked.** The rule implies a few facts worth asserting, over every $T \le 30$ and every chunk size up
# to $2T + 1$:
#
# * full-causal is the lower triangle, and chunk-1 *is* full-causal;
# * a chunk at least as long as the sequence is non-causal;
# * every query sees itself (so no softmax row is ever empty);
# * the masks nest: full-causal $\subseteq$ chunk-$M$ $\subseteq$ chunk-$2M$ $\subseteq$ non-causal — every boundary
#   of the $2M$ grid is a boundary of the $M$ grid, so a longer chunk only adds keys.

# %%
n_checked = 0
for T in range(1, 31):
    nc, fc = attention_mask("non_causal", T), attention_mask("full_causal", T)
    assert torch.equal(fc, torch.ones(T, T, dtype=torch.bool).tril())  # full-causal = lower triangle
    assert torch.equal(attention_mask("chunk", T, 1), fc)  # chunk-1 = full-causal
    for C in range(1, 2 * T + 2):
        m, m2 = attention_mask("chunk", T, C), attention_mask("chunk", T, 2 * C)
        assert m.diagonal().all()  # every query sees itself
        assert (fc <= m).all() and (m <= m2).all() and (m2 <= nc).all()  # full ⊆ chunk-M ⊆ chunk-2M ⊆ non-causal
        if C >= T:
            assert torch.equal(m, nc)  # one chunk holds everything: non-causal
        n_checked += 1
print(f"{n_checked} (T, M) pairs checked")

# %% [markdown]
# **Tokens and frames.** The token encoder applies the mask at 25 Hz; after the ×2 upsampling, the rest of the encoder
# and the estimator work on 50 Hz frames. Repeating every row and column twice (`upsample_mask`) turns the chunk-$M$
# token mask into the chunk-$2M$ **frame** mask: the same chunks in time. (A chunk of $M$ tokens is $2M$ frames; the
# paper's *chunk-2M* mask is a different thing — twice as many *tokens* per chunk.)
#
# **The prompt block.** In zero-shot synthesis a prompt (its tokens and its mel) comes first. It is known before
# synthesis starts, so minicosy makes it one block of its own (`prefix=`) and starts the chunk grid after it; the
# streaming run then emits chunks of exactly $M$ new tokens. `chunk_spans` lists the blocks a streaming run
# processes, in order. (What that prompt block costs, and when it can be computed, is section 3's last paragraph.)

# %%
# NBVAL_CHECK_OUTPUT
for T in range(1, 25):
    for C in range(1, 8):
        for p in range(0, 6):
            tok = attention_mask("chunk", T, C, prefix=p)
            assert torch.equal(upsample_mask(tok, UP), attention_mask("chunk", UP * T, UP * C, prefix=UP * p))
with_prompt = attention_mask("chunk", T_DEMO, M_DEMO, prefix=4)
print("prompt of 4, chunk 3, T = 12 → blocks", chunk_spans(T_DEMO, M_DEMO, prefix=4))
print("keys seen per query:", with_prompt.sum(1).tolist())

# %% [markdown]
# **Key padding.** Training batches pad utterances to one length. Padded *keys* must be hidden from every query;
# padded *queries* keep their row (their outputs are never used, and an all-masked row would make the softmax
# NaN). `with_padding(mask, lengths)` combines a pattern with the padding: a batch of two, lengths 12 and 8.

# %%
lengths = torch.tensor([12, 8])
padded = with_padding(attention_mask("chunk", T_DEMO, M_DEMO), lengths)  # (2, 12, 12)
for b, L in enumerate(lengths.tolist()):
    assert not padded[b, :, L:].any()  # padded keys: hidden from every query
    assert torch.equal(padded[b, :L, :L], attention_mask("chunk", L, M_DEMO))  # the real part: the unpadded mask
assert padded.any(-1).all()  # no empty row, padded queries included

fig, axes = plt.subplots(1, 3, figsize=(10, 3.4), layout="constrained")
panels = [("chunk 3, prompt of 4", with_prompt), ("chunk 3, length 12", padded[0]), ("chunk 3, length 8 (padded)", padded[1])]
for ax, (name, m) in zip(axes, panels):
    im = ax.imshow(m.numpy(), cmap=MASK_CMAP, vmin=0, vmax=1)
    ax.set(title=name, xlabel="key j", xticks=range(0, T_DEMO, 3), yticks=range(0, T_DEMO, 3))
axes[2].axvline(7.5, color="red", lw=1)
axes[2].axhline(7.5, color="red", lw=1, ls=":")
axes[0].set_ylabel("query i")
mask_colorbar(fig, im, axes)
plt.show()

# %% [markdown]
# ### Why train on all four
#
# A model trained only non-causally has never seen a frame without its future; used with a chunk mask it would be
# out of its training distribution. A model trained only with chunk masks would waste context offline. CosyVoice 2
# draws one of the four masks **per training utterance**, so a single set of weights serves every latency setting:
# offline synthesis uses the non-causal mask, streaming the chunk-$M$ (or chunk-$2M$, for more context at twice the
# wait). The paper adds that the masks with more context act as teachers for those with less — an implicit
# self-distillation — and reports streaming quality close to offline. (The official code draws one of two per
# batch — full, or a 25-token chunk; minicosy follows the paper's four.) minicosy adds a fifth kind for one utterance in
# five (`FlowTrainConfig.p_first_chunk`): the *scheduled* chunk mask of a low-latency stream, a short first chunk of
# $F = \lceil M/3 \rceil$ tokens after the prompt, then chunks of $M$ or $2M$ — the paper's advice for the first packet.
#
# The trainer's own batch builder, `make_inputs`, on 64 dummy utterances of 100–150 tokens: for each utterance we
# recover which mask it drew by comparing with the candidates (the prompt length is read off `cond`).

# %%
# NBVAL_CHECK_OUTPUT
g = torch.Generator().manual_seed(0)
items = []
for _ in range(64):
    L = int(torch.randint(100, 151, (), generator=g))
    items.append(dict(tokens=torch.randint(0, VOCAB, (L,), generator=g),
                      mel=torch.randn(cfg.n_mels, UP * L, generator=g), spk=torch.randn(cfg.spk_dim, generator=g)))
batch = make_inputs(model, items, FlowTrainConfig(), torch.Generator().manual_seed(1))
T_pad = batch["tokens"].shape[1]
F = -(-M // 3)  # the scheduled first chunk, ⌈M/3⌉
candidates = {"non-causal": ("non_causal", None, None), "full-causal": ("full_causal", None, None),
              "chunk-M": ("chunk", M, None), "chunk-2M": ("chunk", 2 * M, None),
              "first F, then M": ("chunk", M, F), "first F, then 2M": ("chunk", 2 * M, F)}
drawn, prompts = [], 0
for b in range(len(items)):
    p = int((batch["cond"][b].abs().sum(0) > 0).sum()) // UP  # prompt tokens: the frames where cond is set
    prompts += p > 0
    hits = [name for name, (kind, C, F_) in candidates.items()
            if torch.equal(batch["mask"][b], with_padding(attention_mask(kind, T_pad, C, prefix=p, first_chunk=F_),
                                                        batch["lengths"][b:b + 1])[0])]
    assert len(hits) == 1, hits  # each utterance got exactly one of the candidates
    drawn.append(hits[0])
counts = Counter(drawn)
print("masks drawn for 64 utterances:", {name: counts[name] for name in candidates})
print("utterances with a prompt (the mask's first block):", prompts)
assert set(list(candidates)[:4]) <= set(counts)  # the paper's four all drawn (64 draws: the scheduled ones may be few)

# %% [markdown]
# **Explore the chunk mask.** The sliders redraw `attention_mask("chunk", T, M, prefix=p, first_chunk=F)`: a prompt
# block of $p$ positions, a first chunk of $F$, then chunks of $M$ (the red lines mark where each block starts). Under
# the picture: the blocks a streaming run computes (`chunk_spans`) and how many *new* tokens the first packet waits
# for — $F$ plus this model's lookahead $P$ (section 2). Try $F = M$ (the uniform grid), $M = 1$ (full-causal after
# the prompt) and $M \ge T$ (non-causal after the first chunk).

# %%
def mask_explorer(T=24, M_try=6, F_try=2, p_try=4):
    m = attention_mask("chunk", T, M_try, prefix=p_try, first_chunk=F_try)
    blocks = chunk_spans(T, M_try, prefix=p_try, first_chunk=F_try)
    fig, ax = plt.subplots(figsize=(5.6, 4.4), layout="constrained")
    im = ax.imshow(m.numpy(), cmap=MASK_CMAP, vmin=0, vmax=1)
    for s, _ in blocks[1:]:
        ax.axhline(s - 0.5, color="red", lw=1)
        ax.axvline(s - 0.5, color="red", lw=1, ls=":")
    ax.set(title=f"chunk mask: T = {T}, M = {M_try}, first chunk F = {F_try}, prompt p = {p_try}",
           xlabel="key j", ylabel="query i")
    mask_colorbar(fig, im, ax)
    plt.show()
    print("blocks (chunk_spans):", blocks)
    print(f"first packet after F + P = {F_try + P} new tokens; keys seen per query: {m.sum(1).tolist()}")


slider_player(mask_explorer,
              T=widgets.IntSlider(value=24, min=4, max=48, description="T", continuous_update=False),
              M_try=widgets.IntSlider(value=6, min=1, max=24, description="chunk M", continuous_update=False),
              F_try=widgets.IntSlider(value=2, min=1, max=24, description="first F", continuous_update=False),
              p_try=widgets.IntSlider(value=4, min=0, max=16, description="prompt p", continuous_update=False))

# %% [markdown]
# ## 2 · The lookahead convolution
#
# Inside a chunk, attention already sees up to $M - 1$ tokens ahead — but the *last* token of a chunk sees nothing
# to its right, and speech at a chunk's end depends on what comes next (co-articulation). CosyVoice 2 puts one
# convolution with a deliberate lookahead right after the token embedding: kernel $P + 1$, input **right-padded**
# by $P$, so output $i$ reads tokens $i, \dots, i + P$ (the paper: $P = 4$; the official code: 3):
#
# $$y_i = W_1 \star [\,e_i, e_{i+1}, \dots, e_{i+P}\,], \qquad
# \text{out}_i = e_i + \mathrm{conv}_2\big(\mathrm{LeakyReLU}(y)\big)_i$$
#
# where $\mathrm{conv}_2$ (kernel 3) is **causal**. Everything after it — attention with the chunk mask, the
# causal convolutions of the upsampler and the estimator — looks no further right than the end of the chunk.
#
# **Measured.** Feed random embeddings to the model's `LookaheadLayer`, back-propagate from output $i = 10$, and see
# which inputs receive gradient: first through `conv1` alone, then through the whole layer.

# %%
la = model.encoder.lookahead
assert la.P == P and la.conv1.kernel_size == (P + 1,) and la.conv2.left == 2  # kernel P+1; conv2: causal, kernel 3
i = 10
x = torch.randn(1, 21, cfg.d_enc, generator=torch.Generator().manual_seed(0), requires_grad=True)  # (B, T, d)
h = torch.nn.functional.pad(x.transpose(1, 2), (0, P))  # right-pad by P: (B, d, T + P)
la.conv1(h)[0, :, i].sum().backward()
grad_conv1 = x.grad[0].abs().sum(1)  # (T,): how much output i moves with each input
x.grad = None
la(x)[0, i].sum().backward()
grad_layer = x.grad[0].abs().sum(1)

# %%
# NBVAL_CHECK_OUTPUT
reach1 = torch.nonzero(grad_conv1).flatten().tolist()
reach = torch.nonzero(grad_layer).flatten().tolist()
print(f"conv1 (kernel P + 1 = {P + 1}, right-padded by P): output {i} reads inputs {reach1}")
print(f"whole lookahead layer (+ causal conv2, kernel 3):  output {i} reads inputs {reach}")
assert reach1 == list(range(i, i + P + 1))  # exactly i … i+P
assert reach == list(range(i - la.conv2.left, i + P + 1))  # conv2 widens to the left only: the future stays P

# %%
fig, ax = plt.subplots(figsize=(8, 2.6))
pos = np.arange(grad_layer.numel())
ax.bar(pos - 0.2, grad_conv1.numpy(), width=0.4, label="conv1 alone")
ax.bar(pos + 0.2, grad_layer.numpy(), width=0.4, label="lookahead layer")
ax.axvline(i, color="red", lw=1, ls=":")
ax.set(xlabel="input token position", ylabel="|∂ out_i / ∂ e_j|", xticks=pos[::2],
       title=f"receptive field of output i = {i}: {P} tokens into the future, 2 into the past")
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# **Through the whole encoder.** Now change one token $j$ at a time and record which 50 Hz frames of the encoder
# output `mu` change at all (exactly: masked attention weights are exact zeros, so an untouched frame is bit-for-bit
# the same). With 45 tokens and the model's chunk $M$, the chunk mask gives three chunks. Token $j$ first reaches the
# lookahead output of token $j - P$, and attention spreads that to its whole chunk and everything later, so
#
# $$\text{first changed frame}(j) = 2\, s\big(\text{chunk of } \max(0, j - P)\big)$$
#
# with $s$ a chunk's first token; for full-causal it is $2\max(0, j - P)$.

# %%
T_DEP = 3 * M
toks = torch.randint(0, VOCAB, (T_DEP,), generator=torch.Generator().manual_seed(3))


def dependency(kind):
    # (T_DEP, 2·T_DEP) bool: does token j change frame f of mu?
    mask = attention_mask(kind, T_DEP, M)[None]
    with torch.no_grad():
        base = model.encoder(toks[None], mask)[0]  # (n_mels, 2T)
        rows = []
        for j in range(T_DEP):
            other = toks.clone()
            other[j] = (toks[j] + 1) % VOCAB
            rows.append((model.encoder(other[None], mask)[0] != base).any(0))
    return torch.stack(rows)


dep = {kind: dependency(kind) for kind in ("full_causal", "chunk")}
spans = chunk_spans(T_DEP, M)
for j in range(T_DEP):
    src = max(0, j - P)
    first = {"full_causal": UP * src, "chunk": UP * next(s for s, e in spans if s <= src < e)}
    for kind, d in dep.items():
        changed = torch.nonzero(d[j]).flatten()
        assert int(changed[0]) == first[kind] and not d[j, :first[kind]].any(), (kind, j)

# %%
# NBVAL_CHECK_OUTPUT
for s, e in spans:
    reach = [j for j in range(T_DEP) if dep["chunk"][j, UP * s:UP * e].any()]
    print(f"chunk of tokens [{s:2d}, {e:2d}) = frames [{UP * s:2d}, {UP * e:2d}): depends on tokens "
          f"{reach[0]}…{reach[-1]}  ({reach[-1] + 1 - e} past its end)")
    assert reach[-1] + 1 == min(e + P, T_DEP)

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), layout="constrained")
for ax, (kind, d) in zip(axes, dep.items()):
    im = ax.imshow(d.numpy(), cmap=MASK_CMAP, vmin=0, vmax=1, aspect="auto")
    ax.set(title=f"{kind.replace('_', '-')}: which mu frames token j changes", xlabel="mu frame (50 Hz)",
           ylabel="changed token j")
    if kind == "chunk":
        for s, e in spans[1:]:
            ax.axvline(UP * s - 0.5, color="red", lw=1.5)
            ax.axhline(s - 0.5, color="red", lw=1.5, ls="--")  # a chunk's first token
            ax.axhline(s + P - 0.5, color="orange", lw=1.5, ls="--")  # … and P tokens later
mask_colorbar(fig, im, axes, ("unchanged", "changed"))
plt.show()

# %% [markdown]
# Read the right panel row by row: the tokens of a chunk (rows between the dashed red lines) change their own
# chunk's frames and everything after — *and* the first $P$ tokens of a chunk (between a red and the next orange line)
# also change the **previous** chunk. That is why streaming needs $P$ extra tokens per chunk: chunk $k$ is final only once the tokens up to its
# end **plus $P$** have arrived. Without the lookahead the last frames of every chunk would be synthesised blind to
# what follows.

# %% [markdown]
# ## 3 · Latency arithmetic
#
# The paper (§2.5) writes the first-packet latency of streaming TTS as the time the LM, the flow and the vocoder take
# for the first packet's $M$ tokens: $L_{TTS} = M\,d_{lm} + M\,d_{fm} + M\,d_{voc}$, with $d$ the compute time per
# token of each stage. The lookahead adds to the LM's term: the flow's first chunk needs
#
# $$M + P \text{ tokens from the LM} \quad\Longrightarrow\quad 2M \text{ mel frames out}$$
#
# and every later chunk needs $M$ more tokens and gives $2M$ more frames. Tokens are 25 Hz (40 ms of speech each),
# mel frames 50 Hz (20 ms each).
#
# **A short first chunk.** Only the first packet keeps a listener waiting, so the chunk schedule can make the first
# chunk shorter: `first_chunk_tokens=F` (the mask's `first_chunk`, the "first F, then M" masks that training draws for
# one utterance in five, section 1). The first packet then needs $F + P$ tokens and holds $2F$ frames; every later
# packet is unchanged. The row "tiny, F = ⌈M/3⌉" below is that schedule with the trainer's default $F$.

# %%
# NBVAL_CHECK_OUTPUT
TOKEN_HZ, FRAME_HZ = 25, 50
tiny, paper = FlowConfig.tiny(vocab_size=VOCAB), FlowConfig.paper()
settings = [("minicosy tiny", tiny.chunk_tokens, tiny.lookahead, tiny.chunk_tokens),
            ("tiny, F = ⌈M/3⌉", tiny.chunk_tokens, tiny.lookahead, -(-tiny.chunk_tokens // 3)),
            ("minicosy paper()", paper.chunk_tokens, paper.lookahead, paper.chunk_tokens),
            ("official code", 25, 3, 25)]  # the official runtime: 25-token hop, PreLookaheadLayer with 3
print(f"{'setting':17s} {'M':>3s} {'P':>3s} {'F':>3s} | first packet needs  | it holds            | then per packet")
for name, Mi, Pi, Fi in settings:
    need = Fi + Pi
    print(f"{name:17s} {Mi:3d} {Pi:3d} {Fi:3d} | {need:2d} tokens = {1000 * need // TOKEN_HZ:4d} ms | "
          f"{UP * Fi:2d} frames = {1000 * UP * Fi // FRAME_HZ:4d} ms | {Mi} tokens → {UP * Mi} frames")
assert (tiny.chunk_tokens, tiny.lookahead) == (15, 4) and paper.chunk_tokens == 25

# %% [markdown]
# So with the tiny preset the LM must produce **19 tokens** (760 ms of speech) before the flow can emit **30 frames**
# (600 ms); a first chunk of $F = 5$ cuts that to 9 tokens (360 ms) for 10 frames; the official chunk waits for 28–29
# tokens and emits a full second. If the LM runs at real time ($d_{lm}$ = 40 ms a token) the waiting alone is 0.76 s
# (0.36 s with the short first chunk); a faster LM shrinks it in proportion. The vocoder then adds its own lookahead
# (notebook 05: it holds back a few frames per run). Section 4 watches the tokens arrive.
#
# **The prompt block.** In zero-shot synthesis a voice prompt (its tokens and its mel) comes first. It adds no tokens
# to wait for — they are known before synthesis starts — but its block is computed like a chunk, and it is usually the
# largest block: a prompt of $T_p$ tokens is one block of $2T_p$ frames in every ODE step, 150 frames for a 3-second
# prompt against 30 for a tiny-preset chunk. *When* it can be computed depends on `FlowConfig.prompt_lookahead`:
#
# * `"clip"` (the default of `FlowConfig`, and the random model of this notebook): the lookahead convolution of the
#   prompt's last tokens stops at the prompt's end — zeros after it, as at the end of an utterance — in training and
#   at inference. The prompt block then depends on the prompt alone, so `model.prompt_state(...)` computes it **once
#   per voice**, before any text arrives, and each request forks a stream from it; the block drops out of the
#   first-packet latency.
# * `"cross"`: the prompt's last $P$ tokens look at the first $P$ generated tokens, as in the official code. The
#   prompt block must wait for them and is recomputed for every sentence, so it is part of every first packet.
#
# Section 4 checks both behaviours and prints which one the pretrained tiny flow in `data/pretrained/tiny` (the one
# notebooks 06 and 07 stream) was trained with; notebook 06 times its prompt block beside the other parts of the
# first packet.

# %% [markdown]
# ## 4 · Cached streaming equals offline chunk-masked synthesis
#
# ### A toy first
#
# One attention layer, in about 20 lines, with the two ingredients that matter: a **lookahead** of one token in front
# of it ($h_i = x_i + x_{i+1}$) and **noise** added to its input (in the flow the noise is the ODE's starting point).
# Offline it runs the whole sequence at once with the chunk mask. Streaming runs it chunk by chunk with a **key/value
# cache**: each chunk's queries attend to the keys and values of every earlier chunk (kept in the cache) and of their
# own chunk — exactly row $i$ of the chunk mask, so the streamed chunk needs no mask at all. A chunk is computed once
# its own tokens **and its lookahead token** have arrived, with the noise of its own frames sliced from one pre-drawn
# tensor.

# %%
d_toy, T_toy, C_toy = 8, 12, 4
gt = torch.Generator().manual_seed(0)
Wq, Wk, Wv = (torch.randn(d_toy, d_toy, generator=gt) / d_toy ** 0.5 for _ in range(3))
x_toy = torch.randn(T_toy, d_toy, generator=gt)  # (T, d) token embeddings
noise_toy = torch.randn(T_toy, d_toy, generator=gt)  # (T, d) one noise draw for the whole utterance


def lookahead1(x, future):  # h_i = x_i + x_{i+1}; zeros past the last token that has arrived
    return x + torch.cat([x[1:], future, x.new_zeros(1, d_toy)])[: len(x)]


def attend(h, K, V, mask=None):  # softmax(q kᵀ / √d) v over the keys a query may see
    scores = (h @ Wq) @ K.T / d_toy ** 0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1) @ V


def toy_offline():
    h = lookahead1(x_toy, x_toy[:0]) + noise_toy
    return attend(h, h @ Wk, h @ Wv, attention_mask("chunk", T_toy, C_toy))


def toy_stream(noise=lambda s, e: noise_toy[s:e], ahead=1):
    K, V, out = x_toy[:0], x_toy[:0], []  # the key/value cache starts empty
    for s, e in chunk_spans(T_toy, C_toy):  # chunk by chunk, as the tokens arrive
        h = lookahead1(x_toy[s:e], x_toy[e:e + ahead]) + noise(s, e)  # wait for `ahead` tokens past the chunk
        K, V = torch.cat([K, h @ Wk]), torch.cat([V, h @ Wv])  # append this chunk's keys and values
        out.append(attend(h, K, V))  # no mask: every cached key is in the past or in this chunk
    return torch.cat(out)


# %% [markdown]
# Three streamed runs against the offline one: as written; with **fresh noise per call** (a new `randn` for every
# chunk, what a naive sampler does); and with **no lookahead** (each chunk computed as soon as its own tokens are in,
# so its last token sees zeros instead of its successor). The positions listed are those that differ from offline.

# %%
# NBVAL_CHECK_OUTPUT
off_toy = toy_offline()
runs = {"fixed noise, waits for the lookahead": toy_stream(),
        "fresh noise per call": toy_stream(noise=lambda s, e: torch.randn(e - s, d_toy, generator=gt)),
        "no lookahead": toy_stream(ahead=0)}
toy_delta = {}
for name, y in runs.items():
    toy_delta[name] = (y - off_toy).abs().max(1).values  # (T,) largest |Δ| per position
    wrong = torch.nonzero(toy_delta[name] > 1e-5).flatten().tolist()
    print(f"{name:37s} max |Δ| = {float(toy_delta[name].max()):.2f} | positions that differ: {wrong}")
assert torch.allclose(runs["fixed noise, waits for the lookahead"], off_toy, atol=1e-5)
assert all((toy_delta[name] > 1e-5).all() for name in list(runs)[1:])  # each mistake changes every position

# %% [markdown]
# Only the first run equals offline. Fresh noise changes every chunk's input. The missing lookahead changes only the
# *last* token of each chunk directly — but that token's key and value sit in the cache, and every later query (and
# every query of its own chunk) reads them, so the error spreads to all positions. The same experiment with the
# package's `Attention` module (rotary positions, a `cache` dict that it fills itself): chunk by chunk with the cache
# equals the whole sequence with the chunk mask.

# %%
# NBVAL_CHECK_OUTPUT
att = Attention(16, 2, 0.0).eval()
xa = torch.randn(1, T_toy, 16, generator=gt)  # (B, T, C)
with torch.no_grad():
    att_off = att(xa, attention_mask("chunk", T_toy, C_toy)[None])
    att_cache = {}
    att_on = torch.cat([att(xa[:, s:e], None, att_cache) for s, e in chunk_spans(T_toy, C_toy)], dim=1)
print("package Attention, cached chunks == offline chunk mask:", torch.allclose(att_on, att_off, atol=1e-6),
      "| cached keys:", tuple(att_cache["k"].shape), "(B, heads, T, head size)")
assert torch.allclose(att_on, att_off, atol=1e-6) and att_cache["k"].shape[2] == T_toy

# %% [markdown]
# ### The flow
#
# **Why it can be exact.** Run the flow *offline* with the chunk-$M$ mask (`inference(..., mask="chunk")`). The output
# frames of chunk $k$ then depend only on
#
# * the tokens up to the end of chunk $k$, plus $P$ (section 2);
# * the starting noise of frames up to the end of chunk $k$ — one pre-drawn tensor (`FixedNoise`), sliced by absolute
#   frame position, so a chunk gets the same noise whichever way it is computed;
# * at ODE step $n$, the state $x_n$ of frames up to the end of chunk $k$ — which by the same argument at step $n - 1$
#   depends on nothing later either.
#
# So once $M + P$ new tokens are in, chunk $k$ can be computed completely and will never change. `FlowStream`
# computes it in one of two ways:
#
# * `mode="cached"` (minicosy): run **only the new chunk**, keeping every attention layer's keys/values and every causal
#   conv's left inputs from earlier chunks — the encoder's once, the estimator's **once per ODE step** (step $n$ of
#   chunk $k$ attends to earlier chunks' keys *at step $n$*);
# * `mode="recompute"` (the official runtime): re-run the **whole prefix** offline with the same noise and keep the new
#   frames.
#
# **Random weights are enough.** This is a claim about the *computation* — that two schedules of the same arithmetic
# give the same numbers — not about speech quality, so it must hold for any weights. The model here is untrained
# (and the notebook does not need a checkpoint); its mel looks like noise. A trained model gives the same equality.
#
# Below: a 120-token utterance (4.8 s, 8 chunks) with a speaker vector, pushed **one token at a time**, as the LM
# emits them.

# %%
g = torch.Generator().manual_seed(4)
tokens = torch.randint(0, VOCAB, (8 * M,), generator=g)  # 120 tokens at 25 Hz = 4.8 s
speaker = torch.randn(cfg.spk_dim, generator=g)
offline = model.inference(tokens, speaker=speaker, mask="chunk")  # (80, 240): the chunk-M mask


def stream_token_by_token(mode):
    st = model.stream(speaker=speaker, mode=mode)
    pieces, arrived = [], []
    for n in range(len(tokens)):
        out = st.push(tokens[n:n + 1])  # one token, as the LM emits them
        if out.shape[1]:
            pieces.append(out)
            arrived.append(n + 1)
    pieces.append(st.flush())  # end of the utterance: the last chunk's lookahead is past the end (zeros)
    arrived.append("flush")
    return torch.cat(pieces, dim=1), [p.shape[1] for p in pieces], arrived


streamed, sizes, arrived = stream_token_by_token("cached")
rerun, sizes_rerun, arrived_rerun = stream_token_by_token("recompute")

# %%
# NBVAL_CHECK_OUTPUT
d_cached = float((streamed - offline).abs().max())
d_rerun = float((rerun - offline).abs().max())
print("tokens received when each packet left:", arrived)
print("frames per packet:", sizes)
print("cached streaming    == offline chunk-masked (max |Δ| ≤ 1e-4):", d_cached <= 1e-4)
print("re-run-the-prefix   == offline chunk-masked (max |Δ| ≤ 1e-4):", d_rerun <= 1e-4)
assert streamed.shape == rerun.shape == offline.shape == (cfg.n_mels, UP * len(tokens))
assert d_cached <= 1e-4 and d_rerun <= 1e-4
assert arrived[:-1] == [M + P + k * M for k in range(7)] and sizes == [UP * M] * 8  # the latency of section 3
assert arrived_rerun == arrived and sizes_rerun == sizes

# %%
nc = model.inference(tokens, speaker=speaker)  # offline, non-causal: more context
print(f"max |Δ| cached vs offline chunk-masked: {d_cached:.1e} (float rounding); re-run: {d_rerun:.1e}")
print(f"max |Δ| chunk-masked vs non-causal:      {float((nc - offline).abs().max()):.2f}")
assert float((nc - offline).abs().max()) > 1e-3

# %% [markdown]
# The last line is the other half of the story: streaming reproduces the *chunk-masked* run, not the non-causal one —
# those differ, because the non-causal run sees more context. For an untrained model the gap means nothing; for a
# trained one it is the quality cost of streaming, which training on all four masks keeps small.
#
# The same holds with a prompt, the chunk grid starting after it (`chunk_spans` lists what the stream processes):

# %%
# NBVAL_CHECK_OUTPUT
ptoks = torch.randint(0, VOCAB, (10,), generator=g)
pmel = torch.randn(cfg.n_mels, UP * 10, generator=g) - 5  # a (random) prompt log-mel, 2 frames per token
part = tokens[:40]
off_p = model.inference(part, ptoks, pmel, speaker, mask="chunk")
st = model.stream(ptoks, pmel, speaker)
out_p = torch.cat([st.push(part), st.flush()], dim=1)
print("blocks (prompt first):", chunk_spans(len(ptoks) + len(part), M, prefix=len(ptoks)))
print("with a prompt, streamed == offline chunk-masked:", float((out_p - off_p).abs().max()) <= 1e-4,
      "| prompt frames trimmed:", tuple(out_p.shape))
assert out_p.shape == (cfg.n_mels, UP * len(part)) and float((out_p - off_p).abs().max()) <= 1e-4

# %%
fig, ax = plt.subplots(3, 1, figsize=(10, 7.8), gridspec_kw=dict(height_ratios=[2, 2, 1.6]), layout="constrained")
im0 = ax[0].imshow(offline.numpy(), origin="lower", aspect="auto", cmap=MEL_CMAP)
ax[0].set(title="offline, chunk-masked (untrained model: noise-like on purpose)", ylabel="mel bin",
          xlabel="mel frame (50 Hz)")
fig.colorbar(im0, ax=ax[0], pad=0.01, label="log-mel")
im = ax[1].imshow((streamed - offline).abs().numpy(), origin="lower", aspect="auto", cmap="viridis")
ax[1].set(title="|cached streaming − offline|: float rounding only", ylabel="mel bin", xlabel="mel frame (50 Hz)")
fig.colorbar(im, ax=ax[1], pad=0.01, label="|Δ log-mel|")
for a in ax[:2]:
    for k in range(1, 8):
        a.axvline(UP * M * k - 0.5, color="white", lw=1, ls="--")
emitted = list(np.cumsum(sizes))
got = [a if a != "flush" else len(tokens) for a in arrived]  # the flush comes after the last token
ax[2].step([0] + got + [len(tokens) + 4], [0] + emitted + emitted[-1:], where="post", label="frames out (FlowStream)")
ax[2].plot([0, len(tokens)], [0, UP * len(tokens)], color="grey", ls=":", label="2 frames per token (no wait)")
ax[2].annotate("flush", xy=(len(tokens), emitted[-1] - 15), xytext=(len(tokens) - 12, emitted[-1] - 90),
               arrowprops=dict(arrowstyle="->"))
ax[2].set(xlabel="tokens received", ylabel="frames emitted", xlim=(0, len(tokens) + 4),
          title=f"a packet of {UP * M} frames every {M} tokens, the first after M + P = {M + P}")
ax[2].legend(loc="upper left")
ax[0].set_xlim(ax[1].get_xlim())
plt.show()

# %% [markdown]
# **The prompt block once per voice, and a short first chunk.** With this model's `prompt_lookahead="clip"`,
# `model.prompt_state(...)` runs the prompt block (encoder and all ten ODE steps) once; `state.fork(...)` then starts
# a stream at the first generated token. Below: a 3-second prompt (75 tokens), one fork streamed token by token with
# the short first chunk $F = \lceil M/3 \rceil$, a second fork with the uniform grid. A forward hook on the estimator
# records the frames of every ODE step. Each fork must equal its offline chunk-masked run
# (`inference(..., mask="chunk", first_chunk_tokens=F)` for the first).

# %%
# NBVAL_CHECK_OUTPUT
gp = torch.Generator().manual_seed(5)
T_P = 3 * TOKEN_HZ  # a 3 s prompt: 75 tokens, 150 frames
ptok3 = torch.randint(0, VOCAB, (T_P,), generator=gp)
pmel3 = torch.randn(cfg.n_mels, UP * T_P, generator=gp) - 5
cont_a, cont_b = torch.randint(0, VOCAB, (40,), generator=gp), torch.randint(0, VOCAB, (20,), generator=gp)
F_S = -(-M // 3)  # the short first chunk: ⌈M/3⌉ = 5 tokens
est_frames = []
hook = model.estimator.register_forward_hook(lambda mod, args, out: est_frames.append(args[0].shape[2]))
state = model.prompt_state(ptok3, pmel3, speaker)  # once per voice
n_prompt_calls = len(est_frames)
fork_a = state.fork(first_chunk_tokens=F_S)
pieces_a, arrived_a = [], []
for n in range(len(cont_a)):
    out = fork_a.push(cont_a[n:n + 1])  # one token at a time
    if out.shape[1]:
        pieces_a.append(out)
        arrived_a.append(n + 1)
pieces_a.append(fork_a.flush())
hook.remove()
fork_b = state.fork()  # the same state, another sentence
mel_b = torch.cat([fork_b.push(cont_b), fork_b.flush()], dim=1)
d_a = float((torch.cat(pieces_a, dim=1) - model.inference(cont_a, ptok3, pmel3, speaker, mask="chunk",
                                                          first_chunk_tokens=F_S)).abs().max())
d_b = float((mel_b - model.inference(cont_b, ptok3, pmel3, speaker, mask="chunk")).abs().max())
print(f"prompt block: computed once ({state.precomputed}), {est_frames[0]} frames per ODE step; "
      f"the first chunk: {est_frames[n_prompt_calls]} frames per ODE step")
print("fork 1 (first chunk F = 5): new tokens received when each packet left:", arrived_a,
      "| frames:", [p.shape[1] for p in pieces_a])
print("fork 1 == offline chunk-masked with F = 5:", d_a <= 1e-4, "| fork 2 == offline chunk-masked:", d_b <= 1e-4)
assert state.precomputed and n_prompt_calls == N_STEPS and set(est_frames[:N_STEPS]) == {UP * T_P}
assert arrived_a[0] == F_S + P and pieces_a[0].shape[1] == UP * F_S and est_frames[N_STEPS] == UP * F_S
assert d_a <= 1e-4 and d_b <= 1e-4

# %% [markdown]
# The prompt block processed 150 frames in each ODE step, five times a tiny-preset chunk, and it ran before the first
# generated token; the first packet left after $F + P = 9$ new tokens with $2F = 10$ frames. Now the same weights with
# `prompt_lookahead="cross"`: change only the *first generated token* and count the prompt's `mu` frames that move.
# With `"cross"` the state cannot be precomputed (`state.precomputed` is False: each fork computes the prompt block
# once it has $P$ generated tokens). The last line reads the setting of the pretrained flow from its `flow.json`.

# %%
# NBVAL_CHECK_OUTPUT
model_cross = ChunkAwareFlow(replace(cfg, prompt_lookahead="cross")).eval()
model_cross.load_state_dict(model.state_dict())  # the same weights; only the prompt's lookahead differs
seq_a = torch.cat([ptok3, cont_a])
seq_b = seq_a.clone()
seq_b[T_P] = (seq_b[T_P] + 1) % VOCAB  # another first generated token
enc_mask = attention_mask("chunk", len(seq_a), M, prefix=T_P)[None]
for m in (model, model_cross):
    with torch.no_grad():
        mu_a = m.encoder(seq_a[None], enc_mask, n_prompt=T_P)[0, :, :UP * T_P]  # the prompt's frames of mu
        mu_b = m.encoder(seq_b[None], enc_mask, n_prompt=T_P)[0, :, :UP * T_P]
    moved = int((mu_a != mu_b).any(0).sum())
    precomputed = state.precomputed if m is model else m.prompt_state(ptok3, pmel3, speaker).precomputed
    print(f"prompt_lookahead={m.cfg.prompt_lookahead!r:8s} prompt frames moved by the first generated token: "
          f"{moved:3d} of {UP * T_P} | prompt state precomputed: {precomputed}")
    assert (moved == 0) == (m.cfg.prompt_lookahead == "clip")
saved = FlowConfig.from_saved(json.loads((DEFAULT_CHECKPOINT / "flow.json").read_text())["config"])
print(f"the pretrained tiny flow (data/pretrained/tiny/flow.json) uses prompt_lookahead={saved.prompt_lookahead!r}")


# %% [markdown]
# ## 5 · Cost: flat per chunk versus a growing prefix
#
# Both modes give the same frames; they do very different amounts of work. Forward hooks on the package's own
# modules count it per chunk (each chunk starts with one call of the token encoder):
#
# * **frames per ODE step** — how many 50 Hz frames the estimator processes in one Euler step;
# * **query × key pairs** — summed over every attention layer of the encoder and the estimator, every ODE step and
#   the guidance pair (conditional and unconditional run as one batch of two).
#
# With $K$ chunks of $M$ tokens, chunk $k = 0, \dots, K-1$ costs per ODE step
#
# $$\text{cached: } 2M \text{ frames}, \quad 2M \cdot 2M(k+1) \text{ pairs}; \qquad
# \text{re-run: } 2M(k+1) \text{ frames}, \quad \big(2M(k+1)\big)^2 \text{ pairs}$$
#
# per estimator layer: the cache keeps the frames flat and the attention linear; the re-run makes both grow — its
# chunk $k$ costs $k + 1$ times the cached one, and the whole utterance $\tfrac{K+1}{2}$ times as many frames.

# %%
class WorkCounter:
    # Forward hooks on the package's modules; one record per chunk (one TokenEncoder call each).

    def __init__(self, model):
        self.chunks = []
        self.handles = [model.encoder.register_forward_pre_hook(self.new_chunk),
                        model.estimator.register_forward_hook(self.estimator)]
        self.handles += [mod.register_forward_hook(self.attention) for mod in model.modules() if isinstance(mod, Attention)]

    def new_chunk(self, module, args):
        self.chunks.append({"frames": [], "pairs": 0})

    def estimator(self, module, args, out):  # Estimator.forward(x (B, n_mels, F), mu, spk, cond, t, mask, cache)
        self.chunks[-1]["frames"].append(args[0].shape[2])

    def attention(self, module, args, out):  # Attention.forward(x (B, T, C), mask, cache)
        x, cache = args[0], args[2] if len(args) > 2 else None
        keys = cache["k"].shape[2] if cache else x.shape[1]  # cached: past + new keys
        self.chunks[-1]["pairs"] += x.shape[0] * x.shape[1] * keys

    def remove(self):
        for h in self.handles:
            h.remove()


work, seconds = {}, {}
for mode in ("cached", "recompute"):
    counter = WorkCounter(model)
    st = model.stream(speaker=speaker, mode=mode)
    out = torch.cat([st.push(tokens), st.flush()], dim=1)
    counter.remove()
    assert float((out - offline).abs().max()) <= 1e-4
    assert all(len(c["frames"]) == N_STEPS for c in counter.chunks)  # one estimator call per ODE step
    work[mode], seconds[mode] = counter.chunks, st.chunk_times

# %%
# NBVAL_CHECK_OUTPUT
K = len(tokens) // M
fr = {mode: [c["frames"][0] for c in chunks] for mode, chunks in work.items()}
pairs = {mode: [c["pairs"] for c in chunks] for mode, chunks in work.items()}
for mode in work:
    print(f"{mode:9s} frames per ODE step, by chunk: {fr[mode]}")
for mode in work:
    print(f"{mode:9s} query×key pairs (millions):     {[round(p / 1e6, 2) for p in pairs[mode]]}")
assert fr["cached"] == [UP * M] * K  # flat
assert fr["recompute"] == [UP * M * (k + 1) for k in range(K)]  # the whole prefix, every chunk
assert pairs["cached"] == [(k + 1) * pairs["cached"][0] for k in range(K)]  # linear: new queries × all keys so far
assert pairs["recompute"] == [(k + 1) * pairs["cached"][k] for k in range(K)]  # quadratic: (k+1) × the cached chunk


def total_frames_per_step(mode, n_chunks, chunk=M):
    # Σ over the chunks of the estimator frames per ODE step (the formula above; checked on the measurement)
    return UP * chunk * (n_chunks if mode == "cached" else n_chunks * (n_chunks + 1) // 2)


for mode in work:
    assert total_frames_per_step(mode, K) == sum(fr[mode])
print(f"whole utterance: re-run / cached = {sum(fr['recompute']) / sum(fr['cached']):.1f}× the frames "
      f"(= (K + 1)/2 for K = {K}), {sum(pairs['recompute']) / sum(pairs['cached']):.2f}× the attention pairs")

# %% [markdown]
# The cached chunk's attention still grows (its queries read every earlier key), but attention is a small part of
# the work while the context is short. Per frame and estimator layer pair, the dense parts — the query/key/value and
# output projections ($4d^2$), the MLP ($2 \cdot 4d^2$) and the two causal convolutions of the ResNet block
# ($2 \cdot 3d^2$) — cost about $18\,d^2$ multiply-adds, whatever the context; attention costs $2d$ per key
# ($q \cdot k$ and the weighted sum of values). Attention overtakes the rest only past $9d$ keys:

# %%
# NBVAL_CHECK_OUTPUT
d = cfg.d_est
dense = (4 + 2 * cfg.ff_mult + 2 * cfg.conv_kernel) * d * d  # multiply-adds per frame: projections, MLP, convs
crossover = dense // (2 * d)  # keys at which attention (2d per key) costs as much
print(f"d = {d}: dense ≈ {dense:,} per frame; attention ≈ {2 * d} per key → equal at {crossover} keys = "
      f"{crossover / FRAME_HZ:.1f} s of 50 Hz frames")
assert crossover == 9 * d

# %% [markdown]
# Below that the cached chunk's cost is nearly flat, as the wall clock shows (not checked: it depends on the CPU and
# its load):

# %%
# NBVAL_IGNORE_OUTPUT
for mode in work:
    ms = [round(1000 * s) for s in seconds[mode]]
    print(f"{mode:9s} ms per chunk: {ms}  (total {sum(ms)} ms for {len(tokens) / TOKEN_HZ:.1f} s of speech)")

# %%
fig, ax = plt.subplots(1, 3, figsize=(13, 3.3))
k = np.arange(1, K + 1)
for mode, style in (("cached", "o-"), ("recompute", "s--")):
    ax[0].plot(k, fr[mode], style, label=mode)
    ax[1].plot(k, np.array(pairs[mode]) / 1e6, style, label=mode)
    ax[2].plot(k, 1000 * np.array(seconds[mode]), style, label=mode)
ax[0].set(xlabel="chunk", ylabel="frames per ODE step", title="estimator frames (counted)")
ax[1].set(xlabel="chunk", ylabel="million q×k pairs", title="attention work (counted)")
ax[2].set(xlabel="chunk", ylabel="ms", title="wall time on this machine (not checked)")
for a in ax:
    a.legend()
plt.tight_layout()
plt.show()


# %% [markdown]
# ## 6 · Exercises
#
# 1. **A mask with a prompt.** For `attention_mask("chunk", 10, 4, prefix=3)` — a 3-token prompt, then chunks of 4 —
#    write down, without running it, how many keys each of the 10 queries sees. Set `seen` (a list of 10 integers).
# 2. **The official chunk.** A stream with `chunk_tokens=25` (the official hop), this model's lookahead
#    $P$ = `cfg.lookahead` and a 10-token prompt: how many *new* tokens must arrive before the first mel frames come
#    out, and how many frames is that first packet? Set `new_tokens_needed` and `first_packet_frames`; the check
#    streams it for real.
# 3. **A long utterance.** For $K = 20$ chunks of this model's $M$, how many estimator frames per ODE step does each
#    mode process over the whole utterance? Set `frames_cached` and `frames_recompute`.
# 4. **Implement it: `attention_mask`.** Write `my_attention_mask(kind, T, chunk_size=None, prefix=0, first_chunk=None)`
#    from the rule of section 1, without calling anything from `minicosy.flow.masks`: a `(T, T)` bool tensor, `True`
#    where query $i$ may attend key $j$. `"non_causal"`: every key. `"full_causal"`: the chunk rule with chunks of 1.
#    `"chunk"`: the first `prefix` positions (the prompt) are one block, then a first chunk of `first_chunk`
#    positions (`None`: `chunk_size`), then chunks of `chunk_size`; row $i$ sees every key up to the end of its own
#    block, and no block reaches past $T$. The check compares it with the package's `attention_mask` on 64 cases.
#
# Each check prints *not attempted* until you fill in its answer. The collapsed cell after them holds the solutions
# and runs every check once with a correct answer (and once with a wrong mask, which must fail).

# %%
def check(name, ok):
    print(f"{name}: {'not attempted' if ok is None else ('correct' if ok else 'not yet — try again')}")


def first_packet(chunk_tokens, prompt_len=10):
    # push new tokens one at a time; return (tokens pushed, frames) at the first non-empty output
    gen = torch.Generator().manual_seed(7)
    pt = torch.randint(0, VOCAB, (prompt_len,), generator=gen)
    pm = torch.randn(cfg.n_mels, UP * prompt_len, generator=gen) - 5
    new = torch.randint(0, VOCAB, (chunk_tokens + P + 5,), generator=gen)
    st = model.stream(pt, pm, speaker, chunk_tokens=chunk_tokens)
    for n in range(len(new)):
        out = st.push(new[n:n + 1])
        if out.shape[1]:
            return n + 1, out.shape[1]


def ex1_ok(seen):
    return list(seen) == attention_mask("chunk", 10, 4, prefix=3).sum(1).tolist()


def ex2_ok(new_tokens_needed, first_packet_frames):
    return (new_tokens_needed, first_packet_frames) == first_packet(25)


def ex3_ok(frames_cached, frames_recompute):
    return (frames_cached, frames_recompute) == (total_frames_per_step("cached", 20),
                                                 total_frames_per_step("recompute", 20))


MASK_CASES = [(kind, T, C, p, F_) for T in (1, 7, 12, 20) for p in (0, 3)
              for kind, C, F_ in (("non_causal", None, None), ("full_causal", None, None), ("chunk", 1, None),
                                  ("chunk", 4, None), ("chunk", 4, 2), ("chunk", 5, 7), ("chunk", 25, None),
                                  ("chunk", 3, 1))]


def ex4_ok(fn):
    # None while fn returns None; else whether it equals attention_mask on every case
    for kind, T, C, p, F_ in MASK_CASES:
        got = fn(kind, T, C, prefix=p, first_chunk=F_)
        if got is None:
            return None
        want = attention_mask(kind, T, C, prefix=p, first_chunk=F_)
        if not (torch.is_tensor(got) and got.shape == want.shape and torch.equal(got.bool(), want)):
            return False
    return True


# %%
# NBVAL_CHECK_OUTPUT
# Exercise 1: replace None with a list of 10 integers
seen = None
check("exercise 1", None if seen is None else ex1_ok(seen))

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 2: replace None with integers
new_tokens_needed = None    # new tokens pushed before the first non-empty packet
first_packet_frames = None  # 50 Hz frames in that packet
check("exercise 2", None if None in (new_tokens_needed, first_packet_frames)
      else ex2_ok(new_tokens_needed, first_packet_frames))

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 3: replace None with integers
frames_cached = None     # Σ over the 20 chunks of the estimator frames per ODE step, cached
frames_recompute = None  # … re-running the prefix
check("exercise 3", None if None in (frames_cached, frames_recompute) else ex3_ok(frames_cached, frames_recompute))


# %%
# NBVAL_CHECK_OUTPUT
# Exercise 4: implement the mask (replace the body; return a (T, T) bool tensor)
def my_attention_mask(kind, T, chunk_size=None, prefix=0, first_chunk=None):
    return None


check("exercise 4", ex4_ok(my_attention_mask))

# %% jupyter={"source_hidden": true}
# NBVAL_CHECK_OUTPUT
# Solutions — try the exercises first.
# 1: the prompt rows see the prompt (3 keys); chunk [3, 7) sees up to 7; the last, short chunk [7, 10) sees all 10.
sol1 = [3] * 3 + [7] * 4 + [10] * 3
# 2: the prompt block needs no new tokens; the first chunk needs its 25 tokens plus P of lookahead → 2·25 frames.
sol2 = (25 + P, UP * 25)
# 3: cached: 20 chunks × 2M frames; re-run: 2M·(1 + 2 + … + 20) = 2M·210.
sol3 = (20 * UP * M, UP * M * 20 * 21 // 2)


# 4: one past the last key of each row, block by block: the prompt, the first chunk, then chunks of C.
def sol4(kind, T, chunk_size=None, prefix=0, first_chunk=None):
    if kind == "non_causal":
        return torch.ones(T, T, dtype=torch.bool)
    C = 1 if kind == "full_causal" else chunk_size
    first = C if first_chunk is None else first_chunk
    ends = []
    for i in range(T):
        if i < prefix:
            end = prefix  # the prompt block
        elif i < prefix + first:
            end = prefix + first  # the first chunk
        else:
            end = prefix + first + C * ((i - prefix - first) // C + 1)  # the later chunks of C
        ends.append(min(end, T))
    return torch.arange(T)[None, :] < torch.tensor(ends, dtype=torch.long)[:, None]  # mask[i, j] = j < end(i)


def wrong4(kind, T, chunk_size=None, prefix=0, first_chunk=None):  # forgets the prompt block and the first chunk
    return sol4(kind, T, chunk_size)


results = [ex1_ok(sol1), ex2_ok(*sol2), ex3_ok(*sol3), ex4_ok(sol4)]
for n, ok in enumerate(results, 1):
    check(f"solution {n}", ok)
check("a wrong mask (no prompt block, no first chunk)", ex4_ok(wrong4))
assert all(results) and ex4_ok(wrong4) is False

# %% [markdown]
# ## Summary
#
# * The four masks are one rule with four block sizes: full-causal (1), chunk-$M$, chunk-$2M$, non-causal ($\ge T$).
#   They nest, every query sees itself, padding hides keys only, and the token mask upsampled ×2 is the frame mask of
#   the same chunks. Training draws one per utterance, so one model serves offline and streaming synthesis.
# * The lookahead convolution (kernel $P + 1$, right-padded by $P$) is the model's only view past the end of a chunk:
#   chunk $k$ is final once the tokens up to its end **plus $P$** have arrived — $M + P$ tokens for the first packet
#   (19 for the tiny preset: 760 ms of speech → 600 ms of mel), $F + P$ with a short first chunk (9 for $F = 5$).
# * A chunk-by-chunk run with a key/value cache equals the offline chunk-masked run only with **fixed noise** (sliced
#   by absolute position) and a chunk that **waits for its lookahead**; the toy showed each mistake changing every
#   position. With both, the flow's cached run (keys/values and conv inputs kept per ODE step) and the official re-run
#   of the whole prefix reproduce the offline chunk-masked mel to float rounding, with or without a prompt.
# * The prompt is one block of $2T_p$ frames per ODE step — the largest block for any prompt longer than a chunk. With
#   `prompt_lookahead="clip"` it depends on the prompt alone and is computed once per voice (`prompt_state`, then
#   `fork`); with `"cross"` it waits for $P$ generated tokens and is recomputed per sentence.
# * The cache keeps the work per chunk flat (frames) or linear (attention); re-running the prefix makes chunk $k$ cost
#   $k + 1$ times as much.

# %% [markdown]
# ## Next
#
# Notebook 05 (`05_vocoding.ipynb`) turns these mel frames into a 24 kHz waveform with a HiFT-style vocoder — and
# streams that too, with caches of its own. Notebook 06 then puts the LM, this flow stream and the vocoder stream
# together and measures the first packet part by part.
