# %% [markdown]
# # 02 · The text-speech LM: sequences, a Qwen2 backbone, and sampling
#
# **What you build here:** the stage of CosyVoice 2 that turns *text* into *speech tokens* — the 25 Hz ids of the
# speech tokenizer (notebook 01), which the flow (notebooks 03–04) turns into a mel spectrogram.
#
# 1. **Text units** — what the LM reads: characters in the tiny preset, BPE in the paper preset, and why; speaker tags.
# 2. **Training sequences** — `build_sequence`: the non-streaming layout `[SOS] text [TASK] speech [EOS]` and the
#    streaming layout that interleaves $N$ text tokens with $M$ speech tokens and predicts **FILL**, drawn for a real
#    recording, every rule checked; the paper's S / T / E / F tokens mapped to the official code's ids; an $N{:}M$
#    explorer.
# 3. **The model** — `TextSpeechLM`: a `transformers` Qwen2 backbone fed with embeddings, a speech head over
#    codes + EOS + FILL; its size in the tiny and the paper preset; the causal attention mask; the KV cache; a short
#    live training.
# 4. **Decoding** — repetition-aware sampling (RAS) on a toy distribution where plain top-p/top-k sampling loops for
#    ever; the nucleus of the trained LM, with sliders; EOS masking and the length cap.
# 5. **The trained tiny LM** — speech tokens for test sentences in **SFT** (a speaker tag) and **ICL** (a prompt from a
#    voice it never heard), read back as text by the speech tokenizer's own CTC head; the ICL sequence drawn; the
#    tokens played through the flow and the vocoder; streaming text in, tokens out (bistream), drawn over time.
# 6. **Exercises**, one of them writing the streaming `build_sequence` yourself.
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
# **Runtime.** Under a minute on 2 CPU cores (default, tiny preset). Nothing long is trained here: the trained LM in
# `data/pretrained/tiny/` came from `minicosy train lm --preset tiny`, and section 5 reads its training record.
# Everything runs on the CPU on purpose (the models are small and the checked figures are CPU figures), so a GPU
# changes nothing.
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

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Audio, display
from matplotlib.colors import ListedColormap, to_rgb
from matplotlib.patches import Patch

from minicosy import (CharTokenizer, LMConfig, MiniCosy, SpeechTokenizer, TextSpeechLM, TextTokenizer, VoiceReference,
                      build_sequence, load_audio, pick_device, seed_everything)
from minicosy.data.corpus import HELDOUT_VOICES
from minicosy.data.manifest import read_manifest
from minicosy.data.sentences import generate_sentences
from minicosy.judges import cer
from minicosy.lm.evaluate import SCENARIOS, evaluate_lm
from minicosy.lm.generate import encode_icl, generate, generate_bistream
from minicosy.lm.sampling import SamplingConfig, length_limits, mask_logits, nucleus_sample, ras_sample
from minicosy.lm.sequence import (IGNORE, KINDS, M_SPEECH, N_TEXT, can_stream, eos_id, fill_id, head_size,
                                  to_tensors)
from minicosy.lm.train import TrainConfig, fixed_examples, make_example, validate
from minicosy.text.chars import FIRST_CHAR_ID, PAD_ID, UNK_ID
from minicosy.text.normalize import normalize_english
from minicosy.utils import FIXTURES_DIR, REPO_ROOT, slider_player

PRESET = os.environ.get("MINICOSY_PRESET", "tiny")  # the trained checkpoints in data/pretrained/ are tiny ones
PRETRAINED = REPO_ROOT / "data" / "pretrained" / PRESET  # paths from the repository root
seed_everything(0)
torch.set_num_threads(1)  # small models: one thread is fastest, and robust on a shared CPU
plt.rcParams["figure.dpi"] = 90
device = torch.device("cpu")  # pinned: the models are small, and every checked figure is a CPU figure
print(f"device: {device} (pinned; pick_device() would choose {pick_device()}) | preset: {PRESET}")

# %%
fixtures = read_manifest(FIXTURES_DIR)  # the small slice of the corpus in data/fixtures (notebook 00)


def fixture(voice, split="test"):
    return next(u for u in fixtures if u.voice == voice and u.split == split)


st = SpeechTokenizer.from_pretrained(PRETRAINED, device=device)  # the trained FSQ tokenizer (notebook 01)
lm = TextSpeechLM.from_pretrained(PRETRAINED / "lm", device=device)  # the trained LM (section 5)
tok = lm.text_tokenizer()  # its character tokenizer, with the speaker tags it was trained with
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
# sounds*, from data. With hundreds of thousands of hours that works; minicosy's corpus is tiny by comparison. A
# probe reported in `docs/paper_vs_code.md` §5 (the same 4 × 256 Qwen2 trained for the same time on BPE and on
# characters) read its generated speech tokens back at about 65 % CER from **BPE** text and about 34 % from
# **characters**. So:
#
# * `LMConfig.tiny()` reads **characters** (`CharTokenizer`, a documented departure from the paper);
# * `LMConfig.paper()` keeps the **BPE** (`TextTokenizer`, with the paper's CJK masking, notebook 00).
#
# Below: one sentence in both units, then the reason in numbers — how often each unit occurs in text like the
# corpus's (the sentence generator the corpus reads).

