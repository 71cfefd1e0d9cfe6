# %% [markdown]
# # 02 · The text-speech LM: sequences, a Qwen2 backbone, and sampling
#
# **What you build here:** the stage of CosyVoice 2 that turns *text* into *speech tokens* — the 25 Hz ids of the
# speech tokenizer (notebook 01), which the flow (notebooks 03–04) turns into a mel spectrogram.
#
# 1. **Text units** — what the LM reads: characters in the tiny preset, BPE in the paper preset, and why; speaker tags.
# 2. **Training sequences** — `build_sequence`: the non-streaming layout `[SOS] text [TASK] speech [EOS]` and the
#    streaming layout that interleaves $N$ text tokens with $M$ speech tokens and predicts **FILL**, drawn for a real
#    recording, every rule checked.
# 3. **The model** — `TextSpeechLM`: a `transformers` Qwen2 backbone fed with embeddings, a speech head over
#    codes + EOS + FILL; its size in the tiny and the paper preset; the KV cache; a short live training.
# 4. **Decoding** — repetition-aware sampling (RAS) on a toy distribution where plain top-p/top-k sampling loops for
#    ever; EOS masking and the length cap.
# 5. **The trained tiny LM** — speech tokens for test sentences in **SFT** (a speaker tag) and **ICL** (a prompt from a
#    voice it never heard), read back as text by the speech tokenizer's own CTC head, with their character error
#    rate; streaming text in, tokens out (bistream), drawn over time.
# 6. **Exercises.**
#
# **Paper.** CosyVoice 2 (Du et al., arXiv 2412.10117) §2.3 and Fig. 2: the unified text-speech LM, its
# non-streaming and streaming sequences, ICL and SFT inference. The backbone is Qwen2.5-0.5B (Qwen Team, arXiv
# 2412.15115). Repetition-aware sampling comes from VALL-E 2 (Chen et al., arXiv 2406.05370, §3.2). The official
# code builds the sequences in `cosyvoice/llm/llm.py` (`Qwen2LM`) and samples with `ras_sampling`
# (`cosyvoice/utils/common.py`). Where minicosy departs from the paper or the official code:
# `docs/paper_vs_code.md` §2 ("Text-speech LM") and §5.
#
# **Code.** `minicosy/lm/sequence.py` (layouts), `minicosy/lm/model.py` (the model), `minicosy/lm/sampling.py`
# (RAS, masks, limits), `minicosy/lm/generate.py` (ICL / SFT, streaming, bistream), `minicosy/lm/train.py`,
# `minicosy/lm/evaluate.py` (`minicosy eval lm`), `minicosy/text/chars.py` (characters and speaker tags).
#
# **Prerequisites.** Notebook 00 (text normalisation, BPE), notebook 01 (the FSQ speech tokenizer and its CTC head).
#
# **Runtime.** Well under the 90 s budget on 2 CPU cores (default, tiny preset). Nothing long is trained here: the
# committed checkpoint came from `minicosy train lm --preset tiny`, and its training budget is read from its JSON in
# section 5. Everything runs on the CPU on purpose (the models are small and the checked figures are CPU figures),
# so a GPU changes nothing.
#
# **Contents.** 1 · text units · 2 · training sequences · 3 · the model · 4 · decoding · 5 · the trained LM ·
# 6 · exercises.

# %%
# NBVAL_IGNORE_OUTPUT
import itertools
import math
import os
import random
from collections import Counter
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import to_rgb
from matplotlib.patches import Patch

from minicosy import (CharTokenizer, LMConfig, SpeechTokenizer, TextSpeechLM, TextTokenizer, build_sequence,
                      load_audio, pick_device, seed_everything)
from minicosy.data.corpus import HELDOUT_VOICES, VOICES
from minicosy.data.manifest import read_manifest
from minicosy.data.sentences import generate_sentences
from minicosy.judges import cer
from minicosy.lm.evaluate import SCENARIOS, evaluate_lm
from minicosy.lm.generate import encode_icl, generate, generate_bistream
from minicosy.lm.sampling import SamplingConfig, length_limits, mask_logits, nucleus_sample, ras_sample
from minicosy.lm.sequence import IGNORE, KINDS, M_SPEECH, N_TEXT, can_stream, head_size, to_tensors
from minicosy.lm.train import TrainConfig, fixed_examples, make_example, validate
from minicosy.text.chars import FIRST_CHAR_ID, PAD_ID, UNK_ID
from minicosy.text.normalize import normalize_english
from minicosy.utils import FIXTURES_DIR, REPO_ROOT

PRESET = os.environ.get("MINICOSY_PRESET", "tiny")  # only the tiny checkpoints are committed
PRETRAINED = REPO_ROOT / "data" / "pretrained" / PRESET  # paths from the repository root
seed_everything(0)
# The committed LM learned from corpus v2: its train voices are those of the first twenty rows of today's voice
# table (corpus v3 adds fourteen it never heard; notebook 00).
TRAIN_VOICES = [v.id for v in VOICES[:20] if v.role == "train"]
torch.set_num_threads(1)  # small models: one thread is fastest, and robust on a shared CPU
plt.rcParams["figure.dpi"] = 60  # small PNGs keep the notebook light
device = torch.device("cpu")  # pinned: the models are small, and every checked figure is a CPU figure
print(f"device: {device} (pinned; pick_device() would choose {pick_device()}) | preset: {PRESET}")

# %%
fixtures = read_manifest(FIXTURES_DIR)  # the small committed slice of the corpus (notebook 00)


def fixture(voice, split="test"):
    return next(u for u in fixtures if u.voice == voice and u.split == split)


st = SpeechTokenizer.from_pretrained(PRETRAINED, device=device)  # the committed FSQ tokenizer (notebook 01)
C = st.codebook_size
# speech tokens of every fixture clip stored at 16 kHz, the tokenizer's own rate (no resampling needed)
clips16 = [u for u in fixtures if u.sample_rate == 16000]
tokens = dict(zip([u.id for u in clips16],
                  st.encode_batch([load_audio(FIXTURES_DIR / u.path, 16000) for u in clips16], 16000)))
print(f"{len(tokens)} fixture clips → speech tokens; codebook C = {C}")

