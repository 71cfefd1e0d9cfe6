# %% [markdown]
# # 06 · Streaming: text in, audio out while the text is still arriving
#
# **What you build here:** nothing new — you take the trained system apart while it streams, and watch every stage
# work on one request.
#
# 1. **The LM streams** — the $N{:}M$ interleaved layout of the unified streaming LM, with the text itself arriving as
#    an iterator of strings (*bistream*): which text the LM has read when it draws each speech token.
# 2. **The streaming loop** — every $M$ tokens (once $P$ more exist) one cached step of the chunk-aware flow, every mel
#    chunk one step of the streaming vocoder: a timeline of one `MiniCosy.stream` request against the wall clock.
# 3. **First-packet latency** — its parts (prompt processing, LM prefill, $M + P$ tokens, one flow chunk, one vocoder
#    chunk), measured, and compared with the paper's formula.
# 4. **Streamed = offline, chunk-masked** — the mel exactly, the audio up to the vocoder's cross-fades.
# 5. **Long text** — split into sentences, one vocoder stream across them: no gap at the joins.
# 6. **Closing early** — a 20,000-character text, stopped after the first packet; what is released.
# 7. **Listen**, a chunk-size slider that redraws the timeline, and three checked **exercises**.
#
# **Paper:** CosyVoice 2 (Du et al., arXiv 2412.10117) §2.3 (unified text-speech LM, the streaming layout of Fig. 2),
# §2.4 (chunk-aware flow matching), §2.5 (latency of the streaming mode). Where minicosy departs from the official
# runtime: `docs/paper_vs_code.md`, "Streaming runtime".
#
# **Code:** `minicosy/system/model.py` (`MiniCosy.stream`), `minicosy/system/timing.py` (`Timing`), `minicosy/lm/generate.py` (`generate_bistream`),
# `minicosy/flow/streaming.py` (`FlowStream`), `minicosy/vocoder/hift.py` (`Vocoder.stream`).
#
# **Prerequisites:** notebook 02 (the LM's sequences), 04 (chunk masks, `FlowStream` = offline chunk-masked), 05 (the
# vocoder's stream, its caches and cross-fades).
#
# **Runtime:** about 20 s on 2 CPU cores (default: the committed tiny checkpoints, `data/pretrained/tiny`). Set
# `MINICOSY_CHECKPOINT` to another checkpoint folder to use it instead. Timings are printed, never checked: they depend
# on the machine and its load.

# %%
# NBVAL_IGNORE_OUTPUT
import gc
import itertools
import os
import time

import ipywidgets as widgets
import librosa
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Audio, display

from minicosy import MiniCosy, VoiceReference, log_mel, pick_device, seed_everything
from minicosy.data.manifest import manifest_root
from minicosy.flow.model import align_tokens_and_frames
from minicosy.lm.generate import generate, generate_bistream
from minicosy.lm.sequence import build_sequence
from minicosy.system.demo import demo_items
from minicosy.system.frontend import MAX_WORDS
from minicosy.system.timing import Timing
from minicosy.text.normalize import split_sentences
from minicosy.utils import FIXTURES_DIR, REPO_ROOT, slider_player

CHECKPOINT = os.environ.get("MINICOSY_CHECKPOINT") or None  # None: the committed data/pretrained/tiny
if CHECKPOINT:
    CHECKPOINT = REPO_ROOT / CHECKPOINT  # a relative path is read from the repository root
seed_everything(0)
torch.set_num_threads(1)  # small models: one thread is fastest, and robust on a shared CPU
plt.rcParams["figure.dpi"] = 60  # small PNGs keep the notebook light
plt.rcParams["image.interpolation"] = "nearest"
MEL_CMAP = plt.get_cmap("magma", 32)
device = torch.device("cpu")  # pinned: latencies below are CPU latencies
model = MiniCosy.from_pretrained(CHECKPOINT, device=device)
SR, HOP = 24000, model.vocoder.cfg.hop_length  # 24 kHz, 480 samples per 50 Hz mel frame
M, P, UP = model.flow.cfg.chunk_tokens, model.flow.cfg.lookahead, model.flow.cfg.up  # flow chunk, lookahead, frames/token
N_LM, M_LM = model.lm.cfg.mix_n, model.lm.cfg.mix_m  # the LM's streaming block: N_LM text, then M_LM speech
H = model.vocoder.cfg.stream_lookahead  # frames the vocoder holds back per run
print(f"device: {device} (pinned; pick_device() would choose {pick_device()}) | checkpoint: "
      f"{CHECKPOINT or 'data/pretrained/tiny'}")
print(f"LM block N:M = {N_LM}:{M_LM} | flow chunk M = {M} tokens, lookahead P = {P} | vocoder holds back H = {H} frames")

# %% [markdown]
# The voice for this notebook is a **held-out** one (`mbrola_us3`, never heard in training): the prompt clip and its
# transcript come from the committed fixtures, chosen by the same rule as `make demo` (`minicosy.system.demo.demo_items`).
# A first, short request warms the system up — imports and first-call allocations — so that the timings below are
# those of a running server, not of Python loading libraries.