# %%
# NBVAL_CHECK_OUTPUT
bpe = TextTokenizer.from_pretrained()  # the 1,024-token BPE trained in notebook 00
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
ax.axhline(50, color="grey", lw=0.6, ls="--", label="50 occurrences")
ax.set(xlabel="unit rank", ylabel="occurrences", title="How often the LM sees each text unit (6,400 sentences)")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# Characters are few and each one is seen thousands of times; a typical BPE token is seen a few dozen times, and a
# long tail barely at all — too few examples to learn what it sounds like. A character sequence is about three times
# longer (tokens per sentence, printed above), which the LM's attention can afford at these lengths.
#
# **Speaker tags (SFT).** Without a prompt recording, which voice should the LM speak in? The paper's multi-speaker
# fine-tuning prepends a tag such as `Speaker A<|endofprompt|>` to the text. minicosy gives every voice of the
# training corpus (its pitch-shifted copies included) one special text id, `<|spk:NAME|>`, placed after the alphabet.
# The vocabulary layout is fixed (pad, unk, the 32 characters, then `max_speakers` tag slots) so that the LM's text
# embedding has a known size before training. In training the tag is put before the text half of the time, so the
# model also learns to speak *without* a tag — what ICL (a prompt recording) relies on. The tokenizer below is the
# one stored with the trained LM.

# %%
# NBVAL_CHECK_OUTPUT
ids = [tok.speaker_id("flite_awb")] + tok.encode("Hi, 2 cats!")
print("ids:    ", ids)
print("decoded:", tok.decode(ids))
print(f"layout: pad {PAD_ID} | unk {UNK_ID} | characters {FIRST_CHAR_ID}..{tok.n_chars - 1} | "
      f"tag slots {tok.n_chars}..{tok.vocab_size - 1} ({len(tok.speakers)} in use)")
assert tok.vocab_size == lm.cfg.text_vocab_size == LMConfig.tiny().text_vocab_size  # the embedding holds every id
assert tok.encode("hello") + tok.encode(" world") == tok.encode("hello world")  # piecewise = whole

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
# **The special tokens.** Fig. 2 of the paper marks three special tokens, S, T and E; the streaming layout adds the
# filling token, written F here. The official code (`Qwen2LM` in `cosyvoice/llm/llm.py`) and minicosy implement them
# so:
#
# | token | meaning | official `Qwen2LM` | minicosy |
# |---|---|---|---|
# | S | start of sequence | row `sos = 0` of `llm_embedding` (input only) | row 0 of `special_embedding`, kind `"sos"` |
# | T | turn of speech: the text is over, speech follows | row `task_id = 1` of `llm_embedding` (input only) | row 1 of `special_embedding`, kind `"task"` |
# | E | end of speech | output id `eos_token = speech_token_size` (6561) | head index $C$ (`eos_id`) |
# | F | filling: more text, please | output id `fill_token = speech_token_size + 2` (6563) | head index $C + 2$ (`fill_id`) |
#
# S and T are inputs only, E and F outputs only. Head index $C + 1$ is an unused slot in both codes. The official
# speech embedding has $C + 3$ rows; minicosy's has $C$, since EOS and FILL are never fed back.

# %%
# NBVAL_CHECK_OUTPUT
print(f"C = {C}: EOS = {eos_id(C)}, unused = {C + 1}, FILL = {fill_id(C)} → a speech head of {head_size(C)} outputs")
print(f"input-only embeddings (SOS, TASK): {tuple(lm.special_embedding.weight.shape)}; "
      f"speech embedding: {lm.speech_embedding.num_embeddings} rows (codes only)")
assert (eos_id(C), fill_id(C), head_size(C)) == (C, C + 2, C + 3) == (lm.eos, lm.fill, lm.head.out_features)
assert lm.special_embedding.num_embeddings == 2 and lm.speech_embedding.num_embeddings == C

# %% [markdown]
# Both layouts have exactly the same inputs — SOS, the $L$ text tokens, TASK, the $T$ speech tokens — in a different
# order. Here is a real one: a training sentence of the fixture slice with its speaker tag, and its speech tokens
# from the trained tokenizer.

# %%
cfg = lm.cfg  # the trained LM's config: its mix ratio and length ratios
N, M = cfg.mix_n, cfg.mix_m
u = fixture("flite_awb", "train")
speech = tokens[u.id].tolist()
text_ids = [tok.speaker_id(u.voice)] + tok.encode(u.text)  # SFT-style: tag + characters
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
    # two rows of coloured cells: what each position reads, and what it must predict
    rows = [[k for k, _ in inputs], ["–" if t is None else t[0] for t in targets]]
    ax.imshow(np.array([[to_rgb(COLOURS[k]) for k in row] for row in rows]), aspect="auto")
    if len(inputs) <= 120:  # room for one 8-pt character per cell
        for i, (k, v) in enumerate(inputs):
            if k == "text":
                ch = tok.decode([v])
                ax.text(i, 0, "#" if ch.startswith("<|") else ch.replace(" ", "·"), ha="center", va="center",
                        fontsize=8, color="white")
    for i, t in enumerate(targets):
        if t is not None and t[0] in ("eos", "fill"):
            ax.text(i, 1, t[0][0].upper(), ha="center", va="center", fontsize=8, color="white", weight="bold")
    ax.set_yticks([0, 1], ["input", "target"])
    ax.set_title(title, fontsize=10)


