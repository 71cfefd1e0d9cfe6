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
# 3. **First-packet latency** — its parts (prompt processing, LM prefill, $M + P$ tokens, the prompt's flow block, one
#    flow chunk, one vocoder chunk), measured and compared with the paper's formula; then the same request with a
#    **registered voice**, whose prompt was processed once, beforehand.
# 4. **Streamed = offline, chunk-masked** — the mel exactly, the audio up to the vocoder's cross-fades.
# 5. **Joins** — a chunk join in the middle of speech, streamed vs offline vs vocoding each chunk alone; then long text,
#    split into sentences, one vocoder stream across them.
# 6. **Closing early** — a 20,000-character text, stopped after the first packet; what is released.
# 7. **Listen**, the chunk size $M$ (exactness for any $M$, quality measured) with a slider that redraws the timeline,
#    and four checked **exercises**, the first one to implement.
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
# **Runtime:** about 30 s on 2 CPU cores (default: the trained tiny checkpoints in `data/pretrained/tiny`); a GPU is
# not used (the latencies are CPU latencies). Set `MINICOSY_CHECKPOINT` to another checkpoint folder to use it instead.
# Every timing below is measured in this run and depends on the machine and its load: the text says which part is
# larger than which, never how many milliseconds a part takes.

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

CHECKPOINT = os.environ.get("MINICOSY_CHECKPOINT") or None  # None: data/pretrained/tiny
if CHECKPOINT:
    CHECKPOINT = REPO_ROOT / CHECKPOINT  # a relative path is read from the repository root
seed_everything(0)
torch.set_num_threads(1)  # small models: one thread is fastest, and robust on a shared CPU
plt.rcParams["figure.dpi"] = 100
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
# transcript come from the fixtures in `data/fixtures`, chosen by the same rule as `make demo`
# (`minicosy.system.demo.demo_items`).
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
#    own tokens form a first block. The shipped flow (`prompt_lookahead="clip"`) stops the prompt's lookahead at the
#    prompt's end, so that block depends on the prompt alone: it is computed once per request, before the first token
#    is needed, and each sentence forks it (a registered voice computes it at registration). A `"cross"` flow, whose
#    prompt's last tokens read the first $P$ generated tokens, would compute it per sentence once $P$ tokens exist;
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


def timed_stream(text, voice=None, speaker=None, chunk_tokens=None, seed=0, first_chunk_tokens=None):
    # one MiniCosy.stream request: its chunks, their arrival times, the stamped Timing and the call time
    timing, chunks, arrivals = stamped_timing(), [], []
    t0 = time.perf_counter()
    for c in model.stream(text, voice, speaker, seed=seed, chunk_tokens=chunk_tokens, timing=timing,
                          first_chunk_tokens=first_chunk_tokens):
        arrivals.append(time.perf_counter() - t0)
        chunks.append(c)
    assert model.last_timing is timing
    return chunks, arrivals, timing, t0


def stage_spans(timing, t_call):
    # the (start, end) spans of the LM draws, the flow blocks and the vocoder runs of one request
    lm = sorted(spans(timing.lm_first_token_s, t_call) + spans(timing.lm_token_s, t_call))
    return lm, spans(timing.flow_chunk_s, t_call), spans(timing.vocoder_chunk_s, t_call)


text = "The officer likes studying science tomorrow. Nancy hates rain."
chunks, arrivals, tm, t_call = timed_stream(text, voice)
streamed = np.concatenate(chunks)
lm_spans, flow_spans, voc_spans = stage_spans(tm, t_call)

# %% [markdown]
# **When does each stage fire?** Count the LM draws that finished before each flow block. For one sentence with a
# prompt the schedule is fixed: the prompt block before any draw (a "clip" flow, as here, runs it when the sentence
# starts; a "cross" flow would wait for $P$ tokens), chunk $k$ after $M(k+1) + P$ tokens, the rest at the end of the
# sentence (its last chunk has no lookahead: zeros, as offline). The vocoder's first piece is the first chunk's $2M$ frames minus the $H$ it holds back.