# %%
# NBVAL_IGNORE_OUTPUT
item = demo_items(("mbrola_us3",))[0]
prompt = item["prompt"]
voice = VoiceReference.from_file(prompt.audio_path(manifest_root(FIXTURES_DIR / "manifest.jsonl")), prompt.text)
t0 = time.perf_counter()
warm = list(model.stream("Hello there.", voice))
print(f"prompt: {prompt.id}, {voice.duration_ms / 1000:.2f} s, {voice.sample_rate} Hz: '{prompt.text}'")
print(f"warm-up request took {time.perf_counter() - t0:.2f} s")

# %% [markdown]
# ## 1 · The LM streams: $N{:}M$ blocks, text arriving as it is written
#
# A streaming LM cannot wait for the whole text. CosyVoice 2 (§2.3, Fig. 2) trains one LM on two layouts mixed
# together; the streaming one interleaves **$N$ text tokens, then $M$ speech tokens**, block after block:
#
# $$[\text{SOS}]\;\underbrace{t_1 \dots t_N}_{\text{text}}\;\underbrace{s_1 \dots s_M}_{\text{speech}}\;
# \underbrace{t_{N+1} \dots t_{2N}}_{\text{text}}\;\underbrace{s_{M+1} \dots s_{2M}}_{\text{speech}}\;\dots\;
# t_{\text{rest}}\;[\text{TASK}]\;s \dots s\;[\text{EOS}]$$
#
# In training, the output after the $M$-th speech token of a block is the target **FILL** ("more text, please");
# at inference FILL is never sampled — the schedule forces it — and the next $N$ text tokens are fed instead. EOS stays
# masked until the text has ended. The paper uses $N{:}M = 5{:}15$ with BPE text; minicosy's tiny LM reads characters
# (about 1.4 speech tokens each), so its block is $15{:}15$.
#
# **Bistream.** The text may arrive as an iterator of strings — an LLM writing its answer. `generate_bistream` pulls
# from it only when it needs the next $N$ text tokens. Below, a toy "LLM" yields one word at a time and records how
# many speech tokens the LM had drawn when each word was pulled. The voice is an SFT speaker here (a speaker tag,
# no prompt) so that the blocks start at the first token.

# %%
tok = model.text_tokenizer
text1 = "Nancy hates studying science on rainy mornings at home."
pulled = []


def llm_words(text):
    # a toy LLM: one word at a time, noting how many speech tokens exist when each word is pulled
    for w in text.split(" "):
        pulled.append((w, len(lm_req.tokens)))
        yield w + " "


lm_req = generate_bistream(model.lm, llm_words(text1), tok, speaker="flite_slt",
                           generator=torch.Generator().manual_seed(0))
speech = lm_req.run()
kinds = [(k, len(list(g))) for k, g in itertools.groupby(kind for kind, _ in lm_req.fed)]  # run lengths

# %%
# NBVAL_CHECK_OUTPUT
text_ids = [tok.speaker_id("flite_slt")] + tok.encode(text1)  # what the LM read: the speaker tag, then the text
n_blocks = len(text_ids) // N_LM
print(f"text: {len(text_ids)} ids (speaker tag + characters) → {n_blocks} full blocks of {N_LM}, "
      f"{len(text_ids) % N_LM} left over")
print("fed to the LM up to TASK:", " ".join(f"{k}×{n}" for k, n in kinds[:kinds.index(('task', 1)) + 1]))
print("speech tokens drawn when each word was pulled:", [n for _, n in pulled])
assert lm_req.fed[0] == ("sos", None) and all(n == N_LM for k, n in kinds[1:2 * n_blocks:2])
assert all(n == M_LM for k, n in kinds[2:2 * n_blocks + 1:2])  # every full block: exactly M speech tokens
assert [n for _, n in pulled] == sorted(n for _, n in pulled) and pulled[-1][1] <= M_LM * n_blocks

# %% [markdown]
# The words are pulled in bursts: the LM reads a block of $N$ characters, draws $M$ speech tokens, and only then asks
# the text source for more. **The same layout as in training:** `build_sequence(text, speech, streaming=True)` —
# the function that builds the LM's training sequences — gives exactly what the KV cache holds (`fed`), FILL excepted
# (a target, never an input). And the text arriving word by word changes nothing: with the whole text known at once
# (`generate(..., streaming=True)`) the same seed draws the same tokens.

# %%
# NBVAL_CHECK_OUTPUT
inputs, targets = build_sequence(text_ids, speech, streaming=True, n=N_LM, m=M_LM)
print("fed == build_sequence inputs:", lm_req.fed == inputs)
print("FILL targets (one per full block):", sum(t is not None and t[0] == "fill" for t in targets))
whole = generate(model.lm, tok.encode(text1), speaker_id=tok.speaker_id("flite_slt"), streaming=True,
                 generator=torch.Generator().manual_seed(0)).run()
print("bistream tokens == whole-text streaming tokens:", whole == speech)
assert lm_req.fed == inputs and whole == speech

# %%
fig, ax = plt.subplots(figsize=(11, 1.9))
colors = {"sos": "k", "text": "C0", "speech": "C1", "task": "C3"}
x = 0
for k, n in kinds:
    ax.barh(0, n, left=x, color=colors[k], edgecolor="white", lw=0.5)
    if n > 3:
        ax.text(x + n / 2, 0, f"{k} {n}", ha="center", va="center", color="white", fontsize=9)
    x += n
for b in range(1, n_blocks + 1):  # where FILL is forced: after each block's M speech tokens
    ax.axvline(1 + b * (N_LM + M_LM), color="C2", lw=2, ls="--")