# %% [markdown]
# ## 1 · Text units: characters or BPE?
#
# CosyVoice 2 feeds the LM **BPE** tokens straight from raw text — no grapheme-to-phoneme front end (§2.1) — because
# its backbone is a pre-trained text LLM (Qwen2.5) with its own BPE. The LM must then learn *how each BPE token
# sounds*, from data. With hundreds of thousands of hours that works. minicosy's corpus has about ten hours, and the
# project measured the consequence before building the LM (a probe on corpus v1 with the same 4 × 256 Qwen2 and
# the same budget, `docs/paper_vs_code.md` §5): speech tokens generated from **BPE** text read back at about 65 %
# CER, from **characters** at about 34 % — half. So:
#
# * `LMConfig.tiny()` reads **characters** (`CharTokenizer`, a documented departure from the paper);
# * `LMConfig.paper()` keeps the **BPE** (`TextTokenizer`, with the paper's CJK masking, notebook 00).
#
# Below: one sentence in both units, then the reason in numbers — how often each unit occurs in text like the
# corpus's (the sentence generator the corpus reads).

# %%
# NBVAL_CHECK_OUTPUT
bpe = TextTokenizer.from_pretrained()  # the committed 1,024-token BPE of notebook 00
chars = CharTokenizer()
u = fixture("flite_awb", "train")
norm = normalize_english(u.text, lowercase=True)
print(f"text:  {u.text!r}  →  normalised {norm!r}")
print(f"BPE   ({bpe.vocab_size} ids): {len(bpe.encode(norm)):2d} tokens {bpe.tokens(norm)}")
print(f"chars ({chars.n_chars} ids):   {len(chars.encode(u.text)):2d} tokens {[chars.decode([i]) for i in chars.encode(u.text)]}")
assert chars.decode(chars.encode(u.text)) == norm  # characters round-trip the normalised text

# %%
# NBVAL_CHECK_OUTPUT
sentences = generate_sentences(6400)  # as many sentences as the corpus's train voices read
count_bpe = Counter(i for ids in bpe.encode_batch([normalize_english(s, lowercase=True) for s in sentences]) for i in ids)
count_chr = Counter(i for s in sentences for i in chars.encode(s))
for name, cnt, vocab in (("BPE", count_bpe, bpe.vocab_size), ("chars", count_chr, chars.n_chars)):
    occ = np.array(sorted(cnt.values()))
    print(f"{name:5s}: {len(cnt):4d} of {vocab:4d} ids occur | median occurrences per unit {int(np.median(occ)):5d} | "
          f"units seen < 50 times: {(occ < 50).mean():.0%} | tokens per sentence {occ.sum() / len(sentences):.1f}")
assert np.median(list(count_chr.values())) > 20 * np.median(list(count_bpe.values()))

# %%
fig, ax = plt.subplots(figsize=(7, 3))
for name, cnt in (("BPE (1,024 ids)", count_bpe), ("characters", count_chr)):
    ax.loglog(np.arange(1, len(cnt) + 1), sorted(cnt.values(), reverse=True), ".-", ms=3, label=name)
ax.axhline(50, color="grey", lw=0.6, ls="--")
ax.set(xlabel="unit rank", ylabel="occurrences", title="How often the LM sees each text unit (6,400 sentences)")
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# Characters are few and each one is seen thousands of times; a typical BPE token is seen a few dozen times, and a
# long tail barely at all — too few examples to learn what it sounds like. A character sequence is about three times
# longer, which the LM's attention can afford at these lengths.
#
# **Speaker tags (SFT).** Without a prompt recording, which voice should the LM speak in? The paper's multi-speaker
# fine-tuning prepends a tag such as `Speaker A<|endofprompt|>` to the text. minicosy gives every training voice
# one special text id, `<|spk:NAME|>`, placed after the alphabet. The vocabulary layout is fixed (pad, unk, the
# 32 characters, then `max_speakers` tag slots) so that the LM's text embedding has a known size before training.
# In training the tag is put before the text half of the time, so the model also learns to speak *without* a tag —
# what ICL (a prompt recording) relies on.

# %%
# NBVAL_CHECK_OUTPUT
tag_tok = CharTokenizer(TRAIN_VOICES)  # one tag per train voice, in this order
ids = [tag_tok.speaker_id("flite_awb")] + tag_tok.encode("Hi, 2 cats!")
print("ids:    ", ids)
print("decoded:", tag_tok.decode(ids))
print(f"layout: pad {PAD_ID} | unk {UNK_ID} | characters {FIRST_CHAR_ID}..{tag_tok.n_chars - 1} | "
      f"tag slots {tag_tok.n_chars}..{tag_tok.vocab_size - 1} ({len(tag_tok.speakers)} in use)")
assert tag_tok.vocab_size == LMConfig.tiny().text_vocab_size  # the tiny LM's text embedding holds every id
assert tag_tok.encode("hello") + tag_tok.encode(" world") == tag_tok.encode("hello world")  # piecewise = whole

# %% [markdown]
# ## 2 · Training sequences: `build_sequence`
#
# The LM is a decoder-only transformer: at every position it predicts the next item. CosyVoice 2 trains it on two
# layouts of the same utterance (text $t_1..t_L$, speech tokens $s_1..s_T$), mixed in one model (§2.3, Fig. 2):
#
# **Non-streaming.**
# $$\text{input: } [\text{SOS}]\ t_1 \dots t_L\ [\text{TASK}]\ s_1 \dots s_T \qquad
# \text{target: } \underbrace{-\ \dots\ -}_{L+1}\ s_1\ s_2 \dots s_T\ [\text{EOS}]$$
# No loss on SOS or the text; the output at TASK predicts $s_1$, the output at $s_T$ predicts EOS.
#
# **Streaming ($N$ text : $M$ speech).** For every *full* block of $N$ text tokens: the $N$ text inputs, then the
# block's $M$ speech inputs. The last text input of a block predicts the block's first speech token, and the last
# speech input predicts **FILL** — "I have spoken all the text I was given; give me more". Then the $0..N-1$ leftover
# text tokens, TASK (always there), the remaining speech, EOS. FILL is a target only, never an input. The paper uses
# $N{:}M = 5{:}15$ for BPE text; the tiny preset reads characters, about three times more text units per second, and
# uses $15{:}15$ (`LMConfig.mix_n`, `mix_m`).
#
# Both layouts have exactly the same inputs — SOS, the $L$ text tokens, TASK, the $T$ speech tokens — in a different
# order. Here is a real one: a training sentence of the fixture slice with its speaker tag, and its speech tokens
# from the committed tokenizer.

# %%
cfg = LMConfig.tiny()
N, M = cfg.mix_n, cfg.mix_m
u = fixture("flite_awb", "train")
speech = tokens[u.id].tolist()
text_ids = [tag_tok.speaker_id(u.voice)] + tag_tok.encode(u.text)  # SFT-style: tag + characters
L, T = len(text_ids), len(speech)
inp, tgt = build_sequence(text_ids, speech, streaming=False)
inp_s, tgt_s = build_sequence(text_ids, speech, streaming=True, n=N, m=M)