# %%
# NBVAL_CHECK_OUTPUT
n1 = len(tm.tokens[0])  # tokens of the first sentence
drawn_before = [sum(end <= fe + 1e-9 for _, end in lm_spans) for _, fe in flow_spans]
full = [b for b in drawn_before if b <= n1]  # blocks fired by a token (not by the sentence's end)
print(f"sentences: {len(tm.tokens)} | first sentence: {n1} tokens")
print("LM draws before each flow block of sentence 1 (prompt block, then chunks):", full[:3], "...")
print(f"first audio chunk: {len(chunks[0]) // HOP} frames = 2M − H = {UP * M} − {H}")
CROSS = not model.flow.cacheable_prompt  # the prompt block needs the first P generated tokens
assert n1 >= 2 * M + P and full[:3] == [P if CROSS else 0, M + P, 2 * M + P]
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
# new LM request and a new flow stream forked from the prompt state (no prompt block again), while the vocoder keeps
# running as **one** stream.
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
# $$L_{\text{first}} = t_{\text{prompt}} + t_{\text{LM}}(\text{prefill} + (M + P - 1)\text{ draws})
# + t_{fm}(\text{prompt block}) + t_{fm}(\text{chunk}) + t_{voc}(\text{chunk}) + t_{\text{other}}$$
#
# — processing the voice prompt, the LM's prefill (its first draw runs the whole prefix through the model) and the
# $P$ lookahead tokens the flow waits for, the prompt's own flow block, and Python's glue. The paper's formula counts
# none of the first, nor the lookahead, nor the prompt block. (The official project quotes a first packet "as low as
# 150 ms" on a GPU without publishing its parts; the open runtime re-runs the whole prefix through the flow at every hop,
# so its cost per chunk grows along the utterance — notebook 04.)
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
      f"| in the request (with the LM's prompt prefix): {1000 * tm.prompt_s:.0f} ms")

# %% [markdown]
# **The breakdown `Timing` records.** At the first packet `MiniCosy.stream` splits the time since the call along the
# critical path (`Timing.mark_first_packet`): `prompt` (the front end, including the LM's KV cache of the prompt prefix),
# `lm_wait` (the LM's prefill and draws; here the LM runs in the same thread, so all of its time is waiting time),
# `flow_prompt_block`, `flow_chunks`, `vocoder` and `other`. The check: the parts add up to the first packet, the LM
# drew exactly $M + P$ tokens for it, and the LM's own compute is inside its waiting time.

# %%
def breakdown(timing):
    # the first packet's parts (seconds), as the Timing recorded them, in the order they happen
    fp = timing.first_packet
    return {"prompt processing": fp["prompt"], "LM: prefill + draws": fp["lm_wait"],
            "flow: prompt block": fp["flow_prompt_block"], "flow: first chunk": fp["flow_chunks"],
            "vocoder: first chunk": fp["vocoder"], "other (glue)": fp["other"]}


first = tm.first_packet_s
parts = breakdown(tm)
n_draws = sum(end <= arrivals[0] for _, end in lm_spans)  # LM draws before the first audio chunk
assert n_draws == M + P == tm.first_packet["lm_tokens"]  # the first packet needs M + P tokens
assert abs(sum(parts.values()) - first) < 1e-3  # the parts tile the first-packet time (rounded to 10 µs each)
assert tm.first_packet["lm_compute"] <= tm.first_packet["lm_wait"] + 1e-4  # one thread: the LM's time is all waiting
assert len(tm.flow_prompt_s) == (len(tm.tokens) if CROSS else 1)  # "clip": once per request ("cross": per sentence)
assert 0 < first < tm.total_s and arrivals[0] < arrivals[-1]  # the first packet arrives before the whole audio
# the paper's formula with this run's per-token costs (medians over the request)
d_lm = float(np.median(tm.lm_token_s))
d_fm = float(np.median(tm.flow_m_chunks())) / M  # a flow block after the prompt's holds M tokens
d_voc = float(np.median(tm.vocoder_chunk_s)) / M  # a vocoder run handles about one chunk: M tokens of frames
paper = {"M·d_lm": M * d_lm, "M·d_fm": M * d_fm, "M·d_voc": M * d_voc}
print("first-packet parts recorded:", list(tm.first_packet)[:6])

# %%
# NBVAL_IGNORE_OUTPUT
for name, v in parts.items():
    print(f"{name:26s} {1000 * v:7.1f} ms  {'█' * int(round(60 * max(v, 0) / first))}")
print(f"{'measured first packet':26s} {1000 * first:7.1f} ms")
print(f"\npaper's formula, L = M·(d_lm + d_fm + d_voc) with this run's costs: {1000 * sum(paper.values()):.0f} ms "
      f"(d_lm {1000 * d_lm:.1f}, d_fm {1000 * d_fm:.1f}, d_voc {1000 * d_voc:.1f} ms per token)")

# %% [markdown]
# ### A registered voice: the prompt processed once
#
# A server that speaks in the same voice again and again processes its prompt once: `model.register_voice(name,
# VoiceReference)` (the official `add_zero_shot_spk`) keeps the prompt's tokens, mel and speaker vector, the LM's KV
# cache of the text-independent prefix (SOS, the prompt's transcript and tokens) and the flow's prompt state
# (`Prompt.flow_state`); `stream(text, voice=name)` then forks them. What the flow can keep depends on the checkpoint:
# with the shipped flow's `prompt_lookahead="clip"` the prompt block (encoder and every ODE step over the prompt) is
# computed at registration (a `"cross"` checkpoint, whose prompt block reads the first $P$ generated tokens, could keep
# only the checked inputs, and each stream would still compute the block). The cell registers a copy of the
# voice, streams the same text with it, and checks that the audio is the fresh voice's, sample for sample.

