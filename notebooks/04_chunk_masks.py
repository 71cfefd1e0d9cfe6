# %% [markdown]
# # 04 · Chunk masks and lossless streaming in the flow
#
# **What you build here:** the part of CosyVoice 2 that lets *one* flow-matching model synthesise both offline and
# while the LM is still talking.
#
# 1. **The four attention masks** the paper trains with — non-causal, full-causal, chunk-$M$, chunk-$2M$ — drawn,
#    checked property by property, combined with key padding, and drawn per utterance by the trainer.
# 2. **The lookahead convolution** — the only place the model looks right of its chunk: its receptive field,
#    measured with gradients and with token impulses through the whole encoder.
# 3. **Latency arithmetic** — how many 25 Hz tokens the flow must have before it can emit its first 50 Hz mel
#    frames, for the tiny preset ($M = 15$) and the official chunk ($M = 25$).
# 4. **Streaming equals offline** — cached chunk-by-chunk synthesis (`FlowStream`, `mode="cached"`) and the official
#    re-run-the-prefix baseline (`mode="recompute"`) reproduce the offline chunk-masked mel to float rounding.
# 5. **Cost** — the work per chunk, counted by hooks on the package's modules: flat for the cache, growing for the
#    re-run.
# 6. Three checked **exercises**.
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
# **Runtime:** about 35 s on 2 CPU cores (default, tiny preset); nothing is trained and nothing is downloaded. The model
# here has **random weights** on purpose — section 4 says why that is enough.

# %%
# NBVAL_IGNORE_OUTPUT
import os
from collections import Counter

import matplotlib.pyplot as plt
import numpy as np
import torch

from minicosy import ChunkAwareFlow, FlowConfig, attention_mask, pick_device, seed_everything
from minicosy.flow.masks import block_ends, chunk_spans, upsample_mask, with_padding
from minicosy.flow.matching import N_STEPS
from minicosy.flow.train import FlowTrainConfig, make_inputs
from minicosy.nn import Attention
from minicosy.speech_tokenizer.model import SpeechTokenizerConfig

PRESET = os.environ.get("MINICOSY_PRESET", "tiny")  # "paper": the published widths (slow on a CPU; checked outputs are tiny's)
VOCAB = SpeechTokenizerConfig.tiny().codebook_size  # 3^5 = 243 FSQ codes, the tiny speech tokenizer's
seed_everything(0)
torch.set_num_threads(1)  # small models: one thread is fastest, and robust on a shared CPU
plt.rcParams["figure.dpi"] = 60  # small PNGs keep the notebook light
plt.rcParams["image.interpolation"] = "nearest"
MEL_CMAP = plt.get_cmap("magma", 32)
MASK_CMAP = plt.get_cmap("Blues", 3)
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
fig, axes = plt.subplots(1, 4, figsize=(12, 3.4))
for ax, (name, m) in zip(axes, masks.items()):
    ax.imshow(m.numpy(), cmap=MASK_CMAP, vmin=0, vmax=1.5)
    ax.set(title=name, xlabel="key j", xticks=range(0, T_DEMO, 3), yticks=range(0, T_DEMO, 3))
axes[0].set_ylabel("query i")
plt.tight_layout()
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
# processes, in order.

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

fig, axes = plt.subplots(1, 3, figsize=(9, 3.4))
panels = [("chunk 3, prompt of 4", with_prompt), ("chunk 3, length 12", padded[0]), ("chunk 3, length 8 (padded)", padded[1])]
for ax, (name, m) in zip(axes, panels):
    ax.imshow(m.numpy(), cmap=MASK_CMAP, vmin=0, vmax=1.5)
    ax.set(title=name, xlabel="key j", xticks=range(0, T_DEMO, 3), yticks=range(0, T_DEMO, 3))
axes[2].axvline(7.5, color="red", lw=1)
axes[2].axhline(7.5, color="red", lw=1, ls=":")
axes[0].set_ylabel("query i")
plt.tight_layout()
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
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for ax, (kind, d) in zip(axes, dep.items()):
    ax.imshow(d.numpy(), cmap=MASK_CMAP, vmin=0, vmax=1.5, aspect="auto")
    ax.set(title=f"{kind.replace('_', '-')}: which mu frames token j changes", xlabel="mu frame (50 Hz)",
           ylabel="changed token j")
    if kind == "chunk":
        for s, e in spans[1:]:
            ax.axvline(UP * s - 0.5, color="red", lw=1.5)
            ax.axhline(s - 0.5, color="red", lw=1.5, ls="--")  # a chunk's first token
            ax.axhline(s + P - 0.5, color="orange", lw=1.5, ls="--")  # … and P tokens later