ax.set(yticks=[], xlabel="position in the LM's input", xlim=(0, x),
       title="one streaming request: text blocks (blue), speech (orange), TASK (red); green = FILL forced")
plt.tight_layout()
plt.show()


# %% [markdown]
# ## 2 · The streaming loop on a timeline
#
# `MiniCosy.stream(text, voice)` chains three streaming stages in one thread:
#
# 1. the LM draws one speech token at a time (the layout above);
# 2. each token is pushed into the flow's `FlowStream`; once $M$ new tokens **and $P$ more** exist, one cached step of
#    the chunk-aware flow turns the chunk into $2M$ final mel frames (notebook 04) — with a voice prompt the prompt's
#    own tokens form a first block, computed once $P$ tokens exist (the lookahead of its last tokens);
# 3. each mel chunk goes into `Vocoder.stream`, which emits everything except the $H$ frames it holds back for the
#    next cross-fade (notebook 05).
#
# `MiniCosy.last_timing` (a `Timing`) records the cost of every step: one entry per LM draw, flow block and audio
# chunk. It stores durations; to place them on a clock we hand `stream` a `Timing` whose lists also note *when* each
# entry arrived — an ordinary `list` with a timestamp per `append`. Everything runs in one thread, so an entry ends
# when it is appended and started its duration earlier.

# %%
class Stamped(list):
    # A list that also records when each entry was added (time.perf_counter()).

    def __init__(self):
        super().__init__()
        self.at = []

    def append(self, x):
        super().append(x)
        self.at.append(time.perf_counter())

    def __iadd__(self, xs):  # the flow adds its block times with +=
        now = time.perf_counter()
        for x in xs:
            super().append(x)
            self.at.append(now)
        return self


def stamped_timing():
    return Timing("stream", lm_first_token_s=Stamped(), lm_token_s=Stamped(), flow_chunk_s=Stamped(),
                  vocoder_chunk_s=Stamped())


def spans(stamped, t0):
    # (start, end) of each entry, seconds since t0; entries added together ran one after the other
    out, i = [], 0
    while i < len(stamped):
        j = i
        while j + 1 < len(stamped) and stamped.at[j + 1] == stamped.at[i]:
            j += 1
        end = stamped.at[i] - t0
        for k in range(j, i - 1, -1):
            out.append((end - stamped[k], end))
            end -= stamped[k]
        i = j + 1
    return sorted(out)


def timed_stream(text, voice=None, speaker=None, chunk_tokens=None, seed=0):
    # one MiniCosy.stream request: its chunks, their arrival times, the stamped Timing and the call time
    timing, chunks, arrivals = stamped_timing(), [], []
    t0 = time.perf_counter()
    for c in model.stream(text, voice, speaker, seed=seed, chunk_tokens=chunk_tokens, timing=timing):
        arrivals.append(time.perf_counter() - t0)
        chunks.append(c)
    assert model.last_timing is timing
    return chunks, arrivals, timing, t0


text = "The officer likes studying science tomorrow. Nancy hates rain."
chunks, arrivals, tm, t_call = timed_stream(text, voice)
streamed = np.concatenate(chunks)
lm_spans = sorted(spans(tm.lm_first_token_s, t_call) + spans(tm.lm_token_s, t_call))
flow_spans, voc_spans = spans(tm.flow_chunk_s, t_call), spans(tm.vocoder_chunk_s, t_call)

# %% [markdown]
# **When does each stage fire?** Count the LM draws that finished before each flow block. For one sentence with a
# prompt the schedule is fixed: the prompt block after $P$ tokens, chunk $k$ after $M(k+1) + P$ tokens, the rest at the
# end of the sentence (its last chunk has no lookahead: zeros, as offline). The vocoder's first piece is the first
# chunk's $2M$ frames minus the $H$ it holds back.

# %%
# NBVAL_CHECK_OUTPUT
n1 = len(tm.tokens[0])  # tokens of the first sentence
drawn_before = [sum(end <= fe + 1e-9 for _, end in lm_spans) for _, fe in flow_spans]
full = [b for b in drawn_before if b <= n1]  # blocks fired by a token (not by the sentence's end)
print(f"sentences: {len(tm.tokens)} | first sentence: {n1} tokens")
print("LM draws before each flow block of sentence 1 (prompt block, then chunks):", full[:3], "...")
print(f"first audio chunk: {len(chunks[0]) // HOP} frames = 2M − H = {UP * M} − {H}")
assert n1 >= 2 * M + P and full[:3] == [P, M + P, 2 * M + P]
assert len(chunks[0]) == (UP * M - H) * HOP
assert len(streamed) == UP * HOP * sum(map(len, tm.tokens))  # 2 frames of 480 samples per token, no more, no less

# %%
# NBVAL_IGNORE_OUTPUT
s = tm.summary()
print(f"{s['n_tokens']} tokens, {s['n_flow_chunks']} flow blocks, {s['n_audio_chunks']} audio chunks; "
      f"{s['audio_s']:.2f} s of audio in {s['total_s']:.2f} s (RTF {s['rtf']:.2f}); first packet after "
      f"{1000 * s['first_packet_s']:.0f} ms")
print(f"medians: LM {1000 * s['lm_per_token_s']:.1f} ms/token, flow {1000 * s['flow_per_chunk_s']:.0f} ms/block, "
      f"vocoder {1000 * s['vocoder_per_chunk_s']:.0f} ms/chunk")