# %%
t0 = time.perf_counter()
reg = model.register_voice("us3", VoiceReference(voice.audio.copy(), voice.sample_rate, voice.transcript))
t_register = time.perf_counter() - t0
chunks_r, arrivals_r, tm_r, t_call_r = timed_stream(text, "us3")
lm_spans_r, flow_spans_r, voc_spans_r = stage_spans(tm_r, t_call_r)
parts_r = breakdown(tm_r)
F_SHORT = 10  # a short first chunk: 10 tokens = 20 frames, more than the vocoder's hold-back H
chunks_f, arrivals_f, tm_f, t_call_f = timed_stream(text, "us3", first_chunk_tokens=F_SHORT)
lm_spans_f, flow_spans_f, voc_spans_f = stage_spans(tm_f, t_call_f)
parts_f = breakdown(tm_f)

# %%
# NBVAL_CHECK_OUTPUT
print(f"flow checkpoint: prompt_lookahead = {model.flow.cfg.prompt_lookahead!r}; prompt block precomputed at "
      f"registration: {reg.flow_state.precomputed}")
print("registered voice, same text, same seed: the same audio:", np.array_equal(np.concatenate(chunks_r), streamed))
print("prompt blocks computed per request, fresh / registered:", len(tm.flow_prompt_s), "/", len(tm_r.flow_prompt_s))
assert np.array_equal(np.concatenate(chunks_r), streamed) and tm_r.tokens == tm.tokens
assert reg.flow_state.precomputed == (not CROSS) and len(tm_r.flow_prompt_s) == (len(tm_r.tokens) if CROSS else 0)
assert tm_r.prompt_s < tm.prompt_s  # the registered voice skips resampling, tokenizing, the speaker vector, the prefix
print(f"short first chunk F = {F_SHORT}: the same tokens: {tm_f.tokens == tm.tokens}; first packet after "
      f"{tm_f.first_packet['lm_tokens']} draws (F + P), {len(chunks_f[0]) // HOP} frames (2F − H) instead of "
      f"{len(chunks_r[0]) // HOP} (2M − H)")
assert tm_f.tokens == tm.tokens and tm_f.first_packet["lm_tokens"] == F_SHORT + P
assert len(chunks_f[0]) == (UP * F_SHORT - H) * HOP and 2 * F_SHORT > H

# %%
# NBVAL_IGNORE_OUTPUT
print(f"registration took {1000 * t_register:.0f} ms (once per voice)\n")
print(f"{'first packet, part':26s} {'fresh':>9s} {'registered':>11s} {f'registered, F = {F_SHORT}':>18s}")
for name in parts:
    print(f"{name:26s} {1000 * parts[name]:6.1f} ms {1000 * parts_r[name]:8.1f} ms {1000 * parts_f[name]:15.1f} ms")
print(f"{'total':26s} {1000 * tm.first_packet_s:6.1f} ms {1000 * tm_r.first_packet_s:8.1f} ms "
      f"{1000 * tm_f.first_packet_s:15.1f} ms")

# %%
def first_packet_lanes(ax, y, t_prompt, lm, flow, voc, prompt_idx, t_first):
    # one request up to its first packet, on one row: every part where (and when) it ran
    colors = {"prompt": "C7", "LM": "C0", "flow: prompt block": "C4", "flow: chunk": "C1", "vocoder": "C2"}
    segs = {"prompt": [(0.0, t_prompt)], "LM": [s for s in lm if s[1] <= t_first + 1e-9],
            "flow: prompt block": [s for i, s in enumerate(flow) if i in prompt_idx and s[1] <= t_first + 1e-9],
            "flow: chunk": [s for i, s in enumerate(flow) if i not in prompt_idx and s[1] <= t_first + 1e-9],
            "vocoder": voc[:1]}
    for name, sp in segs.items():
        ax.broken_barh([(1000 * a, 1000 * max(b - a, 1e-4)) for a, b in sp], (y - 0.35, 0.7), color=colors[name],
                       label=name if y == 0 else None)
    ax.plot([1000 * t_first] * 2, [y - 0.45, y + 0.45], color="C3", lw=2)


fig, ax = plt.subplots(figsize=(11, 3.3))
first_packet_lanes(ax, 0, tm.prompt_s, lm_spans, flow_spans, voc_spans, set(tm.flow_prompt_idx), arrivals[0])
first_packet_lanes(ax, 1, tm_r.prompt_s, lm_spans_r, flow_spans_r, voc_spans_r, set(tm_r.flow_prompt_idx),
                   arrivals_r[0])
first_packet_lanes(ax, 2, tm_f.prompt_s, lm_spans_f, flow_spans_f, voc_spans_f, set(tm_f.flow_prompt_idx),
                   arrivals_f[0])