def runs(items):
    # run-length summary: "text×15 speech×15 ..."
    out = []
    for x in items:
        if out and out[-1][0] == x:
            out[-1][1] += 1
        else:
            out.append([x, 1])
    return " ".join(f"{k}×{n}" if n > 1 else k for k, n in out)


def show(inputs, targets):
    print("  inputs :", runs([k.upper() if k in ("sos", "task") else k for k, _ in inputs]))
    print("  targets:", runs(["–" if t is None else t[0].upper() if t[0] in ("eos", "fill") else t[0] for t in targets]))


# %%
# NBVAL_CHECK_OUTPUT
print(f"{u.text!r} ({u.voice}): L = {L} text ids (tag + {L - 1} characters), T = {T} speech tokens "
      f"= {round(u.duration, 2)} s × 25 Hz")
print(f"non-streaming ({len(inp)} positions):")
show(inp, tgt)
print(f"streaming, N:M = {N}:{M} ({len(inp_s)} positions):")
show(inp_s, tgt_s)

# %%
COLOURS = {"sos": "#7f7f7f", "text": "#4c72b0", "task": "#8172b2", "speech": "#dd8452",
           "–": "#eeeeee", "eos": "#c44e52", "fill": "#55a868"}


def draw_layout(ax, inputs, targets, title):
    rows = [[k for k, _ in inputs], ["–" if t is None else t[0] for t in targets]]
    ax.imshow(np.array([[to_rgb(COLOURS[k]) for k in row] for row in rows]), aspect="auto")
    for i, (k, v) in enumerate(inputs):
        if k == "text":
            ch = tag_tok.decode([v])
            ax.text(i, 0, "spk" if ch.startswith("<|") else ch.replace(" ", "·"), ha="center", va="center",
                    fontsize=6 if len(ch) == 1 else 4, color="white")
    for i, t in enumerate(targets):
        if t is not None and t[0] in ("eos", "fill"):
            ax.text(i, 1, t[0][0].upper(), ha="center", va="center", fontsize=7, color="white", weight="bold")
    ax.set_yticks([0, 1], ["input", "target"])
    ax.set_title(title, fontsize=10)


fig, axes = plt.subplots(2, 1, figsize=(14, 3.6), dpi=80)  # a little sharper: the characters are labelled
draw_layout(axes[0], inp, tgt, "non-streaming: [SOS] text [TASK] speech → loss on speech and EOS")
draw_layout(axes[1], inp_s, tgt_s, f"streaming {N}:{M}: blocks of {N} text + {M} speech, FILL (F) after each block")
axes[1].set_xlabel("position")
fig.legend(handles=[Patch(color=c, label=k if k != "–" else "no loss") for k, c in COLOURS.items()],
           loc="lower center", ncol=7, fontsize=8, frameon=False)
plt.tight_layout(rect=(0, 0.07, 1, 1))
plt.show()


# %% [markdown]
# The rules, checked on this utterance. One rule covers teacher forcing in both layouts: **every speech input is the
# target of the position just before it** (the model is always asked for the token it will be fed next). The
# remaining targets are EOS (once, at the end) and FILL (once per full block).

# %%
def check_layout(inputs, targets, text_ids, speech, n_blocks):
    kinds = [k for k, _ in inputs]
    assert len(inputs) == len(targets) == 1 + len(text_ids) + 1 + len(speech)  # SOS, text, TASK, speech
    assert kinds[0] == "sos" and kinds.count("task") == 1  # TASK is always there
    assert [i for k, i in inputs if k == "text"] == text_ids and [i for k, i in inputs if k == "speech"] == speech
    for i in range(len(inputs) - 1):  # teacher forcing: each speech input is the previous position's target
        if kinds[i + 1] == "speech":
            assert targets[i] == ("speech", inputs[i + 1][1])
    assert targets[-1] == ("eos", None) and [t for t in targets if t and t[0] == "eos"] == [("eos", None)]
    fills = [i for i, t in enumerate(targets) if t == ("fill", None)]
    assert len(fills) == n_blocks and "fill" not in kinds  # FILL: a target after each block, never an input
    for b, i in enumerate(fills):  # ... at the block's M-th speech input, followed by text (or TASK)
        assert inputs[i] == ("speech", speech[(b + 1) * M - 1]) and kinds[i + 1] in ("text", "task")
    task = kinds.index("task")
    assert targets[task] == ("speech", speech[n_blocks * M])  # TASK predicts the first speech token after the blocks
    assert all(t is None for t, k in zip(targets, kinds) if k in ("sos",))  # no loss on SOS
    return task