# %%
def plot_timeline(lm_spans, flow_spans, voc_spans, chunks, arrivals, prompt_s, title, ax_lanes, ax_audio):
    lanes = [("prompt", [(0.0, prompt_s)], "C7"), ("LM draws", lm_spans, "C0"), ("flow blocks", flow_spans, "C1"),
             ("vocoder", voc_spans, "C2")]
    for y, (name, sp, color) in enumerate(lanes):
        ax_lanes.broken_barh([(1000 * a, 1000 * max(b - a, 1e-4)) for a, b in sp], (y - 0.35, 0.7), color=color,
                             edgecolor="white", lw=0.3)
    for a in arrivals:
        ax_lanes.axvline(1000 * a, color="C3", lw=0.8, ls=":")
    ax_lanes.set(yticks=range(len(lanes)), yticklabels=[n for n, _, _ in lanes], title=title,
                 xlabel="wall clock since the call (ms); red dotted: an audio chunk leaves")
    got = np.cumsum([len(c) / SR for c in chunks])
    t = 1000 * np.array(arrivals)
    ax_audio.step(np.r_[0, t], np.r_[0, got], where="post", label="audio received")
    ax_audio.plot([t[0], t[0] + 1000 * got[-1]], [0, got[-1]], "k:", lw=1, label="playback from the first packet")
    ax_audio.set(xlabel="wall clock since the call (ms)", ylabel="seconds of audio", title="received vs played")
    ax_audio.legend(fontsize=8, loc="lower right")


fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 3.2), gridspec_kw=dict(width_ratios=[2.2, 1]))
plot_timeline(lm_spans, flow_spans, voc_spans, chunks, arrivals, tm.prompt_s,
              f"one request: M = {M}, P = {P}, {len(tm.tokens)} sentences", ax1, ax2)
plt.tight_layout()
plt.show()

# %% [markdown]
# Read the top lane by lane: the LM's draws (thin blue ticks) stop each time the flow computes a block (orange) — the
# same thread does both — and each flow block is followed at once by a short vocoder run (green) and an audio chunk
# (red line). At the end of a sentence the flow flushes its last, shorter chunk; the second sentence starts with a
# new LM request and a new flow stream (the prompt block again), while the vocoder keeps running as **one** stream.
# On the right: as long as the staircase stays above the dotted line, a player that started at the first packet never
# runs dry.

# %% [markdown]
# ## 3 · First-packet latency, part by part
#
# The paper (§2.5) writes the first-packet latency of the streaming TTS as the time to produce the first chunk's $M$
# tokens, their mel and their waveform:
#
# $$L_{TTS} = M \cdot d_{lm} + M \cdot d_{fm} + M \cdot d_{voc}$$
#
# with $d_{lm}$, $d_{fm}$, $d_{voc}$ the compute time per speech token of the LM, the flow and the vocoder. The measured
# first packet has more parts:
#
# $$L_{\text{first}} = t_{\text{prompt}} + t_{\text{prefill}} + (M + P - 1)\, d_{lm} + t_{fm}(\text{prompt block})
# + t_{fm}(\text{chunk}) + t_{voc}(\text{chunk}) + t_{\text{other}}$$
#
# — processing the voice prompt, the LM's prefill (its first draw runs the whole prefix through the model), the
# $P$ lookahead tokens the flow waits for, the prompt's own flow block, and Python's glue. The 150 ms headline of the
# official README and blog (a GPU, a pre-registered speaker) leaves the first two out.
#
# **Prompt processing, from scratch.** What the pipeline does with a voice before the LM starts: resample to 24 kHz,
# log-mel (50 Hz), 25 Hz speech tokens, trim both to exactly 2 frames per token, speaker vector from the mel. The cell
# then checks that this is what `MiniCosy` computes.

# %%
steps = {}
t = time.perf_counter()
wav24 = librosa.resample(voice.audio, orig_sr=voice.sample_rate, target_sr=SR) if voice.sample_rate != SR else voice.audio
mel_p = log_mel(torch.from_numpy(np.ascontiguousarray(wav24, dtype=np.float32)))  # (80, F) at 50 Hz
steps["resample + log-mel"], t = time.perf_counter() - t, time.perf_counter()
toks_p = model.speech_tokens(voice.audio, voice.sample_rate)  # (T_p,) at 25 Hz
steps["speech tokens"], t = time.perf_counter() - t, time.perf_counter()
toks_p, mel_p = align_tokens_and_frames(toks_p, mel_p, UP)  # exactly UP frames per token
spk_p = model.speaker.embed(mel_p)  # (spk_dim,)
steps["speaker vector"] = time.perf_counter() - t

ref = model.frontend.prompt(voice)  # the front end's own prompt processing
assert torch.equal(toks_p, ref.flow_tokens) and torch.equal(mel_p, ref.flow_mel) and torch.allclose(spk_p, ref.spk)
assert ref.lm_tokens == toks_p.tolist() and ref.lm_text == voice.transcript  # the LM gets the same tokens + transcript
print(f"prompt: {len(toks_p)} tokens, mel {tuple(mel_p.shape)}, speaker vector ({spk_p.numel()},) — equal to MiniCosy's")