left = 0.0
for k, (name, v) in enumerate(paper.items()):  # the paper's three terms, laid end to end
    ax.barh(3, 1000 * v, left=left, height=0.7, color=("C0", "C1", "C2")[k], edgecolor="white", hatch="//")
    left += 1000 * v
ax.set(yticks=[0, 1, 2, 3], yticklabels=["fresh voice", "registered voice", f"registered, first chunk F = {F_SHORT}",
                                         "paper: M·(d_lm+d_fm+d_voc)"],
       xlabel="ms since the call (red: the first audio chunk leaves)",
       title="the first packet, part by part: the same request, fresh, registered, registered with a short first chunk")
ax.legend(fontsize=8, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.32))
plt.tight_layout()
plt.show()

# %% [markdown]
# Read the rows from the left. With a fresh voice the request first processes the prompt (grey) and computes the
# prompt's flow block (purple; it covers the whole prompt at once, more frames than a chunk, in every ODE step) before
# the LM's first draw. A registered voice skips both — they were computed at registration — so its row starts with the
# LM at once. Then $M + P$ tokens, the first chunk (orange) and the vocoder (green). The third row is the registered
# voice with a **short first chunk** (`stream(..., first_chunk_tokens=F)`): the flow's first block holds $F$ tokens,
# so audio leaves after $F + P$ draws and a smaller flow block; it must still exceed the vocoder's hold-back
# ($2F > H$) to make any sound, and the first packet is then shorter ($2F - H$ frames instead of $2M - H$). The
# paper's three terms (hatched) are the *steady-state* cost of one chunk; what a user waits for on top is the prompt,
# the prefill, the lookahead and — for a fresh voice — the prompt block. Levers: register the voice (this section), a
# short first chunk, a short prompt, and a smaller $M$ (section 7) — the LM's share shrinks with $M + P$ and the
# flow's chunk with $M$, while each chunk's fixed overhead stays. The repository's latency benchmark
# (`benchmarks/streaming.py`) measures the same parts as medians over repeated runs.

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
fig, axs = plt.subplots(3, 2, figsize=(11, 7), gridspec_kw=dict(height_ratios=[1.4, 1.4, 1], width_ratios=[60, 1]))
ax, cax = axs[:, 0], axs[:, 1]
F = mel_offline.shape[1]
for a, c, m, name in ((ax[0], cax[0], mel_stream, "streamed (FlowStream, token by token)"),
                      (ax[1], cax[1], mel_noncausal, "offline, non-causal flow (the default offline path)")):
    im = a.imshow(m.numpy(), origin="lower", aspect="auto", cmap=MEL_CMAP, extent=(0, F / 50, 0, 80))
    a.set(title=f"sentence 1, {name}", ylabel="mel bin", xlabel="seconds", xlim=(0, F / 50))
    fig.colorbar(im, cax=c, label="log-mel")
    for k in range(1, F // (UP * M) + 1):
        a.axvline(k * UP * M / 50, color="white", lw=1, ls="--")
t_ax = np.arange(len(diff)) / SR
ax[2].plot(t_ax, diff / peak, lw=0.6)
for j in joins:
    ax[2].axvspan(j / SR, (j + fade) / SR, color="C3", alpha=0.2)
ax[2].set(xlabel="seconds (both sentences)", ylabel="|Δ| / peak", xlim=(0, t_ax[-1]),
          title="|streamed − offline chunk-masked| audio: red = the vocoder's cross-fades")
cax[2].axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# The streamed mel is the chunk-masked one, not the non-causal one (second panel): near each chunk boundary (dashed)
# the non-causal flow saw further right. That difference is the quality cost of streaming; the paper reports it
# nearly lossless (WER 2.45 streaming vs 2.47 offline on LibriSpeech test-clean), and `minicosy eval tts` measures it
# for minicosy with the independent judges (notebook 07).

# %% [markdown]
# ## 5 · Joins: inside speech, and between sentences
#
# **A chunk join in the middle of speech.** The audio leaves in chunks, and each join between two chunks falls wherever
# the $M$-token schedule puts it — in the middle of a word as often as not. Two ways to vocode a stream of mel chunks:
#
# * **the streaming vocoder** (`Vocoder.stream`, notebook 05): it keeps the mel context and the source phase from one
#   run to the next, holds back its last $H$ frames (they change once the next chunk's right context arrives) and
#   cross-fades the first half of them into the next run;
# * **each chunk on its own** (`model.vocoder(chunk)` per mel piece, glued): every piece starts without left context
#   and with a fresh source phase, and ends without right context.
#
# The cell takes sentence 1 of the request and compares both with the offline audio (one vocoder pass over the whole
# mel): the stream in the 10 ms on each side of the loudest of its audio-chunk joins (a stretch of speech, not a
# pause); the glued pieces inside the first piece and after the first seam.

# %%
sent1 = UP * HOP * len(tm.tokens[0])  # samples of sentence 1
W = SR // 100  # 10 ms on each side of a join


def local_rms(x, c):
    return float(np.sqrt(np.mean(x[c - W:c + W] ** 2)))


rms1 = float(np.sqrt(np.mean(offline[:sent1] ** 2)))
joins1 = [int(j) for j in joins if W <= j < sent1 - W]  # the stream's audio-chunk joins inside sentence 1
j_sp = max(joins1, key=lambda j: local_rms(offline, j))  # the loudest one: in the middle of speech
with torch.inference_mode():  # the alternative: vocode each flow chunk of sentence 1 alone, glue the pieces
    alone = np.concatenate([model.vocoder(p).float().numpy() for p in pushed if p.shape[1]])
seams = [int(s) for s in np.cumsum([p.shape[1] * HOP for p in pushed if p.shape[1]])[:-1]]
d_stream = float(np.abs(streamed - offline)[j_sp - W:j_sp + W].max()) / peak
err_alone = np.abs(alone - offline[:sent1]) / peak
d_first = float(err_alone[:seams[0] - W].max())  # inside the first piece (away from its right edge)
d_after = float(err_alone[seams[0]:].max())  # from the first seam on

# %%
# NBVAL_CHECK_OUTPUT
print(f"sentence 1: audio-chunk joins at frames {[j // HOP for j in joins1]}, vocoded-alone seams at "
      f"{[s // HOP for s in seams]}")
print("the chosen join lies in speech (20 ms RMS ≥ half the sentence's RMS):", local_rms(offline, j_sp) >= 0.5 * rms1)
print("± 10 ms around it: streamed within 2 % of the offline peak:", d_stream < 0.02)
print("vocoded alone: after the first seam over twice as far from offline as inside the first piece:",
      d_after > 2 * d_first, "| over 100× as far as the stream:", d_after > 100 * d_stream)
assert local_rms(offline, j_sp) >= 0.5 * rms1 and d_stream < 0.02 and d_after > 2 * d_first and d_after > 100 * d_stream

# %%
# NBVAL_IGNORE_OUTPUT
print(f"20 ms RMS at the join / sentence RMS: {local_rms(offline, j_sp) / rms1:.2f}")
print(f"max |Δ| / peak: streamed, ± 10 ms around the join {100 * d_stream:.3f} %; each chunk vocoded alone, inside the "
      f"first piece {100 * d_first:.1f} %, after the first seam {100 * d_after:.0f} %")

# %% [markdown]
# **Long text: sentences.** `stream` splits a `str` into sentences (`split_sentences`, at most 30 words a piece: the
# prompt plus the text must fit the LM's context) and runs one LM request and one flow stream per sentence — but a
# **single** vocoder stream across all of them, so its caches (mel context, source phase, held-back tail) carry over
# the join. The request above had two sentences; their join is at sample $2 \cdot 480 \cdot |\text{tokens}_1|$. It falls
# where sentence 1 ends, in the short pause after the full stop (the right-hand panel below), so what can be checked
# there is continuity: the stream holds exactly 960 samples per token (no gap, no overlap), and around the join it is the
# one-pass offline audio within the same 2 % of peak.

# %%
# NBVAL_CHECK_OUTPUT
paragraph = ("Mister Smith walked to the library on Monday. He wanted three books about trains, boats and planes; "
             "the library had only two of them, so he asked the librarian, who was very kind, to order the third one, "
             "and she promised to call him as soon as it arrived at the front desk next week. Then he went home.")
pieces = split_sentences(paragraph, MAX_WORDS)
print(f"{len(paragraph.split())} words → {len(pieces)} pieces of ≤ {MAX_WORDS} words:", [len(p.split()) for p in pieces])
assert " ".join(pieces).split() == paragraph.split()  # the words are never changed

join = sent1  # first sample of sentence 2
win = slice(join - 2400, join + 2400)  # ± 100 ms
print("streamed length == 960 samples per token (no gap, no overlap):", len(streamed) == UP * HOP * sum(map(len, tm.tokens)))
print("± 100 ms around the sentence join: streamed == one-pass offline within 2 % of peak:",
      np.abs(streamed[win] - offline[win]).max() < 0.02 * peak)
assert len(streamed) == UP * HOP * sum(map(len, tm.tokens)) and np.abs(streamed[win] - offline[win]).max() < 0.02 * peak

# %%
fig, ax = plt.subplots(1, 3, figsize=(13, 3.2), gridspec_kw=dict(width_ratios=[1, 1.6, 1]))
ms = (np.arange(j_sp - W, j_sp + W) - j_sp) / SR * 1000
ax[0].plot(ms, offline[j_sp - W:j_sp + W], lw=2.5, color="C7", label="offline, one vocoder pass")
ax[0].plot(ms, streamed[j_sp - W:j_sp + W], lw=1, ls="--", color="C0", label="streamed")
ax[0].axvline(0, color="k", lw=0.6, ls=":")
ax[0].set(xlabel="ms around the join", ylabel="amplitude", title="a chunk join inside speech")
ax[0].legend(fontsize=8, loc="lower left")
t1 = np.arange(sent1) / SR
ax[1].semilogy(t1, np.maximum(err_alone, 1e-7), lw=0.6, color="C3", label="each chunk vocoded alone")
ax[1].semilogy(t1, np.maximum(np.abs(streamed - offline)[:sent1] / peak, 1e-7), lw=0.6, color="C0", label="streamed")
for k, sm in enumerate(seams):
    ax[1].axvline(sm / SR, color="C3", lw=0.8, ls="--", label="seams (glued)" if k == 0 else None)
ax[1].axvline(j_sp / SR, color="k", lw=0.8, ls=":", label="the join on the left")
ax[1].set(xlabel="seconds (sentence 1)", ylabel="|Δ| / peak vs offline", ylim=(1e-7, 1e4), xlim=(0, t1[-1]),
          title="distance from the offline waveform")
ax[1].legend(fontsize=8, loc="upper center", ncol=2)
ms = (np.arange(win.start, win.stop) - join) / SR * 1000
ax[2].plot(ms, offline[win], lw=2.5, color="C7", label="offline, one vocoder pass")
ax[2].plot(ms, streamed[win], lw=0.8, ls="--", color="C0", label="streamed")
ax[2].axvline(0, color="k", lw=0.6, ls=":")
ax[2].set(xlabel="ms around the join of sentences 1 and 2", ylabel="amplitude", title="the sentence join")
ax[2].legend(fontsize=8, loc="lower left")
plt.tight_layout()
plt.show()

# %% [markdown]
# In speech, the streamed waveform lies on the offline one (left: the dashed line hides inside the grey one) — the held
# back frames and the cross-fade leave no step in the waveform at the join, and the stream's distance from the offline
# audio (middle, blue) stays far below the 2 % tolerance along the whole sentence. Vocoding each chunk alone (red)
# follows the offline waveform at the start of the first piece, which starts where the utterance starts, drifts off
# towards its end, where it lacks the right context the offline pass had, and from the first seam on every piece starts
# over — no left context, a fresh source phase — so the waveform is a different one.

# %% [markdown]
# ## 6 · Closing the generator early
#
# A 20,000-character text is ten times what `synthesize` accepts (it keeps the whole waveform and refuses past
# 2,000 characters, pointing to `stream`). `stream` reads it sentence by sentence, so its first packet waits for the
# same $M + P$ tokens of the first sentence as a short text does. Then the listener hangs up: `close()` on the generator ends the request — the flow and vocoder
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
# **The chunk size $M$.** One set of flow weights serves every chunk size at run time: `chunk_tokens=M` changes the
# mask, not the model. Two different claims hide in that sentence. *Exactness* holds for any $M$ — the stream computes
# what the offline flow computes under the chunk-$M$ mask; the cell checks it for two more sizes. *Quality* is another
# matter: the flow was trained with four masks (non-causal, full-causal, chunk-$M$ and chunk-$2M$ with the $M$ of its
# config), so other sizes are ones it was never trained on. The cell prints how far each chunk-masked mel is from the
# non-causal one (mean |Δ log-mel|, sentence 1): less context per chunk, further from the offline mel. A smaller $M$
# also means an earlier first packet; the slider re-runs the first sentence with `chunk_tokens=M` and redraws the
# timeline. (The lookahead $P$ cannot be changed after training: it is the kernel of the flow's lookahead convolution.
# It always adds $P$ tokens to the wait.)

# %%
M_sizes = (5, M, 2 * M)
exact, to_noncausal = {}, {}
with torch.inference_mode():
    for m_try in M_sizes:
        fs_try = model.flow.stream(toks_p, mel_p, spk_p, chunk_tokens=m_try)
        m_stream = torch.cat([fs_try.push(tm.tokens[0]), fs_try.flush()], dim=1)
        m_off = model.flow.inference(torch.tensor(tm.tokens[0]), toks_p, mel_p, spk_p, mask="chunk", chunk_tokens=m_try)
        exact[m_try] = float((m_stream - m_off).abs().max()) <= 1e-4
        to_noncausal[m_try] = float((m_off - mel_noncausal).abs().mean())

# %%
# NBVAL_CHECK_OUTPUT
print("streamed == offline chunk-masked (max |Δ| ≤ 1e-4), per chunk size M:", exact)
assert all(exact.values())

# %%
# NBVAL_IGNORE_OUTPUT
print("mean |Δ log-mel| to the non-causal flow, per chunk size M:", {k: round(v, 3) for k, v in to_noncausal.items()})

# %%
def chunk_timeline(M_try=M):
    ch, arr, timing, t0 = timed_stream(text.split(". ")[0] + ".", voice, chunk_tokens=M_try)
    print(f"M = {M_try}: first packet after M + P = {M_try + P} tokens, {1000 * timing.first_packet_s:.0f} ms; "
          f"{len(ch)} audio chunks; RTF {timing.summary()['rtf']:.2f}")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 3), gridspec_kw=dict(width_ratios=[2.2, 1]))
    plot_timeline(*stage_spans(timing, t0), ch, arr, timing.prompt_s, f"chunk M = {M_try} tokens", a1, a2)
    plt.tight_layout()
    plt.show()