plt.tight_layout()
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
# mel frames 50 Hz (20 ms each). A prompt does not count: its tokens are known before synthesis starts.

# %%
# NBVAL_CHECK_OUTPUT
TOKEN_HZ, FRAME_HZ = 25, 50
tiny, paper = FlowConfig.tiny(vocab_size=VOCAB), FlowConfig.paper()
settings = [("minicosy tiny", tiny.chunk_tokens, tiny.lookahead),
            ("minicosy paper()", paper.chunk_tokens, paper.lookahead),
            ("official code", 25, 3)]  # the official runtime: 25-token hop, PreLookaheadLayer with 3
print(f"{'setting':17s} {'M':>3s} {'P':>3s} | first packet needs    | it holds               | then per packet")
for name, Mi, Pi in settings:
    need = Mi + Pi
    print(f"{name:17s} {Mi:3d} {Pi:3d} | {need:2d} tokens = {1000 * need // TOKEN_HZ:4d} ms | "
          f"{UP * Mi:2d} frames = {1000 * UP * Mi // FRAME_HZ:4d} ms | {Mi} tokens → {UP * Mi} frames")
assert (tiny.chunk_tokens, tiny.lookahead) == (15, 4) and paper.chunk_tokens == 25

# %% [markdown]
# So with the tiny preset the LM must produce **19 tokens** (760 ms of speech) before the flow can emit **30 frames**
# (600 ms); the official chunk waits for 28–29 tokens and emits a full second. If the LM runs at real time
# ($d_{lm}$ = 40 ms a token) that waiting alone is 0.76 s; a faster LM shrinks it in proportion. The vocoder then adds
# its own lookahead (notebook 05: it holds back a few frames per run). Section 4 watches the 19 arrive.

# %% [markdown]
# ## 4 · Cached streaming equals offline chunk-masked synthesis
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
fig, ax = plt.subplots(3, 1, figsize=(10, 7.5), gridspec_kw=dict(height_ratios=[2, 2, 1.6]))
ax[0].imshow(offline.numpy(), origin="lower", aspect="auto", cmap=MEL_CMAP)
ax[0].set(title="offline, chunk-masked (untrained model: noise-like on purpose)", ylabel="mel bin")
im = ax[1].imshow((streamed - offline).abs().numpy(), origin="lower", aspect="auto", cmap="viridis")
ax[1].set(title="|cached streaming − offline|: float rounding only", ylabel="mel bin")
fig.colorbar(im, ax=ax[1], pad=0.01)
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
plt.tight_layout()
plt.show()


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
#
# Each check prints *not attempted* until you fill in its answer. The collapsed cell after them holds the solutions
# (and is what keeps the checks themselves honest in CI).

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

# %% jupyter={"source_hidden": true}
# NBVAL_CHECK_OUTPUT
# Solutions — try the exercises first.
# 1: the prompt rows see the prompt (3 keys); chunk [3, 7) sees up to 7; the last, short chunk [7, 10) sees all 10.
sol1 = [3] * 3 + [7] * 4 + [10] * 3
# 2: the prompt block needs no new tokens; the first chunk needs its 25 tokens plus P of lookahead → 2·25 frames.
sol2 = (25 + P, UP * 25)
# 3: cached: 20 chunks × 2M frames; re-run: 2M·(1 + 2 + … + 20) = 2M·210.
sol3 = (20 * UP * M, UP * M * 20 * 21 // 2)
results = [ex1_ok(sol1), ex2_ok(*sol2), ex3_ok(*sol3)]
for n, ok in enumerate(results, 1):
    check(f"solution {n}", ok)
assert all(results)

# %% [markdown]
# ## Summary
#
# * The four masks are one rule with four block sizes: full-causal (1), chunk-$M$, chunk-$2M$, non-causal ($\ge T$).
#   They nest, every query sees itself, padding hides keys only, and the token mask upsampled ×2 is the frame mask of
#   the same chunks. Training draws one per utterance, so one model serves offline and streaming synthesis.
# * The lookahead convolution (kernel $P + 1$, right-padded by $P$) is the model's only view past the end of a chunk:
#   chunk $k$ is final once the tokens up to its end **plus $P$** have arrived — $M + P$ tokens for the first packet
#   (19 for the tiny preset: 760 ms of speech → 600 ms of mel).
# * With fixed noise, a chunk-by-chunk run reproduces the offline chunk-masked mel to float rounding — both the cached
#   run (keys/values and conv inputs kept per ODE step) and the official re-run of the whole prefix.
# * The cache keeps the work per chunk flat (frames) or linear (attention); re-running the prefix makes chunk $k$ cost
#   $k + 1$ times as much.
#
# Next: notebook 05 turns the mel into a waveform — and streams that too.