# %%
# NBVAL_IGNORE_OUTPUT
print("prompt processing:", " | ".join(f"{k} {1000 * v:.0f} ms" for k, v in steps.items()),
      f"| in the request: {1000 * tm.prompt_s:.0f} ms")

# %%
first = tm.first_packet_s
n_draws = sum(end <= arrivals[0] for _, end in lm_spans)  # LM draws before the first audio chunk
parts = {"prompt processing": tm.prompt_s,
         "LM prefill (first draw)": tm.lm_first_token_s[0],
         f"LM: {M + P - 1} more tokens": sum(tm.lm_token_s[:M + P - 1]),
         "flow: prompt block": tm.flow_chunk_s[0],
         "flow: first chunk": tm.flow_chunk_s[1],
         "vocoder: first chunk": tm.vocoder_chunk_s[0]}
parts["other (glue)"] = first - sum(parts.values())
# the paper's formula with this run's per-token costs (medians over the request)
d_lm = float(np.median(tm.lm_token_s))
d_fm = float(np.median(tm.flow_chunk_s[1:])) / M  # a chunk block holds M tokens (blocks after the prompt's)
d_voc = float(np.median(tm.vocoder_chunk_s)) / M  # a vocoder run handles about one chunk: M tokens of frames
paper = {"M·d_lm": M * d_lm, "M·d_fm": M * d_fm, "M·d_voc": M * d_voc}

assert n_draws == M + P  # the first packet needs M + P tokens
assert parts["other (glue)"] >= -1e-6  # the parts are disjoint pieces of the first-packet time
assert 0 < first < tm.total_s and arrivals[0] < arrivals[-1]  # the first packet arrives before the whole audio

# %%
# NBVAL_IGNORE_OUTPUT
for name, v in parts.items():
    print(f"{name:26s} {1000 * v:7.1f} ms  {'█' * int(round(60 * v / first))}")
print(f"{'measured first packet':26s} {1000 * first:7.1f} ms")
print(f"\npaper's formula, L = M·(d_lm + d_fm + d_voc) with this run's costs: {1000 * sum(paper.values()):.0f} ms "
      f"(d_lm {1000 * d_lm:.1f}, d_fm {1000 * d_fm:.1f}, d_voc {1000 * d_voc:.1f} ms per token)")

# %%
fig, ax = plt.subplots(figsize=(10, 2.4))
short = {"measured": ["prompt", "prefill", "LM tokens", "flow: prompt", "flow: chunk", "vocoder", "other"],
         "paper formula": list(paper)}
for row, (label, d) in enumerate((("measured", parts), ("paper formula", paper))):
    left = 0.0
    for k, (name, v) in enumerate(zip(short[label], d.values())):
        ax.barh(row, 1000 * v, left=left, color=f"C{k}", edgecolor="white")
        if 1000 * v > 25:
            ax.text(left + 500 * v, row, name, ha="center", va="center", fontsize=8, color="white")
        left += 1000 * v
ax.set(yticks=[0, 1], yticklabels=["measured", "paper formula"], xlabel="ms",
       title="first-packet latency: the measured parts vs the paper's three terms")
plt.tight_layout()
plt.show()

# %% [markdown]
# The paper's three terms are the *steady-state* cost of one chunk; what a user waits for on top is the prompt, the
# prefill, the lookahead and — with a voice prompt — the prompt's flow block. That block covers the whole prompt at
# once (here 36 tokens, 72 frames, more than two chunks' worth), and it cannot start before the first $P$ tokens exist:
# the lookahead of the prompt's last tokens reads them, in the offline chunk-masked run as in the stream. Levers: a
# short prompt, a pre-registered voice (prompt processing done once, as the official 150 ms figure assumes) and a smaller $M$
# (the slider in section 7) — the LM term shrinks with $M + P$, the flow's chunk with $M$, while each chunk's fixed
# overhead stays.

# %% [markdown]
# ## 4 · Streamed = offline chunk-masked, up to the vocoder's cross-fades
#
# Two guarantees of the package, checked on this request's own tokens (`tm.tokens`, one list per sentence):
#
# * **mel, exactly** (to float rounding): the flow fed token by token (`FlowStream`, as the pipeline does) equals the
#   offline flow run with the chunk mask, `flow.inference(..., mask="chunk", chunk_tokens=M)` — notebook 04's result,
#   here with the trained model and the real prompt;
# * **audio, within the vocoder's stream tolerance**: the streamed waveform equals `tokens_to_audio(tokens, voice,
#   mask="chunk", chunk_tokens=M)` (flow offline with the chunk mask, one vocoder pass over all sentences) to 2 % of its
#   peak — the tolerance `tests/test_vocoder.py` and notebook 05 hold `Vocoder.stream` to. The differences sit in
#   the cross-fades at the joins of the audio chunks; elsewhere the recomputed audio is the offline audio.

# %%
with torch.inference_mode():
    fs = model.flow.stream(toks_p, mel_p, spk_p, chunk_tokens=M)
    pushed = [fs.push([t]) for t in tm.tokens[0]] + [fs.flush()]  # one token at a time, like the pipeline
    mel_stream = torch.cat(pushed, dim=1)
    mel_offline = model.flow.inference(torch.tensor(tm.tokens[0]), toks_p, mel_p, spk_p, mask="chunk", chunk_tokens=M)
    mel_noncausal = model.flow.inference(torch.tensor(tm.tokens[0]), toks_p, mel_p, spk_p)