slider_player(chunk_timeline, M_try=widgets.IntSlider(value=M, min=5, max=40, step=5, description="chunk M",
                                                      continuous_update=False))


# %% [markdown]
# ## 8 · Exercises
#
# 1. **Implement the streaming loop.** Write `my_stream_audio(tokens, prompt)`: the audio `MiniCosy.stream` sends for
#    one sentence, from the stages alone. Start a flow stream from the prompt
#    (`model.flow.stream(prompt.flow_tokens, prompt.flow_mel, prompt.spk, chunk_tokens=M)`), push the tokens one at a
#    time, `flush()` at the end, hand every non-empty mel piece to `model.vocoder.stream(...)` (it takes an iterator
#    of `(80, k)` pieces and yields audio tensors) and concatenate what it yields into one float32 array. The check
#    streams a sentence with the pipeline and compares. (Vocoding each piece with `model.vocoder(piece)` does not pass:
#    section 5 shows why.)
# 2. **A smaller chunk.** With `chunk_tokens=10` and an SFT speaker (no prompt block), how many LM tokens are drawn
#    before the first audio chunk leaves, and how many 50 Hz frames does that chunk hold? Set `tokens_needed` and
#    `first_frames`; the check streams it for real.
# 3. **Blocks.** In the streaming layout of section 1, how many speech tokens does the LM's input hold before its
#    third block of text, and how many text ids (speaker tag included) before that block? Answer from $N$ and $M$ of the
#    LM (`N_LM`, `M_LM`), not from the printout. Set `speech_before` and `text_before`.
# 4. **The paper's formula.** An LM drawing a token in 20 ms, a flow spending 150 ms per chunk of $M = 15$ tokens and a
#    vocoder 30 ms per chunk: what is $L_{TTS}$ in ms, and what does the lookahead $P = 4$ add to it? Set `L_tts_ms`
#    and `lookahead_ms`.
#
# Each check prints *not attempted* until you fill in its answer. The collapsed cell after them holds the solutions.