fig, axes = plt.subplots(2, 1, figsize=(14, 3.8))
draw_layout(axes[0], inp, tgt, "non-streaming: [SOS] text [TASK] speech → loss on speech and EOS (# = speaker tag)")
draw_layout(axes[1], inp_s, tgt_s, f"streaming {N}:{M}: blocks of {N} text + {M} speech, FILL (F) after each block")
for ax in axes:
    ax.set_xlabel("position")
fig.legend(handles=[Patch(color=c, label=k.upper() if k in ("sos", "task", "eos", "fill") else
                          ("no loss" if k == "–" else k)) for k, c in COLOURS.items()],
           loc="lower center", ncol=7, fontsize=9, frameon=False)
plt.tight_layout(rect=(0, 0.08, 1, 1))
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
# official code *chooses* streaming under a stricter condition, $T/L > M/N$ — the speech must outrun the text — and
# then with probability 0.5 (`Qwen2LM.prepare_lm_input_target` in `cosyvoice/llm/llm.py`; the paper does not state
# the condition). minicosy's `can_stream` and `use_streaming` implement the same. The same sentence with the paper's
# 5:15 ratio on *characters* shows why the tiny preset needs 15:15:

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
rows = [(len(tok.encode(x.text)) + 1, len(tokens[x.id])) for x in clips16]
ratio = sum(t for _, t in rows) / sum(l for l, _ in rows)
print(f"fixture clips: {ratio:.2f} speech tokens per text id (tag included)")
streamable = {}
for n, m in ((N, M), (N_TEXT, M_SPEECH)):
    streamable[n, m] = sum(can_stream(l, t, n, m) for l, t in rows)
    print(f"  may stream under the official condition T/L > M/N with N:M = {n}:{m}: {streamable[n, m]} of {len(rows)}")
assert streamable[N_TEXT, M_SPEECH] < streamable[N, M]  # 5:15 would need 3 speech tokens per character

# %% [markdown]
# **Try it.** The sliders set $N$ and $M$ and redraw the layout of the same utterance; when the blocks need more
# speech than the recording has, the layout falls back to non-streaming, as the trainer does. (The trained model
# knows only its own ratio, `cfg.mix_n : cfg.mix_m`; any other is a layout it never saw.)

# %%
def nm_player(n=N, m=M):
    fig, ax = plt.subplots(figsize=(14, 2.2))
    try:
        i_, t_ = build_sequence(text_ids, speech, streaming=True, n=n, m=m)
        title = (f"streaming {n}:{m}: {L // n} full blocks, {L % n} leftover text ids; official condition "
                 f"T/L > M/N: {'holds' if can_stream(L, T, n, m) else 'fails'}")
    except ValueError:
        i_, t_ = build_sequence(text_ids, speech, streaming=False)
        title = f"{n}:{m}: {L // n} blocks need {(L // n) * m} speech tokens, the recording has {T} → non-streaming"
    draw_layout(ax, i_, t_, title)
    ax.set_xlabel("position")
    plt.tight_layout()
    plt.show()


slider_player(nm_player,
              n=widgets.IntSlider(value=N, min=1, max=40, description="N (text)", continuous_update=False),
              m=widgets.IntSlider(value=M, min=1, max=40, description="M (speech)", continuous_update=False))

# %% [markdown]
# **Batches.** `to_tensors` turns a batch of `(inputs, targets)` into padded tensors: a *kind* code per position
# (`KINDS`: pad 0, SOS 1, text 2, TASK 3, speech 4), the text or speech id, and the target as an index of the speech
# head — a speech code $0..C{-}1$, **EOS = C**, **FILL = C + 2** ($C+1$ is the unused slot), or `IGNORE` (−100, no
# loss). Right padding needs no attention mask: causal attention never lets a real position see a pad that comes
# after it (section 3 draws the mask).

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
# **The causal mask.** A decoder-only LM reads, at position $i$, only the inputs $0..i$: its attention weights on
# later positions are zero (Qwen2 applies the mask inside the backbone),
#
# $$\text{mask}_{ij} = [\, j \le i \,], \qquad \text{attention}_i = \operatorname{softmax}_j\!\Big(\frac{q_i \cdot k_j}{\sqrt{d}} + \log \text{mask}_{ij}\Big).$$
#
# That is what makes teacher forcing sound: the output at position $i$ is trained to predict input $i+1$, which it
# cannot see. It is also why right padding needs no mask of its own. The figure draws the mask over the small example
# of `build_sequence`'s docstring (text `a b c`, speech `1..7`, $N{:}M = 2{:}3$), each row labelled with what the
# position reads and what it predicts.

# %%
toy_in, toy_tgt = build_sequence([0, 1, 2], [1, 2, 3, 4, 5, 6, 7], streaming=True, n=2, m=3)
name_in = lambda k, v: {"sos": "S", "task": "T"}.get(k) or ("abc"[v] if k == "text" else str(v))  # noqa: E731
name_tgt = lambda t: "–" if t is None else {"eos": "E", "fill": "F"}.get(t[0], str(t[1]))  # noqa: E731
labels_in = [name_in(k, v) for k, v in toy_in]
causal = torch.tril(torch.ones(len(toy_in), len(toy_in), dtype=torch.bool))  # mask[i, j] = j ≤ i

fig, ax = plt.subplots(figsize=(6.4, 5))
im = ax.imshow(causal.numpy(), cmap=ListedColormap(["#f0f0f0", "#4c72b0"]), vmin=0, vmax=1)
ax.set_xticks(range(len(toy_in)), labels_in)
ax.set_yticks(range(len(toy_in)), [f"{a} → {name_tgt(t)}" for a, t in zip(labels_in, toy_tgt)])
ax.set(xlabel="key: the input position it may read", ylabel="query: input → the target it predicts",
       title="causal mask of the LM (streaming 2:3 example)")