offline, _ = model.tokens_to_audio(tm.tokens, voice, mask="chunk", chunk_tokens=M)
noncausal, _ = model.tokens_to_audio(tm.tokens, voice)  # the default offline path: non-causal flow
peak = float(np.abs(offline).max())
diff = np.abs(streamed - offline)
joins = np.cumsum([len(c) for c in chunks])[:-1]  # where each audio chunk starts
fade = H * HOP // 2  # the vocoder cross-fades the first half of its held-back tail
in_fade = np.zeros(len(diff), bool)
for j in joins:
    in_fade[j:j + fade] = True

# %%
# NBVAL_CHECK_OUTPUT
print("mel pieces per push (frames), non-empty ones:", [p.shape[1] for p in pushed if p.shape[1]])
print("mel: streamed == offline chunk-masked (max |Δ| ≤ 1e-4):", float((mel_stream - mel_offline).abs().max()) <= 1e-4)
print("audio: same length:", len(streamed) == len(offline), "| max |Δ| < 2 % of peak:", diff.max() < 0.02 * peak)
print("outside the cross-fades: max |Δ| < 0.1 % of peak:", diff[~in_fade].max() < 1e-3 * peak)
assert float((mel_stream - mel_offline).abs().max()) <= 1e-4
assert len(streamed) == len(offline) and diff.max() < 0.02 * peak and diff[~in_fade].max() < 1e-3 * peak

# %%
# NBVAL_IGNORE_OUTPUT
print(f"max |streamed − offline chunk-masked| / peak: {diff.max() / peak:.4f} in the cross-fades, "
      f"{diff[~in_fade].max() / peak:.6f} elsewhere")
print(f"mean |Δ log-mel|, chunk-masked vs non-causal flow (sentence 1): {float((mel_offline - mel_noncausal).abs().mean()):.3f}")