# %%
def check(name, ok):
    print(f"{name}: {'not attempted' if ok is None else ('correct' if ok else 'not yet — try again')}")


def ex1_ok(my_stream_audio):
    # the pipeline's audio for one sentence, and yours from its tokens and prompt
    want = np.concatenate(list(model.stream("Nancy hates studying science on rainy mornings.", voice)))
    toks = model.last_timing.tokens
    got = my_stream_audio(toks[0], model.frontend.prompt(voice))
    return len(toks) == 1 and got is not None and got.shape == want.shape and float(np.abs(got - want).max()) <= 1e-5


def ex2_ok(tokens_needed, first_frames):
    gen = model.stream("The officer likes studying science tomorrow.", speaker="flite_slt", chunk_tokens=10)
    c = next(gen)
    gen.close()
    return (tokens_needed, first_frames) == (model.last_timing.summary()["n_tokens"], len(c) // HOP)


def ex3_ok(speech_before, text_before):
    # count in what the LM was fed (section 1), up to the third run of text
    third = [i for i, (k, _) in enumerate(kinds) if k == "text"][2]
    return (speech_before, text_before) == tuple(sum(n for k, n in kinds[:third] if k == kind) for kind in ("speech", "text"))


def ex4_ok(L_tts_ms, lookahead_ms):
    return abs(L_tts_ms - (15 * 20 + 150 + 30)) < 1e-6 and abs(lookahead_ms - 4 * 20) < 1e-6


# %%
# NBVAL_CHECK_OUTPUT
# Exercise 1: replace None with your function, for example
#   def my_stream_audio(tokens, prompt):   # tokens: list of ints (one sentence); prompt: flow_tokens, flow_mel, spk
#       ...
#       return waveform                    # float32 (T,)
my_stream_audio = None
check("exercise 1", None if my_stream_audio is None else ex1_ok(my_stream_audio))

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 2: replace None with integers
tokens_needed = None  # LM tokens drawn before the first audio chunk, chunk_tokens=10
first_frames = None   # 50 Hz frames in that chunk
check("exercise 2", None if None in (tokens_needed, first_frames) else ex2_ok(tokens_needed, first_frames))

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 3: replace None with integers
speech_before = None  # speech tokens fed before the third block of text
text_before = None    # text ids fed before it
check("exercise 3", None if None in (speech_before, text_before) else ex3_ok(speech_before, text_before))

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 4: replace None with numbers (ms)
L_tts_ms = None      # M·d_lm + M·d_fm + M·d_voc
lookahead_ms = None  # what P more LM tokens add
check("exercise 4", None if None in (L_tts_ms, lookahead_ms) else ex4_ok(L_tts_ms, lookahead_ms))

# %% jupyter={"source_hidden": true}
# NBVAL_CHECK_OUTPUT
# Solutions — try the exercises first.
# 1: one flow stream, one token at a time, flushed; ONE vocoder stream over all the mel pieces (its caches carry over).
def sol1(tokens, prompt):
    fs = model.flow.stream(prompt.flow_tokens, prompt.flow_mel, prompt.spk, chunk_tokens=M)

    def mel_pieces():
        for t in tokens:
            piece = fs.push([t])
            if piece.shape[1]:
                yield piece
        piece = fs.flush()
        if piece.shape[1]:
            yield piece

    with torch.inference_mode():
        return np.concatenate([w.float().numpy() for w in model.vocoder.stream(mel_pieces())])


def wrong1(tokens, prompt):  # each mel piece vocoded alone: the same length, clicks at the seams
    fs = model.flow.stream(prompt.flow_tokens, prompt.flow_mel, prompt.spk, chunk_tokens=M)
    with torch.inference_mode():
        pieces = [fs.push([t]) for t in tokens] + [fs.flush()]
        return np.concatenate([model.vocoder(p).float().numpy() for p in pieces if p.shape[1]])


# 2: the first chunk needs its 10 tokens plus P of lookahead; it holds 2·10 frames minus the H the vocoder keeps.
sol2 = (10 + P, UP * 10 - H)
# 3: two full blocks came first, each N_LM text ids followed by M_LM speech tokens.
sol3 = (2 * M_LM, 2 * N_LM)
# 4: M·d_fm is one chunk of the flow (150 ms) and M·d_voc one vocoder chunk (30 ms); P tokens cost P·d_lm.
sol4 = (15 * 20 + 150 + 30, 4 * 20)
results = [ex1_ok(sol1), ex2_ok(*sol2), ex3_ok(*sol3), ex4_ok(*sol4)]
for n, ok in enumerate(results, 1):
    check(f"solution {n}", ok)
wrong = [ex1_ok(wrong1), ex2_ok(sol2[0] - P, sol2[1]), ex3_ok(sol3[1], sol3[0] + 1), ex4_ok(15 * 20, 4 * 20)]
print("wrong answers accepted:", sum(wrong), "of", len(wrong))
assert all(results) and not any(wrong)

# %% [markdown]
# ## Summary
#
# * The unified LM streams in blocks of $N$ text and $M$ speech tokens, FILL forced between them; text arriving as an
#   iterator is pulled one block at a time, and the LM's input is exactly its training layout (`build_sequence`).
# * `MiniCosy.stream` runs LM, flow and vocoder in one thread here: a flow block after every $M$ tokens once $P$ more
#   exist (the prompt's own block once per request, before the first draw), a vocoder run after every flow block, one
#   vocoder stream across sentences.
# * The first packet needs $M + P$ tokens: prompt processing + prefill + $(M + P - 1)$ draws + the prompt's and the
#   first chunk's flow blocks + one vocoder run (`Timing.first_packet` records each part). The paper's
#   $M(d_{lm} + d_{fm} + d_{voc})$ is the steady-state part. A registered voice skips the prompt processing and gives
#   the same audio; with the shipped "clip" flow it also skips the prompt block, computed once at registration. A
#   short first chunk ($F$ tokens, $2F > H$) cuts the LM draws and the flow block the first packet waits for.
# * Streamed mel = offline chunk-masked mel to float rounding, for any chunk size; streamed audio = offline
#   chunk-masked audio within 2 % of its peak (measured here: well under that), the differences confined to the
#   vocoder's cross-fades. At a chunk join inside speech the stream stays on the offline waveform; vocoding each chunk
#   alone breaks it at every seam. Between sentences the stream is continuous: exactly 960 samples per token, no gap.
# * `close()` ends the request at once, up to the text source.

# %% [markdown]
# ## Where to go from here
#
# * **Notebook 07** — the whole system as a user meets it: the four scenarios, judged by speech models this project
#   did not train, and what a listener hears.
# * **The code:** `minicosy/system/streaming.py` (the LM running ahead in its own thread when there are two or more
#   intra-op threads — this notebook pinned one), `minicosy/flow/streaming.py` (`FlowPromptState`, and the chunk
#   schedule `first_chunk_tokens`: a short first chunk, longer ones after, still equal to the offline chunk mask).
# * **Try:** `torch.set_num_threads(2)` before a `model.stream(...)` request, then compare
#   `model.last_timing.first_packet["lm_wait"]` with `["lm_compute"]`: the part of the LM's time the overlap hides.