task = check_layout(inp, tgt, text_ids, speech, n_blocks=0)
assert tgt[task] == ("speech", speech[0])  # non-streaming: the output at TASK predicts speech_1
assert all(t is None for t in tgt[:task])  # ... and nothing before TASK carries a loss
task_s = check_layout(inp_s, tgt_s, text_ids, speech, n_blocks=L // N)
first = [k for k, _ in inp_s].index("speech")
assert tgt_s[first - 1] == ("speech", speech[0])  # streaming: the block's last text input predicts speech_1

# text of a length that is a multiple of N: no leftover text, but TASK is still there
inp2, tgt2 = build_sequence(text_ids[:2 * N], speech, streaming=True, n=N, m=M)
check_layout(inp2, tgt2, text_ids[:2 * N], speech, n_blocks=2)
assert inp2[1 + 2 * (N + M)] == ("task", None)
print("every layout rule holds, for both layouts")

# %% [markdown]
# **When may an utterance stream?** Every full text block must be followed by $M$ real speech tokens. With too few,
# `build_sequence` refuses (`ValueError`), and the trainer uses the non-streaming layout for that utterance. The
# paper's rule for *choosing* streaming is stricter, $T/L > M/N$ — the speech must outrun the text
# (`can_stream`) — and the trainer then streams with probability 0.5 (`use_streaming`). The same sentence with the
# paper's 5:15 ratio on *characters* shows why the tiny preset needs 15:15:

# %%
# NBVAL_CHECK_OUTPUT
for n, m in ((N, M), (N_TEXT, M_SPEECH)):
    need = (L // n) * m
    try:
        build_sequence(text_ids, speech, streaming=True, n=n, m=m)
        outcome = "builds"
    except ValueError as e:
        outcome = f"ValueError: {e}"
    print(f"N:M = {n}:{m}: {L // n} full blocks need {need} speech tokens, we have {T} → {outcome}")
for short in (speech[:(L // N) * M - 1], []):
    try:
        build_sequence(text_ids, short, streaming=True, n=N, m=M)
        raise AssertionError("too little speech must be refused")
    except ValueError:
        pass
print()
rows = [(len(tag_tok.encode(x.text)) + 1, len(tokens[x.id])) for x in clips16]
print(f"fixture clips: {sum(t for _, t in rows) / sum(l for l, _ in rows):.2f} speech tokens per text id (tag included)")
for n, m in ((N, M), (N_TEXT, M_SPEECH)):
    print(f"  may stream under the rule T/L > M/N with N:M = {n}:{m}: "
          f"{sum(can_stream(l, t, n, m) for l, t in rows)} of {len(rows)}")

# %% [markdown]
# **Batches.** `to_tensors` turns a batch of `(inputs, targets)` into padded tensors: a *kind* code per position
# (`KINDS`: pad 0, SOS 1, text 2, TASK 3, speech 4), the text or speech id, and the target as an index of the speech
# head — a speech code $0..C{-}1$, **EOS = C**, **FILL = C + 2** ($C+1$ is the official code's unused slot), or
# `IGNORE` (−100, no loss). Right padding needs no attention mask: causal attention never lets a real position see
# a pad that comes after it.

# %%
# NBVAL_CHECK_OUTPUT
batch = to_tensors([(inp, tgt), (inp_s, tgt_s), (inp2, tgt2)], C)
print({k: tuple(v.shape) for k, v in batch.items()}, "lengths", batch["lengths"].tolist())
tg = batch["targets"]
print(f"head size C + 3 = {head_size(C)}: EOS = {C}, FILL = {C + 2}")
print("loss positions per row:", (tg != IGNORE).sum(1).tolist(), "| EOS per row:", (tg == C).sum(1).tolist(),
      "| FILL per row:", (tg == C + 2).sum(1).tolist())
assert (tg == C + 1).sum() == 0 and batch["kinds"][2, batch["lengths"][2]:].eq(KINDS["pad"]).all()
assert (tg != IGNORE).sum(1).tolist() == [T + 1, T + 1 + L // N, T + 1 + 2]  # speech + EOS (+ one FILL a block)

# %% [markdown]
# ## 3 · The model: a Qwen2 backbone fed with embeddings
#
# CosyVoice 1 had a text encoder and fed a speaker embedding to its LM; CosyVoice 2 drops both and takes a
# pre-trained text LLM, Qwen2.5-0.5B, as is (§2.3). What is left (`TextSpeechLM`):
#
# * the backbone, `transformers.Qwen2Model` called with `inputs_embeds` — its own token embedding **is** the text
#   embedding (characters + speaker tags here, Qwen's BPE in the paper);
# * a **speech embedding** of the $C$ codes (EOS and FILL are never inputs, so they have no embedding);
# * two input-only embeddings, **SOS** and **TASK**;
# * a **speech head**, a linear layer to $C + 3$ logits: codes, EOS, the unused slot, FILL.
#
# `embed` routes each position to its table by its kind. The cell checks the routing by hand on the batch above.

# %%
seed_everything(0)
fresh = TextSpeechLM(LMConfig.tiny()).eval()  # random weights
k, i = batch["kinds"], batch["ids"]
x = fresh.embed(k, i)  # (B, T, d)
with torch.no_grad():
    for kind, table in (("text", fresh.text_embedding.weight), ("speech", fresh.speech_embedding.weight)):
        m = k == KINDS[kind]
        assert torch.equal(x[m], table[i[m]])
    assert torch.equal(x[k == KINDS["sos"]], fresh.special_embedding.weight[0].expand(3, -1))
    assert torch.equal(x[k == KINDS["task"]], fresh.special_embedding.weight[1].expand(3, -1))
    assert x[k == KINDS["pad"]].abs().sum() == 0
    logits = fresh(k, i)
    loss = fresh.loss(batch)["loss"].item()
assert logits.shape == (3, batch["kinds"].shape[1], head_size(C))
assert abs(loss - math.log(head_size(C))) < 0.3  # an untrained head is nearly uniform: loss ≈ ln(C + 3)
print(f"logits {tuple(logits.shape)}; untrained loss {loss:.2f} ≈ ln({head_size(C)}) = {math.log(head_size(C)):.2f}")


# %% [markdown]
# **Sizes.** Two presets of one recipe: `tiny()` trains on two CPU cores; `paper()` has the sizes of Qwen2.5-0.5B
# (24 layers, 896 wide, 14 query and 2 key-value heads — grouped-query attention — FFN 4,864, a 151,936-token
# vocabulary) with the official 6,561 FSQ codes. The paper preset is built on PyTorch's `meta` device: shapes
# without memory, so it can be costed here in milliseconds but never run. (`TextSpeechLM(cfg, init_from=dir)` loads
# real Qwen2 weights from a local folder where one exists.)

# %%
# NBVAL_CHECK_OUTPUT
def breakdown(model):
    n = lambda mod: sum(p.numel() for p in mod.parameters())  # noqa: E731
    parts = {"text embedding": n(model.text_embedding), "speech embedding": n(model.speech_embedding),
             "SOS + TASK": n(model.special_embedding), "transformer layers": n(model.backbone.layers),
             "final norm": n(model.backbone.norm), "speech head": n(model.head)}
    assert sum(parts.values()) == model.num_parameters()
    return parts


with torch.device("meta"):
    paper = TextSpeechLM(LMConfig.paper())
sizes = {"tiny": breakdown(fresh), "paper": breakdown(paper)}
print(f"{'':20s} {'tiny':>14s} {'paper':>14s}")
for part in sizes["tiny"]:
    print(f"{part:20s} {sizes['tiny'][part]:14,d} {sizes['paper'][part]:14,d}")
print(f"{'total':20s} {fresh.num_parameters():14,d} {paper.num_parameters():14,d}")
for name, m in (("tiny", fresh), ("paper", paper)):
    c = m.cfg
    print(f"{name}: {c.n_layers} layers × {c.d_model}, {c.n_heads} query / {c.n_kv_heads} key-value heads, FFN {c.d_ff}, "
          f"text vocab {c.text_vocab_size} ({c.text_unit}), head {m.head.out_features} = {c.codebook_size} codes + 3, "
          f"N:M {c.mix_n}:{c.mix_m}")
# Qwen2.5-0.5B as published with its weights: 0.49 B parameters, 0.36 B of them outside the embedding
backbone = sizes["paper"]["text embedding"] + sizes["paper"]["transformer layers"] + sizes["paper"]["final norm"]
assert round(backbone / 1e9, 2) == 0.49 and round(sizes["paper"]["transformer layers"] / 1e9, 2) == 0.36
assert (paper.eos, paper.fill, paper.head.out_features) == (6561, 6563, 6564)  # the official token ids

# %% [markdown]
# **The KV cache.** At inference the LM produces one token at a time. Re-running the whole prefix for each new token
# costs $O(t)$ per step; the cache keeps every layer's keys and values, so a step only computes the new position
# (`new_cache()` → a `transformers` `DynamicCache`, passed as `cache=`). The logits must not change:

# %%
row = batch["kinds"][1:2, :40], batch["ids"][1:2, :40]  # the first 40 positions of the streaming sequence
with torch.no_grad():
    full = fresh(*row)  # one causal pass
    cache = fresh.new_cache()
    steps = [fresh(row[0][:, :10], row[1][:, :10], cache=cache)]  # a 10-position prefix ...
    steps += [fresh(row[0][:, t:t + 1], row[1][:, t:t + 1], cache=cache) for t in range(10, 40)]  # ... then 1 by 1
incremental = torch.cat(steps, dim=1)
assert torch.allclose(full, incremental, atol=1e-4), "cached incremental logits must equal the full pass"
print("max |full − incremental| < 1e-4:", float((full - incremental).abs().max()) < 1e-4)


# %% [markdown]
# **A short live training.** The committed model trained for over an hour (section 5). To see the loop itself, train
# a micro version (2 layers × 64) on the 16 kHz *train* clips of the fixture slice, with the trainer's own
# pieces: `make_example` draws each utterance's layout (streaming with probability 0.5 where it may) and speaker tag
# afresh every step, `to_tensors` batches, `model.loss` is the cross-entropy on the targets, and `validate` scores
# the fixture *valid* clips — sentences the model never sees.

# %%
def as_data(split):
    return [{"id": x.id, "voice": x.voice, "text_ids": tag_tok.encode(x.text), "speech": tokens[x.id].tolist()}
            for x in clips16 if x.split == split]


train_d, valid_d = as_data("train"), as_data("valid")
seed_everything(0)
micro_cfg = replace(LMConfig.tiny(), d_model=64, n_layers=2, d_ff=256, dropout=0.0)
micro = TextSpeechLM(micro_cfg)
tc = TrainConfig()
valid_ex = fixed_examples(valid_d, tag_tok, micro_cfg, tc)  # layouts drawn once: comparable across steps
opt = torch.optim.AdamW(micro.parameters(), lr=3e-3)
rng = random.Random(0)
curve = []
for step in range(1, 51):
    micro.train()
    out = micro.loss(to_tensors([make_example(d, tag_tok, micro_cfg, rng, tc.p_streaming, tc.p_speaker_tag)
                                 for d in train_d], C))
    opt.zero_grad()
    out["loss"].backward()
    opt.step()
    if step % 5 == 0 or step == 1:
        curve.append((step, out["loss"].item(), validate(micro, valid_ex, tc.batch_tokens)["valid_loss"]))
steps_, train_l, valid_l = map(np.array, zip(*curve))
assert train_l[-1] < 0.5 * train_l[0], "the micro LM must fit its train utterances"
assert valid_l.min() < valid_l[0] and valid_l[-1] > valid_l.min(), "... and overfit them: valid loss turns back up"
print(f"{len(train_d)} train / {len(valid_d)} valid utterances, {micro.num_parameters():,d} parameters; "
      f"best valid loss at step {int(steps_[valid_l.argmin()])}")

# %%
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(steps_, train_l, "o-", ms=3, label=f"train ({len(train_d)} utterances)")
ax.plot(steps_, valid_l, "o-", ms=3, label="valid (unseen sentences)")
ax.axhline(math.log(head_size(C)), color="grey", lw=0.6, ls="--", label="ln(C + 3): knows nothing")
ax.set(xlabel="step", ylabel="cross-entropy", title=f"A micro LM memorises {len(train_d)} utterances")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()


# %% [markdown]
# A dozen utterances are learnt by heart in a few dozen steps while the loss on unseen sentences turns back up: the
# LM's main enemy on small data is overfitting. The real trainer (`minicosy train lm`) therefore uses dropout 0.2 on
# the input embeddings and before the head, weight decay, length-bucketed batches of the whole corpus, and exports
# the model with the **best validation loss** (early stopping).

# %% [markdown]
# ## 4 · Decoding: repetition-aware sampling, EOS masking, length limits
#
# Speech tokens repeat a lot (a held vowel is the same code several times at 25 Hz), and the most likely next token
# is often the one just produced. Nucleus (top-p) sampling keeps the fewest tokens whose probability reaches
# $p = 0.8$: when the current token alone has $> 0.8$, it is the *only* candidate, and a small LM falls into a loop
# it never leaves. **Repetition-aware sampling** (RAS, VALL-E 2) keeps nucleus sampling but checks the candidate
# against the recent window:
#
# $$\hat y \sim \text{nucleus}(p_t;\ \text{top-}p = 0.8,\ \text{top-}k = 25), \qquad
# \text{if}\ \#\{\hat y \in y_{t-w..t-1}\} \ge \tau w:\ \ \hat y \sim p_t \ \text{(the full distribution)}$$
#
# with window $w = 10$ and $\tau = 0.1$ (the official defaults), so a candidate already in the window once is
# redrawn. First, RAS written from scratch and checked against `ras_sample` draw for draw:

# %%
def ras_from_scratch(logits, history, top_p=0.8, top_k=25, window=10, tau=0.1, gen=None):
    probs = logits.softmax(-1)
    p_sorted, idx = probs.sort(descending=True, stable=True)
    keep = (p_sorted.cumsum(0) - p_sorted < top_p) & (torch.arange(len(probs)) < top_k)  # nucleus ∩ top-k
    p_kept = p_sorted * keep
    cand = int(idx[torch.multinomial(p_kept / p_kept.sum(), 1, generator=gen)])
    if history[-window:].count(cand) >= tau * window:  # the candidate already fills ≥ τ of the window
        cand = int(torch.multinomial(probs, 1, generator=gen))  # → redraw from the full distribution
    return cand


g1, g2, g_logits = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
ours, pkg = [], []
for _ in range(300):
    logits = 3 * torch.randn(40, generator=g_logits)
    ours.append(ras_from_scratch(logits, ours, gen=g1))
    pkg.append(ras_sample(logits, pkg, SamplingConfig(), g2))
assert ours == pkg, "the from-scratch RAS must equal the package's ras_sample"
print("300 draws: from scratch == ras_sample:", ours == pkg)

# %% [markdown]
# **A loop, and the way out.** A toy "LM" over 12 tokens puts probability $0.82$ on repeating the previous token and
# spreads the rest evenly. Nucleus sampling keeps only the repeated token — an endless loop. Under RAS the candidate
# (again the previous token) is always in the window, so every step is redrawn from the full distribution: the token
# now repeats with probability $0.82$, and a run of one token lasts $1/(1-0.82) \approx 5.6$ steps on average — a held
# sound that ends.

# %%
# NBVAL_CHECK_OUTPUT
V, P_STAY = 12, 0.82


def toy_logits(prev):
    p = torch.full((V,), (1 - P_STAY) / (V - 1))
    p[prev] = P_STAY
    return p.log()


def run_lengths(seq):
    return [len(list(g)) for _, g in itertools.groupby(seq)]


def sample(sampler, n, seed):
    g, seq = torch.Generator().manual_seed(seed), [0]
    for _ in range(n):
        seq.append(sampler(toy_logits(seq[-1]), seq, g))
    return seq


plain = sample(lambda lg, seq, g: nucleus_sample(lg, 0.8, 25, g), 80, 0)
ras = sample(lambda lg, seq, g: ras_sample(lg, seq, SamplingConfig(), g), 80, 0)
for name, seq in (("nucleus (top-p 0.8, top-k 25)", plain), ("repetition-aware (RAS)", ras)):
    print(f"{name:30s}: {len(set(seq)):2d} distinct tokens, longest run {max(run_lengths(seq)):2d} of {len(seq)}")
long = sample(lambda lg, seq, g: ras_sample(lg, seq, SamplingConfig(), g), 3000, 1)
mean_run = float(np.mean(run_lengths(long)))
print(f"RAS over 3,000 steps: mean run {mean_run:.1f} tokens; 1 / (1 − {P_STAY}) = {1 / (1 - P_STAY):.1f}")
assert plain == [0] * 81 and max(run_lengths(ras)) < 30 and abs(mean_run - 1 / (1 - P_STAY)) < 0.6

# %%
fig, ax = plt.subplots(figsize=(9, 2.6))
ax.step(range(len(plain)), plain, where="post", lw=1.5, label="nucleus: stuck on token 0")
ax.step(range(len(ras)), ras, where="post", lw=1, label="RAS: held, then moves on")
ax.set(xlabel="step", ylabel="token", yticks=range(V), title="The same toy LM, two samplers")
ax.legend(fontsize=8, loc="upper right")
plt.tight_layout()
plt.show()

# %% [markdown]
# **When to stop.** The LM ends an utterance by predicting EOS. Two rules keep it honest (`length_limits`,
# `mask_logits`): EOS is **masked** (logit $-\infty$) until at least $\lfloor r_\min |x| \rfloor$ tokens exist, and
# generation is **cut** at $\lfloor r_\max |x| \rfloor$ tokens, where $|x|$ counts the text ids to speak (not the
# speaker tag, not the prompt's transcript). The official ratios are 2 and 20 per BPE token; the tiny preset reads
# characters, about 1.4 speech tokens each, and uses 0.5 and 5. The unused slot $C{+}1$ is always masked, and FILL
# is never *sampled*: in streaming it is forced by the fixed $N{:}M$ schedule. Two untrained models make the rules
# visible: one whose head loves EOS (it stops the first moment EOS is allowed), one that never says EOS (the cap
# stops it).

# %%
# NBVAL_CHECK_OUTPUT
sentence = "Who tried my shirt after work?"
n_text = len(tag_tok.encode(sentence))
lo, hi = length_limits(n_text, cfg.min_token_text_ratio, cfg.max_token_text_ratio)
print(f"{sentence!r}: {n_text} characters → EOS masked below {lo} tokens, cap at {hi} "
      f"(ratios {cfg.min_token_text_ratio} and {cfg.max_token_text_ratio})")
masked = mask_logits(torch.zeros(head_size(C)), C, allow_eos=False)
print("logits of [EOS, unused, FILL] while EOS is masked:", masked[C:].tolist())

toy_cfg = replace(LMConfig.tiny(), d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, d_ff=64, dropout=0.0)
results = {}
for name, bias in (("loves EOS", 50.0), ("never EOS", -50.0)):
    seed_everything(0)
    toy = TextSpeechLM(toy_cfg).eval()
    with torch.no_grad():
        toy.head.bias[toy.eos] = bias
    s = generate(toy, tag_tok.encode(sentence), speaker_id=tag_tok.speaker_id("flite_rms"),
                 generator=torch.Generator().manual_seed(0))
    results[name] = (len(s.run()), s.eos)
    print(f"model that {name}: {results[name][0]:3d} tokens, ended with EOS: {s.eos}")
assert results == {"loves EOS": (lo, True), "never EOS": (hi, False)}

# %% [markdown]
# ## 5 · The trained tiny LM
#
# `minicosy train lm --preset tiny` trained the 4 × 256 model on the corpus's cached speech tokens and exported the
# weights with the best validation loss to `data/pretrained/tiny/lm.{safetensors,json}`. The JSON holds the config,
# the character tokenizer (with the speaker tags of every training voice) and the training notes; the figures below
# are read from it.

# %%
# NBVAL_CHECK_OUTPUT
lm = TextSpeechLM.from_pretrained(PRETRAINED / "lm", device=device)
tok = lm.text_tokenizer()
trained = lm.meta.get("trained", {})
best = trained.get("best_valid", {})
print(f"{lm.num_parameters() / 1e6:.2f} M parameters, stored as {lm.meta['dtype']}; "
      f"text unit {lm.cfg.text_unit}, N:M {lm.cfg.mix_n}:{lm.cfg.mix_m}")
print(f"trained {trained.get('steps')} steps, {trained.get('minutes')} min on {trained.get('device')}, "
      f"{trained.get('train_utterances')} utterances of {len(trained.get('train_voices', []))} voice ids")
print(f"best valid loss {best.get('valid_loss', float('nan')):.3f}, teacher-forced top-1 accuracy "
      f"{best.get('valid_acc', float('nan')):.3f} (step {best.get('step')})")
assert lm.cfg.codebook_size == C, "the LM must speak the committed tokenizer's codes"
assert set(TRAIN_VOICES) <= set(tok.speakers) and not set(HELDOUT_VOICES) & set(tok.speakers)

# %%
history = trained.get("history")  # per-evaluation rows, if the checkpoint stores them
if history:
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot([r["minutes"] for r in history], [r["valid_loss"] for r in history], "o-", ms=3)
    ax.set(xlabel="minutes", ylabel="valid loss", title="training history of the committed LM")
    plt.tight_layout()
    plt.show()
else:
    print("this checkpoint stores only its best validation row, no history to plot "
          "(the training run's own log is runs/lm_tiny/log.jsonl)")

# %% [markdown]
# **Two ways to choose the voice** (§2.3):
#
# * **SFT** — `[SOS] <|spk:NAME|> text [TASK]`, then generate: a voice seen in training, named by its tag.
# * **ICL** (zero-shot) — `[SOS] prompt_text + text [TASK] prompt_speech`, then *continue*: the LM hears a few seconds of
#   a voice with their transcript and goes on in that voice. Here the prompt is a recording of **mbrola_us3**, a
#   held-out voice that no model of minicosy ever trained on.
#
# The speech tokenizer was trained with a CTC head that reads text from tokens (notebook 01). That makes it the LM's
# first judge, before any audio exists: **generated tokens → CTC head → text → character error rate** against the
# sentence, beside the CER of the *recording's* tokens (the tokenizer's own floor). This is what `minicosy eval lm`
# does; the cells reuse its pieces (`encode_icl`, `generate`, `read_tokens`, `cer` on `normalize_english` text).

# %%
# NBVAL_CHECK_OUTPUT
sft_u = fixture("flite_rms", "test")
prompt_u, icl_u = fixture("mbrola_us3", "valid"), fixture("mbrola_us3", "test")
assert prompt_u.voice in HELDOUT_VOICES and prompt_u.text != icl_u.text
sft = generate(lm, tok.encode(sft_u.text), speaker_id=tok.speaker_id(sft_u.voice),
               generator=torch.Generator().manual_seed(0))
ptext, text = encode_icl(tok, prompt_u.text, icl_u.text)
icl = generate(lm, text, prompt_text_ids=ptext, prompt_speech_ids=tokens[prompt_u.id].tolist(),
               generator=torch.Generator().manual_seed(0))
cases = {"SFT": (sft_u, sft.run(), sft.eos, len(tok.encode(sft_u.text))),
         "ICL": (icl_u, icl.run(), icl.eos, len(text))}
heard = st.read_tokens([c[1] for c in cases.values()] + [tokens[c[0].id] for c in cases.values()])
for k, (name, (utt, gen_tokens, ended, n_text)) in enumerate(cases.items()):
    ref = normalize_english(utt.text, lowercase=True)
    gt = tokens[utt.id]
    lo, hi = length_limits(n_text, lm.cfg.min_token_text_ratio, lm.cfg.max_token_text_ratio)
    c_gen, c_gt = cer(ref, heard[k]), cer(ref, heard[k + 2])
    print(f"{name}: {ref!r}" + (f" (voice {utt.voice})" if name == "SFT" else f" (prompt: {prompt_u.text!r})"))
    print(f"  generated: {len(gen_tokens)} tokens, ended with EOS: {ended}; recording: {len(gt)} tokens "
          f"(ratio {len(gen_tokens) / len(gt):.2f})")
    print(f"  heard from generated tokens: {heard[k]!r}  CER {c_gen:.2f}")
    print(f"  heard from recording tokens: {heard[k + 2]!r}  CER {c_gt:.2f}")
    assert ended and lo <= len(gen_tokens) < hi  # stopped by EOS, inside the length window
    assert all(0 <= t < C for t in gen_tokens) and 0.5 < len(gen_tokens) / len(gt) < 2
    assert c_gen < 1.0

# %%
fig, axes = plt.subplots(2, 2, figsize=(13, 4.2), sharex="col", sharey=True)
for col, (name, (utt, gen_tokens, _, _)) in enumerate(cases.items()):
    for row, (label, seq) in enumerate((("recording", tokens[utt.id].tolist()), ("generated", gen_tokens))):
        codes = st.quantizer.indices_to_codes(torch.tensor(seq)).T.numpy()  # (D, T) FSQ digits in {-1, 0, 1}
        ax = axes[row, col]
        ax.imshow(codes, aspect="auto", cmap=plt.get_cmap("coolwarm", 3), vmin=-1, vmax=1,
                  extent=(0, len(seq) / 25, codes.shape[0] - 0.5, -0.5), interpolation="nearest")
        ax.set_title(f"{name} · {label}: {len(seq)} tokens", fontsize=9)
        ax.set_ylabel("FSQ digit")
    axes[1, col].set_xlabel("seconds (25 tokens/s)")
plt.suptitle("speech tokens as FSQ digits: the recording of the sentence vs what the LM generated", fontsize=10)
plt.tight_layout()
plt.show()

# %% [markdown]
# **A small scorecard.** `evaluate_lm` is the whole of `minicosy eval lm`: per scenario it picks utterances of a split,
# generates (seeded), reads the tokens back and reports token CER beside the ground-truth CER, the share of
# generations that ended with EOS, and the generated/recorded length ratio. Run here on the test sentences of the
# fixture slice, with the 16 kHz clips tokenised at the top (three utterances a scenario at most, so the figures are
# noisy; the README's table uses the corpus's test split):

# %%
# NBVAL_CHECK_OUTPUT
card = evaluate_lm(lm, FIXTURES_DIR, st, tokens=tokens, n=3, split="test", seed=0)
print(f"{'scenario':28s} {'n':>2s} {'token CER':>9s} {'recording CER':>13s} {'ended EOS':>9s} {'length ratio':>12s}")
for name in SCENARIOS:
    r = card["scenarios"][name]
    print(f"{name:28s} {r['n']:2d} {r['token_cer']:9.2f} {r['groundtruth_cer']:13.2f} {r['termination_rate']:9.2f} "
          f"{r['length_ratio']:12.2f}")
assert all(card["scenarios"][s]["n"] >= 1 for s in SCENARIOS)

# %% [markdown]
# **Streaming text in (bistream).** In a voice assistant the text itself arrives piece by piece from a text LLM.
# `generate_bistream` takes an iterator of strings and pulls from it *only* when the next block of $N$ text ids is
# needed; after each block it generates $M$ tokens and the FILL that follows is forced by the schedule; when the text
# has ended, the leftover text and TASK go in and the LM finishes freely (EOS stays masked until then). The inputs the
# KV cache holds at the end must be exactly the training layout of section 2, fed once each.

# %%
# NBVAL_CHECK_OUTPUT
text_stream = "Who tried my shirt after work? Please need the fan later."
arrivals = []  # (speech tokens out so far, text ids handed over so far: the tag + characters)


def pieces():  # the text arrives word by word
    sent = 1
    for word in text_stream.split(" "):
        sent += len(word) + 1
        arrivals.append((len(bi.tokens), sent))
        yield word + " "


bi = generate_bistream(lm, pieces(), tok, speaker="flite_rms", generator=torch.Generator().manual_seed(0))
out = bi.run()
full_text = [tok.speaker_id("flite_rms")] + tok.encode(text_stream)
layout, _ = build_sequence(full_text, out, streaming=True, n=lm.cfg.mix_n, m=lm.cfg.mix_m)
assert bi.eos and bi.fed == layout  # the training layout, each input fed once
print(f"{len(full_text)} text ids (tag included) → {len(full_text) // lm.cfg.mix_n} full blocks of "
      f"{lm.cfg.mix_n}, then {len(full_text) % lm.cfg.mix_n} leftover + TASK; {len(out)} speech tokens, EOS: {bi.eos}")
print("heard:", repr(st.read_tokens([out])[0]))

# %%
text_seen, speech_out, xs, ys = 0, 0, [], []
for kind, _ in bi.fed:  # walk the cache: how much text had the LM read when it produced each token?
    if kind == "text":
        text_seen += 1
    elif kind == "speech":
        xs.append(speech_out)
        ys.append(text_seen)
        speech_out += 1
xs.append(speech_out)
ys.append(text_seen)
fig, ax = plt.subplots(figsize=(8, 3.2))
ax.step(xs, ys, where="post", label="text ids read by the LM")
ax.plot([a for a, _ in arrivals], [s for _, s in arrivals], "k.", ms=5, label="a word is pulled from the text stream")
for b in range(1, len(full_text) // lm.cfg.mix_n + 1):
    ax.axvline(b * lm.cfg.mix_m, color="#55a868", lw=0.8, ls="--")
ax.set(xlabel="speech tokens generated", ylabel="text ids / characters",
       title=f"bistream: {lm.cfg.mix_n} text then {lm.cfg.mix_m} speech per block (green: forced FILL), then free run")
ax.legend(fontsize=8, loc="lower right")
plt.tight_layout()
plt.show()


# %% [markdown]
# ## 6 · Exercises
#
# 1. **Where is TASK?** For the streaming sequence of section 2 (`text_ids`, `speech`, $N{:}M$ = `N`:`M`), predict
#    *without calling* `build_sequence` how many FILL targets it holds and at which position TASK sits. Set
#    `n_fill` and `task_position`.
# 2. **Enough speech to stream?** With the paper's ratio $5{:}15$ and the $L$ = `len(text_ids)` text ids of section 2:
#    what is the smallest number of speech tokens that `build_sequence(..., streaming=True, n=5, m=15)` accepts, and
#    the smallest that the paper's rule `can_stream` ($T/L > M/N$) accepts? Set `t_build` and `t_rule`.
# 3. **The EOS window of an SFT request.** For `sft_u.text` with its speaker tag and the trained model's ratios,
#    between how many generated tokens may the LM stop? Set `min_len` (the first length at which EOS is allowed)
#    and `cap` (the hard limit). Mind what $|x|$ counts.
#
# Each check prints *not attempted* until you fill in its answer.

# %%
def check(name, ok):
    print(f"{name}: {'not attempted' if ok is None else ('correct' if ok else 'not yet — try again')}")


# %%
# NBVAL_CHECK_OUTPUT
# Exercise 1: replace None with integers
n_fill = None         # FILL targets in build_sequence(text_ids, speech, True, N, M)
task_position = None  # index of ("task", None) in its inputs
ok = None
if n_fill is not None and task_position is not None:
    i_, t_ = build_sequence(text_ids, speech, streaming=True, n=N, m=M)
    ok = n_fill == t_.count(("fill", None)) and task_position == i_.index(("task", None))
check("exercise 1", ok)

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 2: replace None with integers
t_build = None  # smallest T that build_sequence(text_ids, speech[:T], True, n=5, m=15) accepts
t_rule = None   # smallest T with can_stream(len(text_ids), T, 5, 15)
ok = None
if t_build is not None and t_rule is not None:
    def builds(T_):
        try:
            build_sequence(text_ids, list(range(T_)), streaming=True, n=5, m=15)
            return True
        except ValueError:
            return False
    ok = (builds(t_build) and not builds(t_build - 1) and can_stream(len(text_ids), t_rule, 5, 15)
          and not can_stream(len(text_ids), t_rule - 1, 5, 15))
check("exercise 2", ok)

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 3: replace None with integers
min_len = None  # the LM may emit EOS once this many tokens exist
cap = None      # generation stops here at the latest
ok = None
if min_len is not None and cap is not None:
    ok = (min_len, cap) == length_limits(len(tok.encode(sft_u.text)), lm.cfg.min_token_text_ratio,
                                         lm.cfg.max_token_text_ratio)
check("exercise 3", ok)

# %% [markdown]
# Solutions (collapsed; run the cell to check them):

# %% jupyter={"source_hidden": true}
# NBVAL_CHECK_OUTPUT
solutions = [
    (L // N, 1 + L + (L // N) * M),                    # 1: one FILL per full block; SOS + text + the blocks' speech
    ((L // 5) * 15, (15 * L) // 5 + 1),                 # 2: full blocks × 15; smallest T with T·5 > 15·L
    length_limits(len(tok.encode(sft_u.text)), lm.cfg.min_token_text_ratio, lm.cfg.max_token_text_ratio),  # 3: tag not counted
]
i_, t_ = build_sequence(text_ids, speech, streaming=True, n=N, m=M)

def builds(T_):
    try:
        build_sequence(text_ids, list(range(T_)), streaming=True, n=5, m=15)
        return True
    except ValueError:
        return False


results = [solutions[0] == (t_.count(("fill", None)), i_.index(("task", None))),
           builds(solutions[1][0]) and not builds(solutions[1][0] - 1)
           and can_stream(L, solutions[1][1], 5, 15) and not can_stream(L, solutions[1][1] - 1, 5, 15),
           solutions[2][0] == int(lm.cfg.min_token_text_ratio * len(tok.encode(sft_u.text)))]
for n, ok in enumerate(results, 1):
    check(f"solution {n}", ok)
assert all(results)

# %% [markdown]
# ## Summary
#
# * The LM reads text units and writes 25 Hz speech tokens. On hours of data, **characters** beat BPE (each unit is
#   seen thousands of times); the paper preset keeps BPE. A **speaker tag** names a training voice for SFT.
# * One model, two layouts: `[SOS] text [TASK] speech [EOS]` and the streaming interleave of $N$ text and $M$ speech
#   tokens with a **FILL** target after each block. Both hold the same inputs; every speech input is the previous
#   position's target; TASK is always there; too little speech for the blocks means non-streaming.
# * The model is a plain **Qwen2** fed with embeddings — text (the backbone's own table), speech, SOS/TASK — and a head
#   over $C$ codes + EOS + unused + FILL; the paper preset is Qwen2.5-0.5B sized (≈ 0.5 B parameters), the tiny one
#   4 M. The KV cache changes the cost, not the logits.
# * **RAS** breaks the loops that nucleus sampling falls into; EOS is masked below a minimum length and generation is
#   capped; FILL is forced by the schedule, never sampled.
# * The trained tiny LM speaks test sentences with a tag (SFT) or after a prompt from an unseen voice (ICL), and the
#   speech tokenizer's CTC head reads its tokens back as text — the LM's first judge, before any audio exists.
#
# Next: notebook 03 turns speech tokens into a mel spectrogram with conditional flow matching.