# %%
fig, ax = plt.subplots(3, 1, figsize=(11, 6.6), gridspec_kw=dict(height_ratios=[1.4, 1.4, 1]))
F = mel_offline.shape[1]
for a, m, name in ((ax[0], mel_stream, "streamed (FlowStream, token by token)"),
                   (ax[1], mel_noncausal, "offline, non-causal flow (the default offline path)")):
    a.imshow(m.numpy(), origin="lower", aspect="auto", cmap=MEL_CMAP, extent=(0, F / 50, 0, 80))
    a.set(title=f"sentence 1, {name}", ylabel="mel bin")
    for k in range(1, F // (UP * M) + 1):
        a.axvline(k * UP * M / 50, color="white", lw=1, ls="--")
t_ax = np.arange(len(diff)) / SR
ax[2].plot(t_ax, diff / peak, lw=0.6)
for j in joins:
    ax[2].axvspan(j / SR, (j + fade) / SR, color="C3", alpha=0.2)
ax[2].set(xlabel="seconds", ylabel="|Δ| / peak", xlim=(0, t_ax[-1]),
          title="|streamed − offline chunk-masked| audio: red = the vocoder's cross-fades")
ax[0].set_xlim(0, F / 50)
ax[1].set_xlim(0, F / 50)
plt.tight_layout()
plt.show()

# %% [markdown]
# The streamed mel is the chunk-masked one, not the non-causal one (second panel): near each chunk boundary (dashed)
# the non-causal flow saw further right. That difference is the quality cost of streaming; the paper reports it
# nearly lossless (WER 2.45 streaming vs 2.47 offline on LibriSpeech test-clean), and `minicosy eval tts` measures it
# for minicosy with the independent judges (notebook 07).

# %% [markdown]
# ## 5 · Long text: sentences, and no gap at the joins
#
# `stream` splits a `str` into sentences (`split_sentences`, at most 30 words a piece: the prompt plus the text must fit
# the LM's context) and runs one LM request and one flow stream per sentence — but a **single** vocoder stream across
# all of them, so its caches (mel context, source phase, held-back tail) carry over the join. The request above had two
# sentences; its join is at sample $2 \cdot 480 \cdot |\text{tokens}_1|$. Synthesising the sentences separately and
# gluing the waveforms (one vocoder pass each) is the naive alternative: each pass starts without left context and with
# a fresh source phase.

# %%
# NBVAL_CHECK_OUTPUT
paragraph = ("Mister Smith walked to the library on Monday. He wanted three books about trains, boats and planes; "
             "the library had only two of them, so he asked the librarian, who was very kind, to order the third one, "
             "and she promised to call him as soon as it arrived at the front desk next week. Then he went home.")
pieces = split_sentences(paragraph, MAX_WORDS)
print(f"{len(paragraph.split())} words → {len(pieces)} pieces of ≤ {MAX_WORDS} words:", [len(p.split()) for p in pieces])
assert " ".join(pieces).split() == paragraph.split()  # the words are never changed

join = UP * HOP * len(tm.tokens[0])  # first sample of sentence 2
naive = np.concatenate([model.tokens_to_audio(t, voice, mask="chunk", chunk_tokens=M)[0] for t in tm.tokens])
win = slice(join - 2400, join + 2400)  # ± 100 ms
print("streamed length == 960 samples per token (no gap, no overlap):", len(streamed) == UP * HOP * sum(map(len, tm.tokens)))
print("± 100 ms around the sentence join: streamed == one-pass offline within 2 % of peak:",
      np.abs(streamed[win] - offline[win]).max() < 0.02 * peak)
assert len(naive) == len(streamed) and np.abs(streamed[win] - offline[win]).max() < 0.02 * peak


# %%
# NBVAL_IGNORE_OUTPUT
def step(x):  # the sample-to-sample step across the join
    return float(abs(x[join] - x[join - 1]))


print(f"sample step at the join: streamed {step(streamed):.4f}, glued per-sentence passes {step(naive):.4f}; "
      f"median step of the streamed audio {float(np.median(np.abs(np.diff(streamed)))):.4f}")

# %%
fig, ax = plt.subplots(1, 2, figsize=(12, 3))
ms = (np.arange(win.start, win.stop) - join) / SR * 1000
ax[0].plot(ms, offline[win], lw=1.6, label="offline, one vocoder pass")
ax[0].plot(ms, streamed[win], lw=0.8, ls="--", label="streamed (one vocoder stream)")
ax[0].plot(ms, naive[win], lw=0.8, alpha=0.8, label="sentences synthesised separately, glued")
ax[0].axvline(0, color="red", lw=0.8)
ax[0].set(xlabel="ms around the sentence join", title="the join between sentence 1 and 2")
ax[0].legend(fontsize=8)
z = slice(join - 240, join + 240)
ax[1].plot((np.arange(z.start, z.stop) - join) / SR * 1000, streamed[z], lw=1, label="streamed")
ax[1].plot((np.arange(z.start, z.stop) - join) / SR * 1000, naive[z], lw=1, label="glued")
ax[1].axvline(0, color="red", lw=0.8)
ax[1].set(xlabel="ms", title="zoom: ± 10 ms")
ax[1].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 6 · Closing the generator early
#
# A 20,000-character text is ten times what `synthesize` accepts (it keeps the whole waveform and refuses past
# 2,000 characters, pointing to `stream`). `stream` reads it sentence by sentence, so the first packet costs what a
# short text costs. Then the listener hangs up: `close()` on the generator ends the request — the flow and vocoder
# generators at once, and the LM request with its KV cache and the text source it reads. For an iterator of text (an
# LLM upstream) that matters: its `finally` runs at once, so the upstream can stop writing. Garbage collection is
# switched off for the check, so reference counting alone must release everything.

# %%
long_text = ("The cat sat on the mat and looked at the rain. " * 450)[:20000]
t0 = time.perf_counter()
gen = model.stream(long_text, voice)
first_chunk = next(gen)
t_first = time.perf_counter() - t0
gen.close()
after_close = model.last_timing.summary()

closed = []


def endless_llm():
    try:
        while True:
            yield "and so on, "
    finally:
        closed.append("text source closed")


gc.disable()  # reference counting only
try:
    gen = model.stream(endless_llm(), voice)
    next(gen)
    gen.close()
    closed_at_once = list(closed)
finally:
    gc.enable()

# %%
# NBVAL_CHECK_OUTPUT
print(f"{len(long_text)} characters → {len(split_sentences(long_text, MAX_WORDS))} sentences; closed after the first packet")
print(f"tokens drawn: {after_close['n_tokens']} (= M + P), sentences started: {after_close['n_sentences']}, "
      f"audio chunks: {after_close['n_audio_chunks']}")
print("endless text source, right after close():", closed_at_once)
assert after_close["n_tokens"] == M + P and after_close["n_sentences"] == 1 and len(first_chunk)
assert closed_at_once == ["text source closed"]

# %%
# NBVAL_IGNORE_OUTPUT
print(f"first packet of the 20,000-character text after {1000 * t_first:.0f} ms")

# %% [markdown]
# ## 7 · Listen, and change the chunk size
#
# The streamed request of section 2 (the held-out voice cloned from its 1.5 s prompt), the same tokens through the
# offline chunk-masked path and through the non-causal flow, and the prompt itself.

# %%
for name, y in (("streamed", streamed), ("offline, chunk-masked (≈ streamed)", offline),
                ("offline, non-causal flow", noncausal), ("the prompt (recording)", voice.audio)):
    print(name)
    display(Audio(np.clip(y[: 3 * SR], -1, 1), rate=SR if y is not voice.audio else voice.sample_rate, normalize=False))


# %% [markdown]
# **The chunk size $M$.** The flow model was trained with chunk masks, so one set of weights streams with any chunk
# size; a smaller $M$ means an earlier first packet and less context per chunk. The slider re-runs the first sentence
# with `chunk_tokens=M` and redraws the timeline. (The lookahead $P$ cannot be changed after training: it is the
# kernel of the flow's lookahead convolution. It always adds $P$ tokens to the wait.)

# %%
def chunk_timeline(M_try=M):
    ch, arr, timing, t0 = timed_stream(text.split(". ")[0] + ".", voice, chunk_tokens=M_try)
    lm = sorted(spans(timing.lm_first_token_s, t0) + spans(timing.lm_token_s, t0))
    print(f"M = {M_try}: first packet after M + P = {M_try + P} tokens, {1000 * timing.first_packet_s:.0f} ms; "
          f"{len(ch)} audio chunks; RTF {timing.summary()['rtf']:.2f}")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 3), gridspec_kw=dict(width_ratios=[2.2, 1]))
    plot_timeline(lm, spans(timing.flow_chunk_s, t0), spans(timing.vocoder_chunk_s, t0), ch, arr, timing.prompt_s,
                  f"chunk M = {M_try} tokens", a1, a2)
    plt.tight_layout()
    plt.show()