cb = fig.colorbar(im, ax=ax, ticks=[0.25, 0.75], shrink=0.7)
cb.ax.set_yticklabels(["masked", "may attend"])
plt.tight_layout()
plt.show()

# %% [markdown]
# The check does not trust the drawing: it changes one input of the trained LM (a speech token in the middle of the
# section-2 utterance) and compares the logits. Every output before that position must stay exactly the same, and
# every output from it on must move.

# %%
one = to_tensors([(inp, tgt)], C)
j = task + 10  # the 10th speech input of the non-streaming sequence
ids_changed = one["ids"].clone()
ids_changed[0, j] = (ids_changed[0, j] + 1) % C  # another speech code at position j
with torch.no_grad():
    before, after = lm(one["kinds"], one["ids"]), lm(one["kinds"], ids_changed)
delta = (before - after).abs().amax(-1)[0]  # (T,): the largest logit change at each position
print(f"input {j} changed: outputs 0..{j - 1} move by at most {float(delta[:j].max()):.1e}; "
      f"outputs {j}..{len(inp) - 1} by at least {float(delta[j:].min()):.1e}")
assert float(delta[:j].max()) < 1e-5 and float(delta[j:].min()) > 1e-4  # causal: only the present and future move

# %% [markdown]
# **The KV cache.** At inference the LM produces one token at a time. Re-running the whole prefix for each new token
# costs $O(t)$ per step; because of the causal mask the keys and values of a position never change once computed, so
# the cache keeps every layer's keys and values and a step only computes the new position (`new_cache()` → a
# `transformers` `DynamicCache`, passed as `cache=`). The logits must not change:

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
# **A short live training.** The trained checkpoint took far longer (section 5 prints its training record). To see
# the loop itself, train a micro version (2 layers × 64) on the 16 kHz *train* clips of the fixture slice, with the
# trainer's own pieces: `make_example` draws each utterance's layout (streaming with probability 0.5 where it may)
# and speaker tag afresh every step, `to_tensors` batches, `model.loss` is the cross-entropy on the targets, and
# `validate` scores the fixture *valid* clips — sentences the model never sees.

# %%
def as_data(split):
    return [{"id": x.id, "voice": x.voice, "text_ids": tok.encode(x.text), "speech": tokens[x.id].tolist()}
            for x in clips16 if x.split == split]