slider_player(chunk_timeline, M_try=widgets.IntSlider(value=M, min=5, max=40, step=5, description="chunk M",
                                                      continuous_update=False))


# %% [markdown]
# ## 8 · Exercises
#
# 1. **A smaller chunk.** With `chunk_tokens=10` and an SFT speaker (no prompt block), how many LM tokens are drawn
#    before the first audio chunk leaves, and how many 50 Hz frames does that chunk hold? Set `tokens_needed` and
#    `first_frames`; the check streams it for real.
# 2. **Blocks.** In the streaming layout of section 1, how many speech tokens does the LM's input hold before its
#    third block of text, and how many text ids (speaker tag included) before that block? Answer from $N$ and $M$ of the
#    LM (`N_LM`, `M_LM`), not from the printout. Set `speech_before` and `text_before`.
# 3. **The paper's formula.** An LM drawing a token in 20 ms, a flow spending 150 ms per chunk of $M = 15$ tokens and a
#    vocoder 30 ms per chunk: what is $L_{TTS}$ in ms, and what does the lookahead $P = 4$ add to it? Set `L_tts_ms`
#    and `lookahead_ms`.
#
# Each check prints *not attempted* until you fill in its answer. The collapsed cell after them holds the solutions.

# %%
def check(name, ok):
    print(f"{name}: {'not attempted' if ok is None else ('correct' if ok else 'not yet — try again')}")


def ex1_ok(tokens_needed, first_frames):
    gen = model.stream("The officer likes studying science tomorrow.", speaker="flite_slt", chunk_tokens=10)
    c = next(gen)
    gen.close()
    return (tokens_needed, first_frames) == (model.last_timing.summary()["n_tokens"], len(c) // HOP)


def ex2_ok(speech_before, text_before):
    # count in what the LM was fed (section 1), up to the third run of text
    third = [i for i, (k, _) in enumerate(kinds) if k == "text"][2]
    return (speech_before, text_before) == tuple(sum(n for k, n in kinds[:third] if k == kind) for kind in ("speech", "text"))


def ex3_ok(L_tts_ms, lookahead_ms):
    return abs(L_tts_ms - (15 * 20 + 150 + 30)) < 1e-6 and abs(lookahead_ms - 4 * 20) < 1e-6


# %%
# NBVAL_CHECK_OUTPUT
# Exercise 1: replace None with integers
tokens_needed = None  # LM tokens drawn before the first audio chunk, chunk_tokens=10
first_frames = None   # 50 Hz frames in that chunk
check("exercise 1", None if None in (tokens_needed, first_frames) else ex1_ok(tokens_needed, first_frames))

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 2: replace None with integers
speech_before = None  # speech tokens fed before the third block of text
text_before = None    # text ids fed before it
check("exercise 2", None if None in (speech_before, text_before) else ex2_ok(speech_before, text_before))

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 3: replace None with numbers (ms)
L_tts_ms = None      # M·d_lm + M·d_fm + M·d_voc
lookahead_ms = None  # what P more LM tokens add
check("exercise 3", None if None in (L_tts_ms, lookahead_ms) else ex3_ok(L_tts_ms, lookahead_ms))

# %% jupyter={"source_hidden": true}
# NBVAL_CHECK_OUTPUT
# Solutions — try the exercises first.
# 1: the first chunk needs its 10 tokens plus P of lookahead; it holds 2·10 frames minus the H the vocoder keeps.
sol1 = (10 + P, UP * 10 - H)
# 2: two full blocks came first, each N_LM text ids followed by M_LM speech tokens.
sol2 = (2 * M_LM, 2 * N_LM)
# 3: M·d_fm is one chunk of the flow (150 ms) and M·d_voc one vocoder chunk (30 ms); P tokens cost P·d_lm.
sol3 = (15 * 20 + 150 + 30, 4 * 20)
results = [ex1_ok(*sol1), ex2_ok(*sol2), ex3_ok(*sol3)]
for n, ok in enumerate(results, 1):
    check(f"solution {n}", ok)
assert all(results)

# %% [markdown]
# ## Summary
#
# * The unified LM streams in blocks of $N$ text and $M$ speech tokens, FILL forced between them; text arriving as an
#   iterator is pulled one block at a time, and the LM's input is exactly its training layout (`build_sequence`).
# * `MiniCosy.stream` runs LM, flow and vocoder in one thread: a flow block after every $M$ tokens once $P$ more exist
#   (the prompt's block after the first $P$), a vocoder run after every flow block, one vocoder stream across sentences.
# * The first packet needs $M + P$ tokens: prompt processing + prefill + $(M + P - 1)$ draws + the prompt's and the
#   first chunk's flow blocks + one vocoder run. The paper's $M(d_{lm} + d_{fm} + d_{voc})$ is the steady-state part.
# * Streamed mel = offline chunk-masked mel to float rounding; streamed audio = offline chunk-masked audio within 2 % of
#   its peak, the differences confined to the vocoder's cross-fades; sentence joins are sample-exact.
# * `close()` ends the request at once, up to the text source.
#
# Next: notebook 07 — the whole system as a user meets it, judged by the independent judges.