train_d, valid_d = as_data("train"), as_data("valid")
seed_everything(0)
micro_cfg = replace(LMConfig.tiny(), d_model=64, n_layers=2, d_ff=256, dropout=0.0)
micro = TextSpeechLM(micro_cfg)
tc = TrainConfig()
valid_ex = fixed_examples(valid_d, tok, micro_cfg, tc)  # layouts drawn once: comparable across steps
opt = torch.optim.AdamW(micro.parameters(), lr=3e-3)
rng = random.Random(0)
curve = []
for step in range(1, 51):
    micro.train()
    out = micro.loss(to_tensors([make_example(d, tok, micro_cfg, rng, tc.p_streaming, tc.p_speaker_tag)
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
# A dozen utterances are learnt by heart in a few dozen steps while the loss on unseen sentences turns back up (both
# asserted above): the LM's main enemy on small data is overfitting. The real trainer (`minicosy train lm`)
# therefore uses dropout 0.2 on the input embeddings and before the head, weight decay, length-bucketed batches of
# the whole corpus, and exports the model with the **best validation loss** (early stopping).

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
fig, ax = plt.subplots(figsize=(9, 2.8))
ax.step(range(len(plain)), plain, where="post", lw=1.5, label="nucleus: stuck on token 0")
ax.step(range(len(ras)), ras, where="post", lw=1, label="RAS: held, then moves on")
ax.set(xlabel="step", ylabel="token", yticks=range(V), title="The same toy LM, two samplers")
ax.legend(fontsize=8, loc="upper right")
plt.tight_layout()
plt.show()

# %% [markdown]
# **The nucleus of the trained LM.** What does the candidate set look like on real logits? Take the trained LM's
# outputs at the speech positions of the section-2 utterance (teacher-forced on its recording's tokens, EOS masked),
# and at each keep tokens in order of probability while the mass before them is below top-p and fewer than top-k are
# kept. The cell counts the candidates at every position and shows the one where the LM is least sure (the highest
# entropy). The set written from scratch must be exactly where `nucleus_sample` draws: 2,000 draws land inside it.

# %%
def nucleus_set(logits, top_p, top_k):
    # the candidates of nucleus ∩ top-k sampling, most probable first, and the full distribution
    probs = logits.softmax(-1)
    p_sorted, idx = probs.sort(descending=True, stable=True)
    keep = (p_sorted.cumsum(0) - p_sorted < top_p) & (torch.arange(len(probs)) < top_k)
    return idx[keep].tolist(), probs


with torch.no_grad():  # the output at position task + k predicts speech[k]
    dists = [mask_logits(before[0, task + k], C, allow_eos=False) for k in range(T)]
n_cands = [len(nucleus_set(lg, 0.8, 25)[0]) for lg in dists]
entropy = [float(-(lg.softmax(-1) * lg.log_softmax(-1)).nan_to_num().sum()) for lg in dists]
k_star = int(np.argmax(entropy))  # the least certain position
step_logits, nxt = dists[k_star], speech[k_star]
kept, step_probs = nucleus_set(step_logits, 0.8, 25)
g = torch.Generator().manual_seed(0)
drawn = Counter(nucleus_sample(step_logits, 0.8, 25, g) for _ in range(2000))
rank = int((step_probs > step_probs[nxt]).sum())  # 0 = the most probable output
print(f"top-p 0.8 ∩ top-k 25 over the {T} speech positions: median {int(np.median(n_cands))} candidates, "
      f"at most {max(n_cands)}")
print(f"least certain position (speech token {k_star}): {len(kept)} candidates holding "
      f"{float(step_probs[kept].sum()):.2f} of the mass; 2,000 draws hit {len(drawn)} distinct tokens, "
      f"all candidates: {set(drawn) <= set(kept)}")
print(f"there, the recording's token is the LM's rank-{rank} output (probability {float(step_probs[nxt]):.3f})")
assert set(drawn) <= set(kept) and 1 <= len(kept) <= 25

# %% [markdown]
# **Try it.** The sliders redraw the candidate set for other top-p and top-k (blue: candidates, grey: cut; the star
# marks the recording's token).

# %%
def nucleus_player(top_p=0.8, top_k=25):
    kept_, _ = nucleus_set(step_logits, top_p, top_k)
    order = step_probs.argsort(descending=True, stable=True)[:40].tolist()
    fig, ax = plt.subplots(figsize=(9, 2.8))
    ax.bar(range(len(order)), step_probs[order].numpy(),
           color=["tab:blue" if o in kept_ else "lightgrey" for o in order])
    if nxt in order:
        ax.plot(order.index(nxt), float(step_probs[nxt]), "k*", ms=9)
    mass = float(step_probs[kept_].sum())
    ax.set(xlabel="the LM's outputs, most probable first (40 shown)", ylabel="probability",
           title=f"speech token {k_star}, top-p {top_p:.2f}, top-k {top_k}: {len(kept_)} candidates, mass {mass:.2f}")
    ax.legend(handles=[Patch(color="tab:blue", label="candidate"), Patch(color="lightgrey", label="cut"),
                       plt.Line2D([], [], color="k", marker="*", ls="", label="the recording's token")], fontsize=8)
    plt.tight_layout()
    plt.show()


slider_player(nucleus_player,
              top_p=widgets.FloatSlider(value=0.8, min=0.05, max=1.0, step=0.05, description="top-p",
                                        continuous_update=False),
              top_k=widgets.IntSlider(value=25, min=1, max=60, description="top-k", continuous_update=False))

# %% [markdown]
# **When to stop.** The LM ends an utterance by predicting EOS. Two rules bound the length (`length_limits`,
# `mask_logits`): EOS is **masked** (logit $-\infty$) until at least $\lfloor r_\min |x| \rfloor$ tokens exist, and
# generation is **cut** at $\lfloor r_\max |x| \rfloor$ tokens, where $|x|$ counts the text ids to speak (not the
# speaker tag, not the prompt's transcript). The official ratios are 2 and 20 per BPE token; the tiny preset reads
# characters, between one and two speech tokens each (section 2 printed the fixture clips' ratio), and uses 0.5 and
# 5. The unused slot $C{+}1$ is always masked, and FILL is never *sampled*: in streaming it is forced by the fixed
# $N{:}M$ schedule. Two untrained models make the rules visible: one whose head loves EOS (it stops the first moment
# EOS is allowed), one that never says EOS (the cap stops it).

# %%
# NBVAL_CHECK_OUTPUT
sentence = "Who tried my shirt after work?"
n_text = len(tok.encode(sentence))
lo, hi = length_limits(n_text, cfg.min_token_text_ratio, cfg.max_token_text_ratio)
print(f"{sentence!r}: {n_text} characters → EOS masked below {lo} tokens, cap at {hi} "
      f"(ratios {cfg.min_token_text_ratio} and {cfg.max_token_text_ratio})")
masked = mask_logits(torch.zeros(head_size(C)), C, allow_eos=False)
print("logits of [EOS, unused, FILL] while EOS is masked:", masked[C:].tolist())
assert cfg.min_token_text_ratio < ratio < cfg.max_token_text_ratio  # real speech lies inside the window

toy_cfg = replace(LMConfig.tiny(), d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, d_ff=64, dropout=0.0)
results = {}
for name, bias in (("loves EOS", 50.0), ("never EOS", -50.0)):
    seed_everything(0)
    toy = TextSpeechLM(toy_cfg).eval()
    with torch.no_grad():
        toy.head.bias[toy.eos] = bias
    s = generate(toy, tok.encode(sentence), speaker_id=tok.speaker_id("flite_rms"),
                 generator=torch.Generator().manual_seed(0))
    results[name] = (len(s.run()), s.eos)
    print(f"model that {name}: {results[name][0]:3d} tokens, ended with EOS: {s.eos}")
assert results == {"loves EOS": (lo, True), "never EOS": (hi, False)}

# %% [markdown]
# ## 5 · The trained tiny LM
#
# `minicosy train lm --preset tiny` trained the 4 × 256 model on the corpus's cached speech tokens and exported the
# weights with the best validation loss to `data/pretrained/tiny/lm.{safetensors,json}` (loaded at the top as `lm`).
# The JSON holds the config, the character tokenizer (with the speaker tags of every training voice) and the
# training record; the figures below are read from it.

# %%
# NBVAL_CHECK_OUTPUT
trained = lm.meta["trained"]
best = trained["best_valid"]
print(f"{lm.num_parameters() / 1e6:.2f} M parameters, stored as {lm.meta['dtype']}; "
      f"text unit {lm.cfg.text_unit}, N:M {lm.cfg.mix_n}:{lm.cfg.mix_m}")
print(f"trained {trained['steps']} steps, {trained['minutes']} min on {trained['device']}, "
      f"{trained['train_utterances']} utterances of {len(trained['train_voices'])} voice ids")
print(f"best valid loss {best['valid_loss']:.3f}, teacher-forced top-1 accuracy {best['valid_acc']:.3f} "
      f"(step {best['step']})")
assert lm.cfg.codebook_size == C, "the LM must speak the trained tokenizer's codes"
assert not set(HELDOUT_VOICES) & set(tok.speakers)  # no held-out voice has a tag

# %%
history = trained["history"]  # one row per validation of the training run
assert min(r["valid_loss"] for r in history) == best["valid_loss"]  # the exported weights: the best row
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot([r["minutes"] for r in history], [r["valid_loss"] for r in history], "o-", ms=3, label="valid loss")
ax.plot(best["minutes"], best["valid_loss"], "r*", ms=10, label=f"exported (step {best['step']})")
ax.set(xlabel="training minutes", ylabel="valid cross-entropy", title="training record of the trained LM")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

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
pspeech = tokens[prompt_u.id].tolist()
icl = generate(lm, text, prompt_text_ids=ptext, prompt_speech_ids=pspeech, generator=torch.Generator().manual_seed(0))
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
fig, axes = plt.subplots(2, 2, figsize=(13, 4.6), sharex="col", sharey=True, layout="constrained")
for col, (name, (utt, gen_tokens, _, _)) in enumerate(cases.items()):
    for row, (label, seq) in enumerate((("recording", tokens[utt.id].tolist()), ("generated", gen_tokens))):
        codes = st.quantizer.indices_to_codes(torch.tensor(seq)).T.numpy()  # (D, T) FSQ digits in {-1, 0, 1}
        ax = axes[row, col]
        im = ax.imshow(codes, aspect="auto", cmap=plt.get_cmap("coolwarm", 3), vmin=-1.5, vmax=1.5,
                       extent=(0, len(seq) / 25, codes.shape[0] - 0.5, -0.5), interpolation="nearest")
        ax.set_title(f"{name} · {label}: {len(seq)} tokens", fontsize=10)
        ax.set_ylabel("FSQ digit")
    axes[1, col].set_xlabel("seconds (25 tokens/s)")
fig.colorbar(im, ax=axes, ticks=[-1, 0, 1], shrink=0.8, label="digit value")
fig.suptitle("speech tokens as FSQ digits: the recording of the sentence vs what the LM generated", fontsize=11)
plt.show()

# %% [markdown]
# ### The ICL sequence, drawn
#
# What did the LM actually read in the ICL request? `LMStream.fed` records every input its KV cache holds. Offline,
# it is the non-streaming layout of the *joined* utterance — the prompt's transcript followed by the text to speak,
# TASK, the prompt's speech tokens followed by the generated ones — and the model starts generating at the first
# position after the prompt speech. In streaming mode (`generate(..., streaming=True)`) the same inputs are
# interleaved in blocks of $N$ text and $M$ speech; the prompt's speech fills the first blocks (forced, not sampled),
# and the FILL after each block is forced by the schedule. Both must be exactly `build_sequence` of the joined
# utterance.

# %%
# NBVAL_CHECK_OUTPUT
icl_s = generate(lm, text, prompt_text_ids=ptext, prompt_speech_ids=pspeech, streaming=True,
                 generator=torch.Generator().manual_seed(0))
icl_s.run()
lay_off = build_sequence(ptext + text, pspeech + icl.tokens, streaming=False)
lay_str = build_sequence(ptext + text, pspeech + icl_s.tokens, streaming=True, n=N, m=M)
print(f"prompt text {len(ptext)} + text {len(text)} ids; prompt speech {len(pspeech)} tokens; generated: "
      f"{len(icl.tokens)} offline, {len(icl_s.tokens)} streaming (EOS: {icl.eos}, {icl_s.eos})")
print("fed == build_sequence of the joined utterance — offline:", icl.fed == lay_off[0], "| streaming:",
      icl_s.fed == lay_str[0])
assert icl.fed == lay_off[0] and icl_s.fed == lay_str[0]

# %%
ROLES = {"SOS (S)": "#7f7f7f", "prompt text": "#9ecae1", "text to speak": "#2b6cb0", "TASK (T)": "#8172b2",
         "prompt speech": "#fdbe85", "generated speech": "#d9480f"}


def roles(inputs, n_ptext, n_pspeech):
    # the role of each input position in an ICL request
    out, nt, ns = [], 0, 0
    for kind, _ in inputs:
        if kind == "text":
            out.append("prompt text" if nt < n_ptext else "text to speak")
            nt += 1
        elif kind == "speech":
            out.append("prompt speech" if ns < n_pspeech else "generated speech")
            ns += 1
        else:
            out.append("SOS (S)" if kind == "sos" else "TASK (T)")
    return out


fig, axes = plt.subplots(2, 1, figsize=(14, 3.6))
for ax, (inputs, targets), title in ((axes[0], lay_off, "ICL, offline: [S] prompt text + text [T] prompt speech, "
                                      "then generated speech up to E"),
                                     (axes[1], lay_str, f"ICL, streaming {N}:{M}: blocks of {N} text + {M} speech "
                                      "(the prompt's speech first), F after each block")):
    r = roles(inputs, len(ptext), len(pspeech))
    ax.imshow(np.array([[to_rgb(ROLES[x]) for x in r]]), aspect="auto", extent=(-0.5, len(r) - 0.5, 0.5, -0.5))
    marks = [(0, "S"), ([k for k, _ in inputs].index("task"), "T"), (len(r) - 1, "E")]
    marks += [(p, "F") for p, t_ in enumerate(targets) if t_ == ("fill", None)]
    for p, letter in marks:  # the letter above the position that reads (S, T) or predicts (E, F) it
        ax.text(p, -0.95, letter, ha="center", va="center", fontsize=9, weight="bold")
    ax.set_ylim(0.5, -1.4)
    ax.set(yticks=[], xlabel="position")
    ax.set_title(title, fontsize=10)
fig.legend(handles=[Patch(color=c, label=k) for k, c in ROLES.items()], loc="lower center", ncol=6, fontsize=9,
           frameon=False)
plt.tight_layout(rect=(0, 0.08, 1, 1))
plt.show()

# %% [markdown]
# ### Listening: the LM's tokens through the flow and the vocoder
#
# Tokens are not yet sound. The flow (notebook 03) turns them into a mel spectrogram and the vocoder (notebook 05)
# into a waveform; `MiniCosy.tokens_to_audio` runs both on given tokens — for SFT with the speaker's stored vector,
# for ICL with the prompt recording's mel and speaker vector. Below: the prompt clip, then the SFT and the ICL
# tokens generated above, as audio. The speech tokenizer then listens to the audio (audio → tokens → CTC text), the
# same judge as before, now after two more stages.

# %%
system = MiniCosy.from_pretrained(PRETRAINED, device=device)  # the five trained stages of data/pretrained/tiny
voice = VoiceReference.from_file(FIXTURES_DIR / prompt_u.path, prompt_u.text)  # the ICL prompt: clip + transcript
HOP, UP = system.vocoder.cfg.hop_length, system.flow.cfg.up  # 480 samples per 50 Hz frame, 2 frames per token
wavs = {}
wavs["SFT"], SR = system.tokens_to_audio(cases["SFT"][1], speaker=sft_u.voice)
wavs["ICL"], _ = system.tokens_to_audio(cases["ICL"][1], voice=voice)
heard_audio = st.read_tokens([system.speech_tokens(w, SR) for w in wavs.values()])
print(f"prompt ({prompt_u.voice}): {prompt_u.text!r}")
display(Audio(voice.audio[: 3 * voice.sample_rate], rate=voice.sample_rate))
for (name, w), h in zip(wavs.items(), heard_audio):
    utt, gen_tokens = cases[name][0], cases[name][1]
    c_audio = cer(normalize_english(utt.text, lowercase=True), h)
    print(f"{name}: {len(gen_tokens)} tokens → {len(w) / SR:.2f} s of audio; heard back from the audio: {h!r}  "
          f"CER {c_audio:.2f}")
    display(Audio(np.clip(w[: 3 * SR], -1, 1), rate=SR, normalize=False))
    assert len(w) == UP * HOP * len(gen_tokens) and np.isfinite(w).all() and np.abs(w).max() > 0.01  # not silent
    assert c_audio < 1.0

# %% [markdown]
# **A small scorecard.** `evaluate_lm` is the whole of `minicosy eval lm`: per scenario it picks utterances of a split,
# generates (seeded), reads the tokens back and reports token CER beside the ground-truth CER, the share of
# generations that ended with EOS, and the generated/recorded length ratio. Run here on the test sentences of the
# fixture slice, with the 16 kHz clips tokenised at the top — three utterances a scenario at most, so the figures are
# noisy; `minicosy eval lm` on the corpus's test split gives steadier ones.

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
    ax.axvline(b * lm.cfg.mix_m, color="#55a868", lw=0.8, ls="--", label="forced FILL" if b == 1 else None)
ax.set(xlabel="speech tokens generated", ylabel="text ids / characters",
       title=f"bistream: {lm.cfg.mix_n} text then {lm.cfg.mix_m} speech per block, then free run")
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
#    the smallest that the official code's condition `can_stream` ($T/L > M/N$) accepts? Set `t_build` and `t_rule`.
# 3. **The EOS window of an SFT request.** For `sft_u.text` with its speaker tag and the trained model's ratios,
#    between how many generated tokens may the LM stop? Set `min_len` (the first length at which EOS is allowed)
#    and `cap` (the hard limit). Mind what $|x|$ counts.
# 4. **Write the streaming layout.** Implement `my_streaming_sequence(text_ids, speech_ids, n, m)`: the
#    `(inputs, targets)` lists of the $N{:}M$ layout, without calling `build_sequence`. Inputs are `("sos", None)`,
#    `("text", id)`, `("task", None)`, `("speech", id)`; targets are `None` (no loss), `("speech", id)`,
#    `("fill", None)` or `("eos", None)`. You may assume the speech fills every full block. The check compares your
#    lists with `build_sequence` on five utterances, the edge cases included (no full block; no leftover text; no
#    speech after the blocks).
#
# Each check prints *not attempted* until you fill in its answer. The collapsed cell after them holds the solutions
# and runs the same checks on them.

# %%
def check(name, ok):
    print(f"{name}: {'not attempted' if ok is None else ('correct' if ok else 'not yet — try again')}")


EX4_CASES = [(text_ids, speech, N, M),  # the section-2 utterance
             ([0, 1, 2], [1, 2, 3, 4, 5, 6, 7], 2, 3),  # the docstring example
             (text_ids[:2 * N], speech, N, M),  # no leftover text
             ([5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, 16], 3, 3),  # the blocks use all the speech: TASK → EOS
             ([3, 4], [7, 8, 9], 4, 2)]  # no full block


def ex4_ok(fn):
    # None: not attempted; else does fn give build_sequence's streaming layout on every case?
    try:
        if fn([0], [0], 1, 1) is None:
            return None
        return all(tuple(fn(list(t_), list(s_), n_, m_)) == build_sequence(t_, s_, streaming=True, n=n_, m=m_)
                   for t_, s_, n_, m_ in EX4_CASES)
    except Exception:  # noqa: BLE001 — any error in the learner's code is a wrong answer
        return False


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


# %%
# NBVAL_CHECK_OUTPUT
# Exercise 4: write the streaming layout (no call to build_sequence inside)
def my_streaming_sequence(text_ids, speech_ids, n, m):
    return None  # your code here: (inputs, targets)


check("exercise 4", ex4_ok(my_streaming_sequence))

# %% [markdown]
# Solutions (collapsed; run the cell to check them):

# %% jupyter={"source_hidden": true}
# NBVAL_CHECK_OUTPUT
solutions = [
    (L // N, 1 + L + (L // N) * M),                    # 1: one FILL per full block; SOS + text + the blocks' speech
    ((L // 5) * 15, (15 * L) // 5 + 1),                 # 2: full blocks × 15; smallest T with T·5 > 15·L
    length_limits(len(tok.encode(sft_u.text)), lm.cfg.min_token_text_ratio, lm.cfg.max_token_text_ratio),  # 3: tag not counted
]


def streaming_sequence(text_ids, speech_ids, n, m):  # 4
    inputs, targets = [("sos", None)], [None]
    n_blocks = len(text_ids) // n
    for b in range(n_blocks):
        block_speech = speech_ids[b * m:(b + 1) * m]
        inputs += [("text", t) for t in text_ids[b * n:(b + 1) * n]] + [("speech", s) for s in block_speech]
        # the last text input predicts the block's first speech token, the last speech input predicts FILL
        targets += [None] * (n - 1) + [("speech", s) for s in block_speech] + [("fill", None)]
    rest_text, rest_speech = text_ids[n_blocks * n:], speech_ids[n_blocks * m:]
    inputs += [("text", t) for t in rest_text] + [("task", None)] + [("speech", s) for s in rest_speech]
    targets += [None] * len(rest_text) + [("speech", s) for s in rest_speech] + [("eos", None)]
    return inputs, targets


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
           solutions[2][0] == int(lm.cfg.min_token_text_ratio * len(tok.encode(sft_u.text))),
           ex4_ok(streaming_sequence)]
for n, ok in enumerate(results, 1):
    check(f"solution {n}", ok)
wrong = ex4_ok(lambda t_, s_, n_, m_: build_sequence(t_, s_, streaming=False))  # the non-streaming layout
print("exercise 4's check rejects a wrong layout (non-streaming):", wrong is False)
assert all(results) and wrong is False

# %% [markdown]
# ## Summary
#
# * The LM reads text units and writes 25 Hz speech tokens. On small data, **characters** beat BPE (each unit is
#   seen thousands of times); the paper preset keeps BPE. A **speaker tag** names a training voice for SFT.
# * One model, two layouts: `[SOS] text [TASK] speech [EOS]` and the streaming interleave of $N$ text and $M$ speech
#   tokens with a **FILL** target after each block. Both hold the same inputs; every speech input is the previous
#   position's target; TASK is always there; too little speech for the blocks means non-streaming. The paper's S and
#   T are the official code's input-only `sos` and `task_id` embeddings; E and F are output ids $C$ and $C + 2$.
# * The model is a plain **Qwen2** fed with embeddings — text (the backbone's own table), speech, SOS/TASK — and a head
#   over $C$ codes + EOS + unused + FILL; the paper preset is Qwen2.5-0.5B sized (≈ 0.5 B parameters), the tiny one
#   4 M. The **causal mask** lets position $i$ read inputs $0..i$ only; the KV cache changes the cost, not the logits.
# * **RAS** breaks the loops that nucleus sampling falls into; EOS is masked below a minimum length and generation is
#   capped; FILL is forced by the schedule, never sampled.
# * The trained tiny LM speaks test sentences with a tag (SFT) or after a prompt from an unseen voice (ICL); what it
#   reads is exactly the training layout of the joined prompt and text; the speech tokenizer's CTC head reads its
#   tokens back as text, before and after the flow and the vocoder make them audible.

# %% [markdown]
# ## Next
#
# Notebook 03 (`03_flow_matching.ipynb`) turns speech tokens into a mel spectrogram with conditional flow matching:
# first from scratch on a 2-D toy, then the package's chunk-aware flow on the tokens of a real utterance.
