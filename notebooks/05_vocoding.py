# %% [markdown]
# # 05 · Vocoding: from a mel spectrogram back to a waveform
#
# **What you build.** The last stage of CosyVoice 2. The flow model stops at an 80-bin log-mel spectrogram at
# 50 frames per second; the **vocoder** turns that mel back into 24 kHz audio:
#
# 1. why a vocoder is needed at all — a mel spectrogram has no **phase**;
# 2. **Griffin-Lim**, the classic no-training answer, written from scratch (our baseline), with an iterations slider;
# 3. the **HiFT-style** neural vocoder: an F0 predictor, a **harmonic source** (neural source-filter, rebuilt here
#    sample for sample from its formula), an upsampling stack and an **iSTFT head**;
# 4. **training it as a GAN**: least-squares adversarial losses, feature matching, multi-period and
#    multi-resolution discriminators, the multi-resolution STFT loss and a full-band mel loss — one discriminator
#    step and one generator step written by hand and checked against the package's `train_step`;
# 5. listening and measuring: recording vs Griffin-Lim vs neural, with independent judges, and what each one cost;
# 6. **streaming**: chunk-by-chunk synthesis with a mel / source / audio cache and cross-fades, with a
#    chunk-size / lookahead slider.
#
# **Paper.** CosyVoice 2 (Du et al., arXiv 2412.10117) §2.4: the flow's mel is turned into audio by the HiFT
# vocoder of CosyVoice 1. HiFT = HiFTNet (Li et al., arXiv 2309.09493, §2: harmonic-plus-noise source, iSTFT
# head); its source is the neural source-filter (NSF) excitation of Wang, Takaki & Yamagishi (arXiv 1904.12088);
# its generator and losses are HiFi-GAN's (Kong et al., arXiv 2010.05646: §2.3 discriminators, §2.4 losses);
# the spectrogram discriminator is UnivNet's multi-resolution discriminator (Jang et al., arXiv 2106.07889);
# the multi-resolution STFT loss is Parallel WaveGAN's (Yamamoto et al., arXiv 1910.11480, §2.2); Snake
# activations (Ziyin et al., NeurIPS 2020). Baseline: Griffin & Lim (IEEE TASSP 1984) and its fast variant
# (Perraudin et al., WASPAA 2013). Where minicosy departs from the paper: `docs/paper_vs_code.md` §2 "Vocoder".
#
# **Code.** `minicosy/vocoder/hift.py` (generator, source, streaming), `minicosy/vocoder/griffinlim.py`,
# `minicosy/vocoder/train.py` (discriminators, losses, the loop), `minicosy/vocoder/evaluate.py` (the table).
#
# **Prerequisites.** Notebook 00 (the log-mel front end).
#
# **Runtime.** Well under the 90 s budget on 2 CPU cores (default, tiny preset); nothing is trained beyond one
# demonstration step, and everything runs on the CPU on purpose (the vocoder is small, and the checked figures
# must not depend on the machine), so a GPU changes nothing. The committed checkpoint came from
# `minicosy train vocoder --preset tiny`; its training budget is read from its JSON in section 5.
#
# **Contents.** 1 · why a vocoder · 2 · Griffin-Lim · 3 · the HiFT-style generator · 4 · training: the GAN ·
# 5 · listen and compare · 6 · streaming · 7 · exercises.

# %%
# NBVAL_IGNORE_OUTPUT
import copy
import inspect
import json
import math
import os
import time
from dataclasses import replace

import ipywidgets as widgets
import librosa
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Audio, display

from minicosy import MelConfig, Vocoder, griffin_lim, load_audio, log_mel, pick_device, seed_everything
from minicosy.audio import mel_spectrogram, stft_frames
from minicosy.data.manifest import manifest_root, read_manifest
from minicosy.utils import FIXTURES_DIR, REPO_ROOT, slider_player
from minicosy.vocoder.evaluate import eval_markdown
from minicosy.vocoder.griffinlim import istft_frames, mel_to_magnitude
from minicosy.vocoder.hift import VocoderConfig
from minicosy.vocoder.train import (Discriminators, PeriodDiscriminator, ResolutionDiscriminator, TrainConfig,
                                    discriminator_loss, feature_matching_loss, fullband_log_mel,
                                    generator_adv_loss, multi_resolution_stft_loss, pyin_f0, train_step)

PRESET = os.environ.get("MINICOSY_PRESET", "tiny")  # only the tiny checkpoint is committed
PRETRAINED = REPO_ROOT / "data" / "pretrained" / PRESET  # paths from the repository root
FIXTURES = FIXTURES_DIR / "manifest.jsonl"
seed_everything(0)
torch.set_num_threads(1)  # small models: one thread is fastest, and robust on a shared CPU
plt.rcParams["figure.dpi"] = 60  # small PNGs keep the notebook light
plt.rcParams["image.interpolation"] = "nearest"  # crisp pixels compress far better than smoothed ones
MEL_CMAP = plt.get_cmap("magma", 32)  # 32 colour levels: light PNGs, no visible loss
cfg = MelConfig.flow()  # the 24 kHz, hop-480, 80-bin front end of the flow and the vocoder
SR, HOP = cfg.sample_rate, cfg.hop_length
device = torch.device("cpu")  # pinned: the vocoder is small, and every checked figure is a CPU figure
print(f"device: {device} (pinned; pick_device() would choose {pick_device()}) | preset: {PRESET}")

# %% [markdown]
# ## 1 · Why a vocoder? The mel keeps magnitudes, not phase
#
# The front end computes $X = \mathrm{STFT}(x)$ with an `n_fft`-sample window every `hop` samples, keeps
# $|X|$, squeezes it through the triangular mel filters $M$ and takes the log:
#
# $$\text{logmel} = \log\big(\max(M\,|X|,\ 10^{-5})\big)$$
#
# Two things are lost: the **phase** $\angle X$, and the detail of $|X|$ inside each mel band. The cell below
# counts how few numbers per frame survive. Something must invent the rest.
#
# We use two short recordings from the committed fixture slice: a **train** voice (`flite_slt`)
# and a **held-out** voice (`mbrola_us3`), which the neural vocoder never heard in training.

# %%
utts = {u.voice: u for u in read_manifest(FIXTURES, split="test")}
root = manifest_root(FIXTURES)
clips = {}
for voice in ("flite_slt", "mbrola_us3"):
    w = load_audio(utts[voice].audio_path(root), SR)[: 3 * SR]  # ≤ 3 s
    w = w[: (w.size // HOP) * HOP]  # whole frames
    clips[voice] = (torch.from_numpy(w), utts[voice].text)
wav, text = clips["flite_slt"]
mel = log_mel(wav)  # (80, frames)
print(f"'{text}'  {wav.numel()} samples → mel {tuple(mel.shape)}")

# %%
# NBVAL_CHECK_OUTPUT
assert mel.shape == (cfg.n_mels, wav.numel() // HOP)
print(f"STFT: window {cfg.n_fft} samples, hop {HOP} ({1000 * HOP // SR} ms), mel bins over {cfg.fmin:.0f}–{cfg.fmax:.0f} Hz")
print("numbers per frame: new waveform samples", HOP, "| magnitude STFT", cfg.n_fft // 2 + 1, "| mel", mel.shape[0])
print("frames:", mel.shape[1], "| seconds:", round(wav.numel() / SR, 2))

# %%
fig, ax = plt.subplots(2, 1, figsize=(9, 4.5))
t = np.arange(wav.numel()) / SR
ax[0].plot(t, wav.numpy(), lw=0.5)
ax[0].set(title=f"recording ({text})", xlabel="seconds", xlim=(0, t[-1]))
ax[1].imshow(mel.numpy(), origin="lower", aspect="auto", extent=(0, t[-1], 0, 80), cmap=MEL_CMAP)
ax[1].set(title="80-bin log-mel (what the flow model produces)", xlabel="seconds", ylabel="mel bin")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 2 · Griffin-Lim, step by step
#
# **Step 1 — undo the filterbank.** Find a non-negative magnitude $S \ge 0$ with $M S \approx e^{\text{logmel}}$
# (least squares, multiplicative updates $S \leftarrow S \odot \frac{M^\top e^{\text{logmel}}}{M^\top M S}$):
# `mel_to_magnitude`. The filterbank $M$ is librosa's Slaney mel matrix; we build it with `librosa.filters.mel`
# and first check that it *is* the front end's: $M\,|\mathrm{STFT}(x)|$ must equal `mel_spectrogram(x)`.
#
# **Step 2 — find a phase** (Griffin & Lim 1984; momentum: Perraudin et al. 2013). Start from random phases
# and alternate two projections:
#
# $$x \leftarrow \mathrm{iSTFT}\big(S\, e^{i\angle c}\big), \qquad t \leftarrow \mathrm{STFT}(x), \qquad
# c \leftarrow t - \tfrac{m}{1+m}\, t_{\text{prev}}$$
#
# "keep the magnitudes we want" and "be the STFT of a real signal". With $m = 0$ this is the
# original 1984 algorithm; $m = 0.99$ is *fast* Griffin-Lim (momentum). We write the loop here from
# the package's STFT pair, track the **spectral inconsistency** $\lVert |t| - S\rVert / \lVert S\rVert$,
# and check that it equals `griffin_lim`.

# %%
M = torch.from_numpy(librosa.filters.mel(sr=SR, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax))
mag = stft_frames(wav[None], cfg).abs()[0]  # (961, frames)
assert torch.allclose(M @ mag, mel_spectrogram(wav), rtol=1e-4, atol=1e-6), "M must be the front end's filterbank"

S = mel_to_magnitude(mel[None])  # (1, 961, frames)
refit = torch.log(torch.clamp(M @ S[0], min=cfg.log_floor))
print("mel of the fitted magnitudes vs the mel: mean |Δ| =", round(float((refit - mel).abs().mean()), 3))


def griffin_lim_from_scratch(S, n_iter=32, momentum=0.99, seed=0):
    g = torch.Generator().manual_seed(seed)
    angles = torch.exp(2j * math.pi * torch.rand(S.shape, generator=g))  # random start
    prev = torch.zeros_like(angles)
    inconsistency = []
    for _ in range(n_iter):
        x = istft_frames(S * angles, cfg)          # keep the magnitudes
        t = stft_frames(x, cfg)                    # be a real signal's STFT
        inconsistency.append(float(torch.linalg.norm(t.abs() - S) / torch.linalg.norm(S)))
        c = t - (momentum / (1 + momentum)) * prev if momentum else t
        angles = c / (c.abs() + 1e-16)
        prev = t
    return istft_frames(S * angles, cfg).clamp(-1, 1)[0], inconsistency


gl_ours, incons = griffin_lim_from_scratch(S)
gl_ours_plain, incons_plain = griffin_lim_from_scratch(S, momentum=0.0)
gl = griffin_lim(mel, n_iter=32)
assert torch.allclose(gl_ours, gl, atol=1e-6), "the from-scratch loop must equal the package"
assert torch.allclose(gl_ours_plain, griffin_lim(mel, n_iter=32, momentum=0.0), atol=1e-6)

# %%
# NBVAL_CHECK_OUTPUT
print("inconsistency, fast GL:  iteration 1 →", round(incons[0], 2), "| iteration 32 →", round(incons[-1], 2))
print("inconsistency, plain GL: iteration 1 →", round(incons_plain[0], 2), "| iteration 32 →", round(incons_plain[-1], 2))
assert incons[-1] < incons[0] and incons[-1] < incons_plain[-1]

# %%
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(range(1, 33), incons, label="fast Griffin-Lim (m = 0.99)")
ax.plot(range(1, 33), incons_plain, label="plain Griffin-Lim (m = 0)")
ax.set(xlabel="iteration", ylabel="‖|STFT(x)| − S‖ / ‖S‖", title="Griffin-Lim: how consistent is the phase?")
ax.legend()
plt.tight_layout()
plt.show()


# %% [markdown]
# **Try it.** The slider reruns `griffin_lim` with another number of iterations and plays the result in the box
# under it (0 iterations = the fitted magnitudes with random phases); the default setting's result is shown below. Listen to how the "phasey", metallic quality fades
# with iterations but never quite goes away.

# %%
def gl_player(n_iter=32):
    y = griffin_lim(mel, n_iter=n_iter)
    l1 = float((log_mel(y) - mel).abs().mean())
    print(f"Griffin-Lim, {n_iter} iterations: log-mel L1 to the input mel {l1:.3f}")
    display(Audio(y.numpy(), rate=SR, normalize=False))


slider_player(gl_player, n_iter=widgets.IntSlider(value=32, min=0, max=128, step=4, description="iterations",
                                                  continuous_update=False))

# %% [markdown]
# Even at convergence some inconsistency remains: no real signal has exactly these magnitudes
# (they came through a lossy mel), and the phase found is only locally consistent — Griffin-Lim
# audio sounds "phasey" and metallic. A neural vocoder learns what real speech phase looks like.
#
# ## 3 · The HiFT-style vocoder
#
# CosyVoice 2 uses HiFT: a HiFi-GAN-like generator with two ideas that make it cheap and good.
#
# **(a) An F0 predictor and a harmonic source.** A conv stack predicts the pitch $f_0$ of every mel
# frame. The **neural source-filter** (NSF) source turns it into sines at the harmonics
# $k f_0$, $k = 1, \dots, K{+}1$, at 24 kHz. With $f_0[n]$ the frame's F0 held over its 480 samples,
# $v[n] = 1$ when $f_0[n]$ is above a voicing threshold (else 0), $\theta_k$ fixed start phases ($\theta_1 = 0$)
# and $\epsilon_k[n] \sim \mathcal N(0, 1)$:
#
# $$\varphi_k[n] = 2\pi\,\mathrm{frac}\Big(k\sum_{m\le n} \frac{f_0[m]}{f_s} + \theta_k\Big), \qquad
# e_k[n] = \alpha \sin\varphi_k[n]\cdot v[n] + \sigma_n\,\epsilon_k[n], \qquad
# \sigma_n = \begin{cases}\sigma & v[n] = 1 \text{ (voiced)}\\ \alpha/3 & v[n] = 0 \text{ (unvoiced)}\end{cases}$$
#
# $$\text{source}[n] = \tanh\Big(\sum_k w_k\, e_k[n] + b\Big)$$
#
# (NSF's sine excitation, HiFTNet §2; $\alpha$ = `sine_amp`, $\sigma$ = `noise_std`, $K$ = `n_harmonics`.)
# A voiced sample is a quiet chord of sines with a whisper of noise; an unvoiced one is noise only, louder. The phase
# is accumulated in cycles in float64 and wrapped by $\mathrm{frac}$, so it stays exact over minutes of audio and can be
# carried from one streaming chunk to the next. The learned merge $(w, b)$ mixes the $K{+}1$ channels into one.
# The generator does not have to *learn* periodicity: it filters a ready-made periodic excitation.
# Its F0 head is trained against pYIN pitch targets (`pyin_f0`, cached once per utterance).

# %%
voc = Vocoder.from_pretrained(PRETRAINED, device=device)
vcfg = voc.cfg
print("generator parameters:", voc.num_parameters(), "| upsampling", vcfg.upsample_rates,
      "| iSTFT n_fft", vcfg.istft_n_fft, "hop", vcfg.istft_hop)
neural, f0_hat = voc(mel, return_f0=True)  # (T,), (frames,)
f0_ref = torch.from_numpy(pyin_f0(wav.numpy(), mel.shape[1]))  # pYIN, 0 where unvoiced
src = voc.generator.source  # the HarmonicSource module
with torch.no_grad():
    source, _ = src(f0_hat[None])  # inference: fixed noise table → (1, 1, T)
source = source[0, 0]


# %% [markdown]
# **The source from scratch.** We rebuild it from the formula, drive it with the pYIN F0 (so both voiced and
# unvoiced samples occur), and compare with the package's `HarmonicSource`. In training mode the package draws
# fresh Gaussian noise $\epsilon$ from torch's generator, so seeding the generator identically before both calls
# makes the two noises equal. The fixed start phases $\theta_k$ and the merge $(w, b)$ are read from the module.

# %%
def nsf_source_from_scratch(f0, theta, w, b, seed):
    # f0 (1, F) Hz per frame → source (1, 1, F·hop)
    f0_n = f0.double().repeat_interleave(vcfg.hop_length, dim=1)       # f0[n]: each frame held over its hop
    cycles = torch.cumsum(f0_n / vcfg.sample_rate, dim=1)              # Σ_{m≤n} f0[m]/fs, in cycles (float64)
    k = torch.arange(1, vcfg.n_harmonics + 2, dtype=torch.float64)     # harmonics 1 .. K+1
    phi = torch.frac(cycles[..., None] * k + theta) * (2 * math.pi)    # φ_k[n] = 2π·frac(k·cycles + θ_k)
    v = (f0_n > vcfg.voiced_threshold).float()[..., None]              # v[n]
    sigma = v * vcfg.noise_std + (1 - v) * vcfg.sine_amp / 3           # σ_n: σ voiced, α/3 unvoiced
    torch.manual_seed(seed)
    eps = torch.randn(f0.shape[0], f0_n.shape[1], k.numel())           # ε_k[n] ~ N(0, 1)
    e = vcfg.sine_amp * torch.sin(phi).float() * v + sigma * eps       # e_k[n]
    return torch.tanh(e @ w.T + b).transpose(1, 2)                     # tanh(Σ_k w_k e_k + b)


f0_in = f0_ref[None]
with torch.no_grad():
    src.train()  # training mode: fresh noise from torch's generator
    torch.manual_seed(7)
    pkg_source, _ = src(f0_in)
    src.eval()
    ours_source = nsf_source_from_scratch(f0_in, src.theta, src.merge.weight, src.merge.bias, seed=7)
assert torch.allclose(ours_source, pkg_source, atol=1e-6), "the from-scratch NSF source must equal HarmonicSource"

# %%
# NBVAL_CHECK_OUTPUT
v_n = (f0_in.repeat_interleave(HOP, dim=1) > vcfg.voiced_threshold)
print(f"α (sine_amp) = {vcfg.sine_amp} | σ voiced (noise_std) = {vcfg.noise_std} | σ unvoiced = α/3 = {vcfg.sine_amp / 3:.4f}")
print(f"sines: {vcfg.n_harmonics + 1} (harmonics 1..{vcfg.n_harmonics + 1}) | voicing threshold {vcfg.voiced_threshold} Hz")
print(f"voiced samples {int(v_n.sum())} | unvoiced samples {int((~v_n).sum())}")
print("max |from scratch − HarmonicSource| < 1e-6:", float((ours_source - pkg_source).abs().max()) < 1e-6)

# %%
# NBVAL_CHECK_OUTPUT
voiced = (f0_ref > 0) & (f0_hat > vcfg.voiced_threshold)
err = (f0_hat[voiced] - f0_ref[voiced]).abs()
print("voiced frames (pyin):", int((f0_ref > 0).sum()), "of", len(f0_ref))
print("median |F0 error| on frames both call voiced:", round(float(err.median())), "Hz")
assert float(err.median()) < 30

# %%
fig, ax = plt.subplots(1, 2, figsize=(11, 3.2))
ft = np.arange(len(f0_ref)) / 50
ax[0].plot(ft, f0_ref.numpy(), ".", ms=3, label="pYIN (target)")
ax[0].plot(ft, f0_hat.numpy(), lw=1, label="F0 predictor (from the mel)")
ax[0].set(xlabel="seconds", ylabel="Hz", title="F0 per mel frame")
ax[0].legend()
i0 = int(np.argmax(voiced.numpy())) * HOP + 4 * HOP  # a voiced stretch
seg = slice(i0, i0 + 720)  # 30 ms
ax[1].plot(np.arange(720) / SR * 1000, source[seg].numpy(), lw=0.8, label="harmonic source")
ax[1].plot(np.arange(720) / SR * 1000, wav[seg].numpy() / wav[seg].abs().max().item() * source[seg].abs().max().item(),
           lw=0.8, alpha=0.7, label="recording (scaled)")
ax[1].set(xlabel="ms", title="30 ms of the NSF excitation")
ax[1].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
# The source's spectrum over a voiced stretch peaks at multiples of the predicted F0.
k0 = i0 // HOP
stretch = source[k0 * HOP:(k0 + 8) * HOP].numpy()
spec = np.abs(np.fft.rfft(stretch * np.hanning(stretch.size)))
freqs = np.fft.rfftfreq(stretch.size, 1 / SR)
peak = freqs[np.argmax(spec * ((freqs > 50) & (freqs < 1000)))]
f0_mean = float(f0_hat[k0:k0 + 8].mean())
print("strongest partial between 50 Hz and 1 kHz is harmonic number", round(peak / f0_mean))
assert round(peak / f0_mean) >= 1 and abs(peak / f0_mean - round(peak / f0_mean)) < 0.15

# %% [markdown]
# **(b) An upsampling stack, then an iSTFT head.** The mel (50 Hz) is upsampled by transposed
# convolutions with Snake residual blocks ($\text{snake}(x) = x + \sin^2(\alpha x)/\alpha$),
# and at every level the STFT of the harmonic source is mixed in. HiFi-GAN would upsample all the
# way to 24 kHz (×480), which is where most of its compute goes. HiFT stops early and lets an
# **inverse STFT** do the last step: the final conv predicts, for every STFT frame, a
# log-magnitude $a$ and a phase term $b$ per bin, and
#
# $$\hat x = \mathrm{iSTFT}\big(e^{a}\, e^{i \sin b}\big) \quad\text{(HiFT)}, \qquad
# \hat x = \mathrm{iSTFT}\big(e^{a}\, e^{i(\angle S + \sin b)}\big) \quad\text{(tiny preset)}$$
#
# where $S$ is the STFT of the harmonic source at the head's own size. The two presets, read from `VocoderConfig`:

# %%
# NBVAL_CHECK_OUTPUT
print(f"{'preset':7s} {'upsampling':>12s} {'STFT frames':>12s} {'iSTFT n_fft/hop':>16s} {'phase':>10s} {'total':>6s} {'parameters':>11s}")
for name, c in (("paper", VocoderConfig.paper()), ("tiny", VocoderConfig.tiny())):
    ups = " × ".join(map(str, c.upsample_rates))
    n_par = sum(p.numel() for p in Vocoder(c).generator.parameters())
    print(f"{name:7s} {ups:>12s} {c.sample_rate // c.istft_hop:>9d} Hz {c.istft_n_fft:>9d} / {c.istft_hop:<4d}"
          f" {'∠S + sin b' if c.source_phase else 'sin b':>10s} {c.upsample_factor * c.istft_hop:>6d} {n_par / 1e6:>9.2f} M")
assert vcfg == VocoderConfig.tiny(), "the committed checkpoint is the tiny preset"

# %% [markdown]
# **Why the tiny preset differs.** HiFT's 16-point head has 9 bins, each 1.5 kHz wide: harmonics and
# formants must be built by the convolutions in the waveform itself, which takes a GPU and hundreds
# of thousands of steps. A 480-point head has 50 Hz bins that resolve the harmonics, and borrowing
# the source's phase makes them coherent from frame to frame from the first step; the network
# only has to learn *how loud* each bin is. Before any training, `scripts/vocoder_head_ceiling.py`
# measured the ceiling of such heads: each test recording resynthesised from its *own* STFT magnitude at a few
# head sizes, with the source's phase, and judged like the vocoder (table below). An earlier tiny preset with
# HiFT's short head stayed behind Griffin-Lim on every judge within a CPU budget; this is why the tiny preset
# changed head (`docs/paper_vs_code.md` §2).

# %%
# NBVAL_CHECK_OUTPUT
ceiling = json.loads((REPO_ROOT / "results" / "vocoder_head_ceiling.json").read_text())
print(f"{'system':24s} {'WER':>6s} {'×rec':>6s} {'similarity':>10s} {'mel-L1':>7s}")
for name, r in ceiling["systems"].items():
    print(f"{name:24s} {r['wer']:6.3f} {r['wer_ratio']:6.2f} {r.get('similarity', 1.0):10.3f} {r.get('mel_l1', 0.0):7.3f}")
best = ceiling["systems"][f"source_phase_{vcfg.istft_n_fft}_{vcfg.istft_hop}"]
assert best["similarity"] > ceiling["systems"]["griffin_lim_32"]["similarity"]

# %% [markdown]
# We catch the head's output and the source with forward hooks and do the iSTFT ourselves:

# %%
captured = {}
hooks = [voc.generator.conv_post.register_forward_hook(lambda mod, inp, out: captured.update(head=out)),
         voc.generator.source.register_forward_hook(lambda mod, inp, out: captured.update(source=out[0]))]
neural_again = voc(mel)
for h in hooks:
    h.remove()
head = captured["head"][0]  # (n_fft + 2, frames · U + 1)
n_fft, hop = vcfg.istft_n_fft, vcfg.istft_hop
half = n_fft // 2 + 1
window = torch.hann_window(n_fft)
S_src = torch.stft(captured["source"][0, 0], n_fft, hop, n_fft, window=window, center=True, return_complex=True)
head_mag = torch.exp(head[:half].clamp(max=voc.generator.log_mag_max))
phase = torch.sin(head[half:]) + (torch.angle(S_src) if vcfg.source_phase else 0)
ours = torch.istft(torch.polar(head_mag, phase), n_fft, hop, n_fft, window=window,
                   center=True, length=mel.shape[1] * HOP).clamp(-vcfg.audio_limit, vcfg.audio_limit)
assert torch.allclose(ours, neural, atol=1e-4) and torch.equal(neural_again, neural)
print("head output", tuple(head.shape), "→ iSTFT →", tuple(ours.shape), "samples: equal to the vocoder's")

# %%
fig, ax = plt.subplots(1, 2, figsize=(11, 3.2))
rate = SR // hop  # head frames per second
span = slice(0, int(1.2 * rate))
ax[0].imshow(torch.log(head_mag[:, span] + 1e-4).numpy(), origin="lower", aspect="auto", cmap=MEL_CMAP,
             extent=(0, span.stop / rate, 0, SR / 2 / 1000))
ax[0].set(xlabel="seconds", ylabel="kHz", title=f"head log-magnitude ({half} bins, {rate} Hz frames)")
ax[1].imshow(torch.log(S_src.abs()[:, span] + 1e-4).numpy(), origin="lower", aspect="auto", cmap=MEL_CMAP,
             extent=(0, span.stop / rate, 0, SR / 2 / 1000))
ax[1].set(xlabel="seconds", title="harmonic source |S|: the phase donor")
for a in ax:
    a.set_ylim(0, 4)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 4 · Training: a GAN with reconstruction losses
#
# A mel-L1 loss alone gives a vocoder that is *right on average* and therefore buzzy and smeared: many waveforms
# share one mel, and an L1 loss rewards their blur. HiFi-GAN adds **discriminators** $D_k$ that learn to tell
# real audio $x$ from generated audio $G(s)$ ($s$ the mel), and trains the generator to fool them. It uses the
# least-squares GAN (LSGAN) objectives (HiFi-GAN §2.4, Eqs. 1–2), summed over the sub-discriminators $k$:
#
# $$\mathcal L_D = \sum_k \mathbb E\big[(D_k(x) - 1)^2\big] + \mathbb E\big[D_k(G(s))^2\big], \qquad
# \mathcal L_{adv}(G) = \sum_k \mathbb E\big[(D_k(G(s)) - 1)^2\big]$$
#
# — the discriminator pushes real scores to 1 and fake scores to 0, the generator pushes fake scores to 1.
# **Feature matching** (HiFi-GAN §2.4, Eq. 4) asks the generated audio to produce the same *intermediate*
# activations $D_k^l$ as the real audio in every layer $l$ of every discriminator, a much denser signal than one score:
#
# $$\mathcal L_{FM} = \sum_k \sum_l \frac{1}{N_l}\big\lVert D_k^l(x) - D_k^l(G(s))\big\rVert_1$$
#
# **Two families of discriminators.**
#
# * **Multi-period** $D_p$ (HiFi-GAN §2.3): the waveform of length $T$ is folded into a 2-D image of shape
#   $(T/p, p)$ and 2-D convolutions with kernels $(k, 1)$ run down the columns, so column $j$ sees samples
#   $j, j+p, j+2p, \dots$ — periodic structure at period $p$ becomes a straight line. Periods 2, 3, 5, 7, 11
#   (primes, so they overlap as little as possible).
# * **Multi-resolution spectrogram** $D_r$ (UnivNet's MRD): 2-D convolutions over a linear STFT magnitude at
#   three STFT sizes (a fine time grid, a fine frequency grid, and one in between).
#
# The package's `Discriminators()` holds both; the cell lists them with the shapes of their scores and the number
# of feature maps each contributes to $\mathcal L_{FM}$, and shows the period fold on a toy signal.

# %%
# NBVAL_CHECK_OUTPUT
toy = torch.arange(12.0)[None, None]  # (B=1, 1, T=12)
print("fold with p = 3: samples 0..11 as a (T/p, p) image; column j holds samples j, j+3, j+6, ...")
print(toy.view(1, 1, -1, 3)[0, 0].long().tolist())

tcfg = TrainConfig.tiny()
seg_frames = tcfg.segment_frames  # training segments: seg_frames mel frames
torch.manual_seed(0)
disc = Discriminators()
probe = disc(torch.zeros(1, seg_frames * HOP))
print(f"\none training segment = {seg_frames} frames = {seg_frames * HOP / SR:.2f} s; sub-discriminators:")
for d, (score, feats) in zip(disc.subs, probe):
    kind = (f"period p = {d.period}" if isinstance(d, PeriodDiscriminator)
            else f"spectrogram n_fft {d.n_fft}, hop {d.hop}, window {d.win}")
    print(f"  {kind:46s} score {tuple(score.shape)}, {len(feats)} feature maps")
print(f"discriminator parameters: {sum(p.numel() for p in disc.parameters())}")

# %% [markdown]
# **One batch, the losses by hand.** We take a fixed batch — one training segment from each of our two clips,
# with its pYIN F0 (in training, the harmonic source is driven by the pYIN F0, *teacher forcing*, while the F0
# head learns to predict it) — run a copy of the committed generator in training mode, score real and generated
# audio with the (freshly initialised) discriminators, and compute $\mathcal L_D$, $\mathcal L_{adv}$ and
# $\mathcal L_{FM}$ with explicit loops over discriminators and layers. They must equal the package's
# `discriminator_loss`, `generator_adv_loss` and `feature_matching_loss`.

# %%
start = 20  # frames: skip the leading silence
wav_b = torch.stack([w[start * HOP:(start + seg_frames) * HOP] for w, _ in clips.values()])  # (2, seg·480)
f0_full = {v: (f0_ref if v == "flite_slt" else torch.from_numpy(pyin_f0(w.numpy(), w.numel() // HOP)))
           for v, (w, _) in clips.items()}
f0_b = torch.stack([f[start:start + seg_frames] for f in f0_full.values()])  # (2, seg)
mel_b = log_mel(wav_b)  # (2, 80, seg)

gen = copy.deepcopy(voc.generator).train()
with torch.no_grad():
    torch.manual_seed(1)
    y_b, f0_hat_b = gen(mel_b, f0_source=f0_b)  # teacher-forced source
    real_out, fake_out = disc(wav_b), disc(y_b)  # lists of (score, [feature maps]) per sub-discriminator


def lsgan_d_by_hand(real_out, fake_out):
    total = 0.0
    for (real_score, _), (fake_score, _) in zip(real_out, fake_out):
        total = total + ((real_score - 1) ** 2).mean() + (fake_score ** 2).mean()  # E[(D(x)−1)²] + E[D(G(s))²]
    return total


def lsgan_g_by_hand(fake_out):
    return sum(((fake_score - 1) ** 2).mean() for fake_score, _ in fake_out)  # Σ_k E[(D_k(G(s))−1)²]


def feature_matching_by_hand(real_out, fake_out):
    total = 0.0
    for (_, real_feats), (_, fake_feats) in zip(real_out, fake_out):  # every discriminator k
        for rf, ff in zip(real_feats, fake_feats):  # every layer l
            total = total + (rf.detach() - ff).abs().mean()  # real features are targets: no gradient
    return total


loss_d_hand = lsgan_d_by_hand(real_out, fake_out)
loss_adv_hand = lsgan_g_by_hand(fake_out)
loss_fm_hand = feature_matching_by_hand(real_out, fake_out)
assert torch.allclose(loss_d_hand, discriminator_loss(real_out, fake_out), rtol=1e-6)
assert torch.allclose(loss_adv_hand, generator_adv_loss(fake_out), rtol=1e-6)
assert torch.allclose(loss_fm_hand, feature_matching_loss(real_out, fake_out), rtol=1e-6)

# %%
# NBVAL_CHECK_OUTPUT
print(f"{'sub-discriminator':20s} {'E[(D(x)-1)^2]':>14s} {'E[D(G(s))^2]':>13s} {'E[(D(G(s))-1)^2]':>17s}")
for d, (r, _), (f, _) in zip(disc.subs, real_out, fake_out):
    name = f"period {d.period}" if isinstance(d, PeriodDiscriminator) else f"spectrogram {d.n_fft}"
    print(f"{name:20s} {float(((r - 1) ** 2).mean()):14.3f} {float((f ** 2).mean()):13.3f} {float(((f - 1) ** 2).mean()):17.3f}")
print(f"L_D = {float(loss_d_hand):.3f} | L_adv = {float(loss_adv_hand):.3f} | L_FM = {float(loss_fm_hand):.4f}"
      " — equal to the package's loss functions")


# %% [markdown]
# An untrained discriminator scores everything near 0, so $\mathcal L_D$ is about one per sub-discriminator
# (the real half) and the generator's adversarial loss the same: there is no signal yet about *which* audio is
# real. The training loop first runs reconstruction losses only and switches the discriminators on later
# (`TrainConfig.warmup_minutes`): on a CPU budget, a GAN started from a random generator spends its few thousand
# steps fighting noise.
#
# **The multi-resolution STFT loss** (Parallel WaveGAN §2.2). For STFT sizes $m = 1..M$ with magnitudes $|X_m|$
# of the generated audio and $|Y_m|$ of the target, a *spectral convergence* term and a *log-magnitude* term:
#
# $$\mathcal L_{sc}^{(m)} = \frac{\lVert |Y_m| - |X_m| \rVert_F}{\lVert |Y_m| \rVert_F}, \qquad
# \mathcal L_{mag}^{(m)} = \frac{1}{N}\big\lVert \log|Y_m| - \log|X_m| \big\rVert_1, \qquad
# \mathcal L_{stft} = \frac1M \sum_m \mathcal L_{sc}^{(m)} + \mathcal L_{mag}^{(m)}$$
#
# Several STFT sizes keep the generator from over-fitting one time-frequency trade-off. Here it is also the
# stabiliser of the reconstruction-only warm-up, and it stays on (with weight $\lambda_{stft}$) after the GAN starts.
#
# **The full-band mel term.** The flow's mel — and so the main mel-L1 loss — covers 0–8 kHz only. At 24 kHz the
# audio reaches 12 kHz, and nothing in a 0–8 kHz mel loss says what belongs between 8 and 12 kHz: that band is left
# to the discriminators alone, and a vocoder trained briefly can leave hiss or ringing there. HiFT's official loss
# therefore reads a separate *full-band* mel; `fullband_log_mel` is the same front end with the filterbank
# stretched to 0–12 kHz, weighted by $\lambda_{mel,full}$ (`lambda_mel_full`; 0 turns the term off).

# %%
def mr_stft_by_hand(x, y, resolutions):
    total = 0.0
    for n_fft_m, hop_m in resolutions:
        win = torch.hann_window(n_fft_m)
        X = torch.stft(x, n_fft_m, hop_m, window=win, return_complex=True).abs().clamp(min=1e-5)  # generated
        Y = torch.stft(y, n_fft_m, hop_m, window=win, return_complex=True).abs().clamp(min=1e-5)  # target
        l_sc = torch.linalg.norm(Y - X) / torch.linalg.norm(Y).clamp(min=1e-5)  # spectral convergence
        l_mag = (Y.log() - X.log()).abs().mean()  # log-magnitude L1
        total = total + l_sc + l_mag
    return total / len(resolutions)


MR_RESOLUTIONS = inspect.signature(multi_resolution_stft_loss).parameters["resolutions"].default
with torch.no_grad():
    stft_hand = mr_stft_by_hand(y_b, wav_b, MR_RESOLUTIONS)
    assert torch.allclose(stft_hand, multi_resolution_stft_loss(y_b, wav_b), rtol=1e-6)

# what the 0–8 kHz mel cannot see: a 10 kHz tone
tone = (0.5 * torch.sin(2 * math.pi * 10_000 * torch.arange(SR // 2, dtype=torch.float64) / SR)).float()
floor = math.log(cfg.log_floor)
inner = slice(2, -2)  # the first and last frames see the reflect-padded edges of the tone (a broadband click)
tone_flow = float(log_mel(tone)[:, inner].max())
tone_full = float(fullband_log_mel(tone)[:, inner].max())

# %%
# NBVAL_CHECK_OUTPUT
print("STFT sizes (n_fft, hop) of the MR-STFT loss:", MR_RESOLUTIONS, "| L_stft on the batch:", round(float(stft_hand), 3))
print(f"flow mel: {cfg.fmin:.0f}–{cfg.fmax:.0f} Hz | full-band mel: 0–{SR / 2:.0f} Hz")
print(f"a 10 kHz tone: flow log-mel max {tone_flow:.2f} (the floor is {floor:.2f}) | full-band log-mel max {tone_full:.2f}")
print("\nloss weights of the tiny recipe (TrainConfig):")
for name in ("lambda_mel", "lambda_mel_full", "lambda_stft", "lambda_fm", "lambda_f0"):
    print(f"  {name:16s} {getattr(tcfg, name)}")
assert abs(tone_flow - floor) < 1e-3 < tone_full - floor


# %% [markdown]
# A 10 kHz tone is *silence* to the flow's mel (every bin at the floor) but loud in the full-band mel. So the
# generator's objective in full is
#
# $$\mathcal L_G = \mathcal L_{adv} + \lambda_{fm}\mathcal L_{FM} + \lambda_{mel}\mathcal L_{mel}
# + \lambda_{stft}\mathcal L_{stft} + \lambda_{mel,full}\mathcal L_{mel,full} + \lambda_{f0}\,\lvert \hat f_0 - f_0^{\text{pYIN}}\rvert$$
#
# with the weights listed above ($\lambda_{fm}$ and $\lambda_{mel}$ are HiFi-GAN's, §2.4). How much energy
# does each system put above 8 kHz on our clip? Its recording comes from flite, which synthesises at 16 kHz, so above
# 8 kHz it is all but empty — whatever a vocoder puts there, it invented:

# %%
# NBVAL_CHECK_OUTPUT
def share_above(y, hz=cfg.fmax):
    # fraction of the STFT energy above `hz`, in dB
    p = stft_frames(y[None], cfg).abs()[0] ** 2  # (961, frames)
    bins = torch.fft.rfftfreq(cfg.n_fft, 1 / SR)
    return 10 * math.log10(float(p[bins > hz].sum() / p.sum()) + 1e-12)


for name, y in (("recording", wav), ("Griffin-Lim 32", gl), ("neural", neural)):
    print(f"{name:15s} energy above {cfg.fmax / 1000:.0f} kHz: {share_above(y):4.0f} dB of the total")

# %% [markdown]
# **One training step, by hand and by the package.** `train_step(gen, disc, opt_g, opt_d, wav, f0, tcfg, use_gan)`
# does one discriminator update, then one generator update. We write the same step by hand from the loss functions
# above and run both on identical copies (same weights, same AdamW settings, the same seeded noise in the harmonic
# source): the reported losses and the updated weights must agree. The recipe is the committed checkpoint's own
# (`train_config` in its JSON); if it was trained without the full-band term, we switch the term on for this demo,
# at the weight of the 0–8 kHz mel term, so that the step exercises it.

# %%
ck_tc = voc.meta["training"]["train_config"]
step_cfg = replace(TrainConfig.tiny(), **{k: (tuple(v) if isinstance(v, list) else v) for k, v in ck_tc.items()
                                         if k in TrainConfig.__dataclass_fields__})
if step_cfg.lambda_mel_full <= 0:
    step_cfg = replace(step_cfg, lambda_mel_full=step_cfg.lambda_mel)  # demo only: exercise the full-band term


def train_step_by_hand(gen, disc, opt_g, opt_d, wav, f0, tc):
    mel = log_mel(wav)
    y, f0_hat = gen(mel, f0_source=f0)  # the source is teacher-forced with the pYIN F0
    # discriminator step: L_D on real and (detached) generated audio
    real_out = disc(wav)
    loss_d = lsgan_d_by_hand(real_out, disc(y.detach()))
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    # generator step: reconstruction terms, then the adversarial and feature-matching terms (updated D)
    l_mel = (log_mel(y) - mel).abs().mean()
    l_stft = mr_stft_by_hand(y, wav, MR_RESOLUTIONS)
    l_f0 = (f0_hat - f0).abs().mean()
    loss_g = tc.lambda_mel * l_mel + tc.lambda_stft * l_stft + tc.lambda_f0 * l_f0
    l_full = (fullband_log_mel(y) - fullband_log_mel(wav)).abs().mean()
    loss_g = loss_g + tc.lambda_mel_full * l_full
    fake_out = disc(y)  # real features are reused from the D step as targets
    l_adv, l_fm = lsgan_g_by_hand(fake_out), feature_matching_by_hand(real_out, fake_out)
    loss_g = loss_g + l_adv + tc.lambda_fm * l_fm
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    torch.nn.utils.clip_grad_norm_(gen.parameters(), 100.0)  # as train_step does
    opt_g.step()
    return {"d": loss_d.item(), "mel_full": l_full.item(), "adv": l_adv.item(), "fm": l_fm.item(),
            "mel": l_mel.item(), "stft": l_stft.item(), "f0": l_f0.item()}


def fresh_copies():
    g, d = copy.deepcopy(voc.generator).train(), copy.deepcopy(disc)
    return (g, d, torch.optim.AdamW(g.parameters(), step_cfg.lr_g, betas=step_cfg.betas),
            torch.optim.AdamW(d.parameters(), step_cfg.lr_d, betas=step_cfg.betas))


g1, d1, og1, od1 = fresh_copies()
torch.manual_seed(1)
by_hand = train_step_by_hand(g1, d1, og1, od1, wav_b, f0_b, step_cfg)
g2, d2, og2, od2 = fresh_copies()
torch.manual_seed(1)
by_package = train_step(g2, d2, og2, od2, wav_b, f0_b, step_cfg, use_gan=True)
assert by_hand.keys() == by_package.keys()
assert all(abs(by_hand[k] - by_package[k]) <= 1e-5 * max(1.0, abs(by_package[k])) for k in by_hand)
with torch.no_grad():
    weight_diff = max(float((a - b).abs().max()) for m1, m2 in ((g1, g2), (d1, d2))
                      for a, b in zip(m1.parameters(), m2.parameters()))
assert weight_diff < 1e-6

# %%
# NBVAL_CHECK_OUTPUT
print("losses of one step (train_step = by hand):", {k: round(v, 3) for k, v in by_package.items()})
with torch.no_grad():
    moved = max(float((a - b).abs().max()) for a, b in zip(g2.parameters(), voc.generator.parameters()))
print(f"weights after the step: by hand and train_step agree within 1e-6: {weight_diff < 1e-6}; "
      f"largest generator weight change ≈ lr_g = {step_cfg.lr_g}: {abs(moved - step_cfg.lr_g) < 0.1 * step_cfg.lr_g}")

# %% [markdown]
# (Adam's first step moves every weight by about the learning rate, whatever the size of its gradient: the ratio
# of the first two moment estimates is ±1.)
#
# **The committed run: trained, then fine-tuned.** `minicosy train vocoder --preset tiny` repeats this step on random
# segments of the training voices: reconstruction losses only during the warm-up, then the discriminators on; a
# constant learning rate, then halved at a fixed interval (HiFi-GAN decays its rate per epoch; we decay per minute of
# training, because a CPU run is measured in minutes). The committed checkpoint comes from two runs. The first trained
# from scratch on the eight voices of corpus v1 (and their pseudo-speakers). The second, `--init-from` that
# checkpoint, continued on the sixteen voices of corpus v2 with the full-band mel term switched on: fresh
# discriminators from its first step, no warm-up. The checkpoint's JSON keeps both validation curves (the first run's
# under `init`). Each run measures log-mel L1 on resynthesised utterances of its *own* corpus's validation voices. The
# step at the join is therefore a change of ruler, not of model: the fine-tune's first point is the first run's
# final weights, measured on the v2 voices.

# %%
training = voc.meta["training"]
curve = voc.meta.get("curve", [])
first = voc.meta.get("init")  # the run this checkpoint was fine-tuned from (None: trained in one run)
offset = first["training"]["minutes"] if first else 0.0  # the fine-tune's minutes continue the first run's
fig, ax = plt.subplots(figsize=(7, 3))
if first:
    ax.plot([c["minutes"] for c in first["curve"]], [c["val_mel_l1"] for c in first["curve"]], "o-", ms=3,
            label=f"first run: {len(first['training']['train_voices'])} voices (corpus v1)")
ax.plot([offset + c["minutes"] for c in curve], [c["val_mel_l1"] for c in curve], "o-", ms=3,
        label=f"{'fine-tune' if first else 'run'}: {len(training['train_voices'])} voices"
              + (", + full-band mel" if ck_tc.get("lambda_mel_full", 0) > 0 else ""))
for run_tr, run_curve, at in (((first["training"], first["curve"], 0.0),) if first else ()) + (
        (training, curve, offset),):
    run_tc = run_tr["train_config"]
    gan = [c["minutes"] for c in run_curve if c["gan"]]
    if gan and run_tr.get("gan_start_step"):  # a warm-up came first (a fine-tune has none)
        ax.axvline(at + gan[0], color="gray", ls="--", lw=1)
    if run_tc.get("lr_half_life_minutes", 0) > 0 and run_tc["decay_start_minutes"] < run_curve[-1]["minutes"]:
        ax.axvline(at + run_tc["decay_start_minutes"], color="C3", ls=":", lw=1)
ax.plot([], [], color="gray", ls="--", lw=1, label="discriminators on")
ax.plot([], [], color="C3", ls=":", lw=1, label="learning rates start halving")
ax.legend(fontsize=7)
ax.set(xlabel=f"training minutes ({training['device']})", ylabel="validation log-mel L1",
       title="tiny vocoder: quality vs time")
ax.set_yscale("log")
plt.tight_layout()
plt.show()


# %%
# NBVAL_CHECK_OUTPUT
def milestones(label, tr, run_curve, run_tc):
    # the last validation point at or before `minutes`
    at = lambda minutes: [c for c in run_curve if c["minutes"] <= minutes + 1e-6][-1]["val_mel_l1"]
    gan = [c["minutes"] for c in run_curve if c["gan"]]
    print(f"{label}: {tr['steps']} steps in {tr['minutes']} min on {tr['device']}, "
          f"{len(tr['train_voices'])} training voices (with pseudo-speakers)")
    line = f"  validation log-mel L1: start {run_curve[0]['val_mel_l1']}"
    if gan and tr.get("gan_start_step"):  # a warm-up came first (a fine-tune has none)
        line += f" | discriminators on at {gan[0]} min: {at(gan[0])}"
    decay = run_tc.get("decay_start_minutes", float("inf"))
    if run_tc.get("lr_half_life_minutes", 0) > 0 and decay < run_curve[-1]["minutes"]:
        line += f" | decay starts at {decay} min: {at(decay)}"
    print(line + f" | end: {run_curve[-1]['val_mel_l1']}")


if first:
    milestones("first run", first["training"], first["curve"], first["training"]["train_config"])
milestones("fine-tune, full-band mel weight " + str(ck_tc.get("lambda_mel_full", 0)) if first else "run",
           training, curve, ck_tc)

# %% [markdown]
# ## 5 · Listen and compare
#
# Recording, Griffin-Lim (32 iterations) and the neural vocoder, all from the *same* log-mel of the
# recording (the "copy synthesis" test: no flow model involved).

# %%
systems = {}
for voice, (w, _) in clips.items():
    m = log_mel(w)
    systems[voice] = {"recording": w, "Griffin-Lim 32": griffin_lim(m, n_iter=32), "neural (tiny)": voc(m)}
fig, ax = plt.subplots(2, 3, figsize=(11, 5))
for r, (voice, outs) in enumerate(systems.items()):
    for c, (name, y) in enumerate(outs.items()):
        ax[r, c].imshow(log_mel(y).numpy(), origin="lower", aspect="auto", cmap=MEL_CMAP, vmin=-11.5, vmax=2)
        ax[r, c].set_title(f"{voice}: {name}", fontsize=9)
        ax[r, c].set_xticks([])
plt.tight_layout()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
for voice, outs in systems.items():
    rec = log_mel(outs["recording"])
    l1 = {k: round(float((log_mel(y) - rec).abs().mean()), 2) for k, y in outs.items() if k != "recording"}
    print(voice, "log-mel L1 to the recording:", l1)
    assert l1["Griffin-Lim 32"] < 0.5 and l1["neural (tiny)"] < 0.6

# %% [markdown]
# Griffin-Lim's mel distance is *small*: it is built to reproduce exactly these magnitudes. What it
# gets wrong is the phase, which a mel cannot see — so the real test is listening, and the
# independent judges below (does a recogniser understand it, does a speaker model hear the same
# voice?).

# %%
for name, y in systems["flite_slt"].items():
    print(f"flite_slt — {name}")
    display(Audio(y.numpy(), rate=SR, normalize=False))

# %%
print("held-out voice mbrola_us3 — HiFT tiny (never trained on this voice), then the recording")
display(Audio(systems["mbrola_us3"]["neural (tiny)"].numpy(), rate=SR, normalize=False))
display(Audio(systems["mbrola_us3"]["recording"].numpy(), rate=SR, normalize=False))

# %% [markdown]
# ### The measured table
#
# `minicosy eval vocoder` resynthesises the test split of the corpus (train voices and the
# held-out voices) and judges each system with the independent judges of `minicosy/judges.py`:
# pocketsphinx WER (beside the recordings' own WER), resemblyzer similarity to the recording, and
# log-mel L1. The numbers come from `data/pretrained/tiny/vocoder_eval.json`; the cell checks that the table
# belongs to the checkpoint loaded above.
#
# What should a vocoder reach? It should be *transparent*: a recogniser should understand its output about as
# well as the recording (we ask for a WER at most 10 % above the recording's own WER, `WER_RATIO_TARGET`), and a
# speaker model should hear the same voice (cosine similarity to the recording of at least `SIM_TARGET`; the
# first vocoder issue asked for 0.92, the corpus-v2 issue for 0.95). The two targets are set in the cell; the
# verdicts are printed under the table.

# %%
# NBVAL_CHECK_OUTPUT
WER_RATIO_TARGET, SIM_TARGET = 1.1, 0.95  # transparent copy synthesis: WER ≤ 1.1 × recording, similarity ≥ 0.95
result = json.loads((PRETRAINED / "vocoder_eval.json").read_text())
assert result["checkpoint"]["steps"] == training["steps"], "vocoder_eval.json judges another checkpoint"
print(eval_markdown(result))
for g in ("train_voices", "held_out_voices"):
    s = result["groups"][g]
    n, gl_s = s["neural"], s["griffin_lim"]
    print(f"{g}: WER ≤ {WER_RATIO_TARGET} × recording: {n['wer_ratio'] <= WER_RATIO_TARGET} | "
          f"similarity ≥ {SIM_TARGET}: {n['similarity'] >= SIM_TARGET} | "
          f"beats Griffin-Lim on WER: {n['wer'] < gl_s['wer']}, on similarity: {n['similarity'] > gl_s['similarity']}")

# %% [markdown]
# **What each system cost, and what the fine-tune bought.** The comparison is not between equals. Griffin-Lim needs
# no training at all and spends its effort per utterance (a fixed number of iterations); the neural vocoder was trained
# once, and then synthesises in one forward pass. The cell reads both budgets from the JSON and times the two on our
# clip. It also puts the committed checkpoint next to the first run alone, before the fine-tune
# (`results/vocoder_eval_v1_on_v2.json`), judged on the same test utterances of corpus v2. The JSON also holds a **paired** comparison (`minicosy eval vocoder --compare-to`): the change of each judge's
# figure per utterance, with a 95 % bootstrap interval. An interval that straddles 0 is a change this sample cannot
# tell from chance.

# %%
# NBVAL_CHECK_OUTPUT
tr, tc = result["checkpoint"], result["checkpoint"]["train_config"]
print(f"neural (HiFT tiny): {voc.num_parameters() / 1e6:.2f} M parameters, trained {tr['minutes']} min on {tr['device']}: "
      f"{tr['steps']} steps of {tc['batch_size']} × {tc['segment_frames'] * HOP / SR:.2f} s segments, "
      f"discriminators on from step {tr['gan_start_step']}"
      + (f", fine-tuned from {tr['init_from']}" if tr.get("init_from") else ""))
print(f"Griffin-Lim: no training, {result['griffin_lim_iters']} iterations per utterance")
before = json.loads((REPO_ROOT / "results" / "vocoder_eval_v1_on_v2.json").read_text())
assert [u["id"] for u in before["utterances"]] == [u["id"] for u in result["utterances"]], "not the same utterances"
print("\nneural vocoder, test split of corpus v2:       WER / recording | similarity | log-mel L1")
for g in ("train_voices", "held_out_voices"):
    for label, r in ((f"first run alone ({before['checkpoint']['minutes']} min)", before),
                     (f"committed (+ {tr['minutes']} min fine-tune)", result)):
        a = r["groups"][g]["neural"]
        print(f"  {g:16s} {label:32s} {a['wer_ratio']:.2f} | {a['similarity']:.3f} | {a['mel_l1']:.3f}")
comp = result["comparison"]
assert comp["before_checkpoint"] == before["checkpoint"]["steps"]
for g, c in comp["groups"].items():
    print(f"  {g}: ΔWER {c['delta_wer']:+.3f} (95 % CI {c['delta_wer_ci95'][0]:+.3f} … {c['delta_wer_ci95'][1]:+.3f}), "
          f"Δsimilarity {c['delta_similarity']:+.4f} (95 % CI {c['delta_similarity_ci95'][0]:+.4f} … "
          f"{c['delta_similarity_ci95'][1]:+.4f}); {c['fewer_errors']} utterances with fewer word errors, "
          f"{c['more_errors']} with more")
assert all(c["delta_similarity_ci95"][0] > 0 for c in comp["groups"].values()), "the fine-tune must raise similarity"


# %%
# NBVAL_IGNORE_OUTPUT
def best_time(fn, reps=2):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


t_neural = best_time(lambda: voc(mel))
t_gl = best_time(lambda: griffin_lim(mel, n_iter=result["griffin_lim_iters"]))
print(f"{wav.numel() / SR:.2f} s of audio: HiFT tiny took {1000 * t_neural:.0f} ms, "
      f"Griffin-Lim {result['griffin_lim_iters']} took {1000 * t_gl:.0f} ms (this machine, {torch.get_num_threads()} threads)")

# %% [markdown]
# Read the table and the budgets together. Griffin-Lim wins on log-mel L1 by construction (it fits these magnitudes);
# the judges that listen — the recogniser and the speaker model — are the fair test, and the verdict lines under the
# table say where the tiny vocoder stands against the two targets and against Griffin-Lim. Two cautions: the held-out
# group is small, so its WER is noisy (a WER below the recording's own is luck of the draw, not a better-than-real
# vocoder); and the neural budget above is minutes of one CPU, where published HiFT models train for hundreds of
# thousands of GPU steps. What makes HiFT attractive shows even so: after training, synthesis is a single forward pass
# (compare the timings just above), it streams with the first piece ready after a few frames (section 6), and its pitch
# comes from an explicit F0.
#
# ## 6 · Streaming: chunks, caches and cross-fades
#
# In CosyVoice 2 the flow model emits mel in chunks, and the vocoder must start speaking before
# the utterance is complete. `Vocoder.stream(mel_chunks)` keeps three caches:
#
# * **mel cache** — the last `stream_context` frames of the generator's input, re-run as left
#   context with each new chunk;
# * **source cache** — the running phase of the harmonic source (in cycles, as in section 3) and the F0 of the
#   frames that lack left context in the new run, so the sines continue without a jump;
# * **audio cache** — the last `stream_lookahead` frames of each run's audio. They were computed without
#   right context (the generator looks a few frames ahead), so they are held back instead of being emitted.
#
# **When does a piece come out?** New frames pile up until *more than* `stream_lookahead` of them are waiting. Then
# one run emits everything except its last `stream_lookahead` frames, which go to the audio cache. When the input ends,
# one last piece is produced: the frames still waiting (run with the cache) or, if none, the held-back tail as it is.
# So with chunks of $c$ frames and lookahead $H$, a run happens every $\lceil (H+1)/c \rceil$ chunks, and
#
# $$\text{pieces} = \text{runs} + 1 .$$
#
# **The cross-fade.** At each run after the first, the held-back tail is compared with its recomputation (which now has
# right context). Over the *first half* of the tail, $L = H \cdot 480 / 2$ samples, the output is
# $\text{tail}[i]\,(1 - w_\text{in}[i]) + \text{new}[i]\,w_\text{in}[i]$ with
# $w_\text{in}[i] = \sin^2\!\big(\tfrac{\pi}{2}\tfrac{i+1/2}{L}\big)$, a fade pair that sums to one; the second half of
# the tail is dropped and the new run's samples are used from there on.

# %%
chunk = 10  # frames per mel chunk = 200 ms
wav2, _ = clips["mbrola_us3"]
mel2 = log_mel(wav2)
offline = voc(mel2)
chunks = [mel2[:, s:s + chunk] for s in range(0, mel2.shape[1], chunk)]
pieces = list(voc.stream(chunks))
streamed = torch.cat(pieces)
joins = np.cumsum([p.numel() for p in pieces])[:-1]


def count_pieces(chunk_sizes, lookahead):
    # the emission rule of Vocoder.stream, without running the generator
    runs, waiting = 0, 0
    for n in chunk_sizes:
        waiting += n
        if waiting > lookahead:  # more than `lookahead` frames waiting: one run
            runs, waiting = runs + 1, 0
    return runs + 1  # + the final piece (waiting frames, or the held-back tail)


# %%
# NBVAL_CHECK_OUTPUT
H, C = vcfg.stream_lookahead, vcfg.stream_context
print(f"stream_context C = {C} frames | stream_lookahead H = {H} frames | chunk c = {chunk} frames")
print(f"{len(chunks)} chunks in → {len(pieces)} pieces out; the rule predicts {count_pieces([c.shape[1] for c in chunks], H)}")
print(f"a run every ceil((H+1)/c) = {math.ceil((H + 1) / chunk)} chunks; piece lengths in frames:",
      [p.numel() // HOP for p in pieces])
assert (chunk, H, len(chunks), len(pieces)) == (10, 12, 8, 5)  # the numbers the text below explains
assert len(pieces) == count_pieces([c.shape[1] for c in chunks], H)
L = H * HOP // 2
w_in = torch.sin(0.5 * math.pi * (torch.arange(L) + 0.5) / L) ** 2
print(f"cross-fade over L = {L} samples ({1000 * L // SR} ms); w_in[i] + w_in[L-1-i] = 1 (mirrored, the fade-in is the fade-out):",
      bool(torch.allclose(w_in + w_in.flip(0), torch.ones(L), atol=1e-6)))

# %% [markdown]
# With chunks of 10 frames and a lookahead of 12, one chunk is never enough: a run needs two chunks (20 > 12 frames
# waiting). The 8 chunks therefore give 4 runs, and the held-back tail of the last run is the 5th piece. The first
# piece is one run's output minus the held-back frames; every later piece is one run's worth of new frames, ending
# just before its own held-back tail.

# %%
# NBVAL_CHECK_OUTPUT
diff = float((streamed - offline).abs().max())
jump = max(float((streamed[j] - streamed[j - 1]).abs()) for j in joins)
step = float(offline.diff().abs().max())
print("samples:", streamed.numel(), "=", offline.numel())
print("max |streamed − offline| / peak:", round(diff / float(offline.abs().max()), 3))
print("largest jump at a join ≤ largest step of the offline audio:", jump <= step)
assert streamed.numel() == offline.numel() and diff < 0.02 * float(offline.abs().max()) and jump <= step

# %%
fig, ax = plt.subplots(2, 1, figsize=(10, 4.5))
t2 = np.arange(streamed.numel()) / SR
ax[0].plot(t2, streamed.numpy(), lw=0.4)
for j in joins:
    ax[0].axvline(j / SR, color="red", lw=0.5, alpha=0.5)
ax[0].set(title=f"streamed in {chunk}-frame chunks (red: where each yielded piece starts)", xlabel="seconds")
j = joins[len(joins) // 2]
z = slice(j - 240, j + 240)
ax[1].plot(np.arange(-240, 240) / SR * 1000, offline[z].numpy(), lw=1.5, label="offline")
ax[1].plot(np.arange(-240, 240) / SR * 1000, streamed[z].numpy(), lw=0.8, ls="--", label="streamed")
ax[1].axvline(0, color="red", lw=0.5)
ax[1].set(xlabel="ms around a join", title="zoom on one join")
ax[1].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# **Latency.** The first sample can only leave once more than $H$ frames have arrived: with chunks of $c$ frames that
# is $c\,\lceil (H+1)/c\rceil$ frames of mel, 20 ms each — the *algorithmic* latency, before any computing. A chunk of
# at least $H+1$ frames makes every chunk produce a piece; a smaller lookahead lowers the latency but leaves the
# held-back frames less right context, so the streamed audio drifts further from the offline one. The slider
# streams the held-out clip with your settings (the mel cache is kept at least $H+1$ frames long, as `stream` requires)
# and plays the result.

# %%
RF = voc.generator.f0_predictor.receptive_field  # stream needs lookahead ≥ 2·RF − 1


def stream_player(chunk=10, lookahead=vcfg.stream_lookahead):
    context = max(vcfg.stream_context, lookahead + 1)
    parts = [mel2[:, s:s + chunk] for s in range(0, mel2.shape[1], chunk)]
    t0 = time.perf_counter()
    it = voc.stream(parts, context=context, lookahead=lookahead)
    first = next(it)
    t_first = time.perf_counter() - t0
    out = [first] + list(it)
    y = torch.cat(out)
    wait = chunk * math.ceil((lookahead + 1) / chunk)
    print(f"{len(parts)} chunks in → {len(out)} pieces out (rule: {count_pieces([p.shape[1] for p in parts], lookahead)})")
    print(f"mel needed before the first sample: {wait} frames = {20 * wait} ms; "
          f"computing the first piece took {1000 * t_first:.0f} ms")
    print(f"max |streamed − offline| / peak: {float((y - offline).abs().max() / offline.abs().max()):.4f}")
    display(Audio(y.numpy(), rate=SR, normalize=False))


slider_player(stream_player,
              chunk=widgets.IntSlider(value=10, min=1, max=40, description="chunk", continuous_update=False),
              lookahead=widgets.IntSlider(value=vcfg.stream_lookahead, min=2 * RF - 1, max=2 * vcfg.stream_context,
                                          description="lookahead", continuous_update=False))


# %% [markdown]
# ## 7 · Exercises
#
# 1. **Plain vs fast Griffin-Lim.** Run `griffin_lim(mel, n_iter=32, momentum=0.0)` and compute
#    its log-mel L1 to `mel`; do the same with the default momentum. Set `l1_plain` and `l1_fast`.
# 2. **One-frame chunks.** Predict, *without running the vocoder*, how many pieces come out when `mel2` is streamed
#    in chunks of a single frame (use the emission rule of section 6; `mel2.shape[1]` and `vcfg.stream_lookahead` are
#    all you need). Set `n_pieces`; the check streams it for real.
# 3. **The highest sine.** The harmonic source mixes sines at $k f_0$ for $k = 1, \dots, K{+}1$
#    ($K$ = `vcfg.n_harmonics`). How many sines is that, and what is the frequency of the highest one for
#    $f_0 = 250$ Hz? Set `n_sines` and `top_sine_hz`.
# 4. **An undecided discriminator.** A sub-discriminator scores every input, real or generated, 0.5. What are its
#    LSGAN loss $\mathcal L_D$ and the generator's adversarial loss $\mathcal L_{adv}$ (one sub-discriminator)?
#    Set `loss_d_half` and `loss_adv_half`.
#
# Each check prints *not attempted* until you fill in its answer.

# %%
def check(name, ok):
    print(f"{name}: {'not attempted' if ok is None else ('correct' if ok else 'not yet — try again')}")


# %%
# NBVAL_CHECK_OUTPUT
# Exercise 1: replace None with the two log-mel L1 values (floats)
l1_plain = None  # log-mel L1 of griffin_lim(mel, 32, momentum=0.0) to mel
l1_fast = None   # log-mel L1 of griffin_lim(mel, 32) to mel
ok = None
if l1_plain is not None and l1_fast is not None:
    ref_plain = float((log_mel(griffin_lim(mel, 32, momentum=0.0)) - mel).abs().mean())
    ref_fast = float((log_mel(griffin_lim(mel, 32)) - mel).abs().mean())
    ok = abs(l1_plain - ref_plain) < 1e-3 and abs(l1_fast - ref_fast) < 1e-3
    if ok:
        print("momentum", "helps" if ref_fast < ref_plain else "does not help", "here")
check("exercise 1", ok)

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 2: replace None with the number of pieces (an integer)
n_pieces = None
ok = None
if n_pieces is not None:
    ps = list(voc.stream([mel2[:, s:s + 1] for s in range(mel2.shape[1])]))
    ok = n_pieces == len(ps)
    print(f"streamed in one-frame chunks: {len(ps)} pieces, max |streamed − offline| / peak "
          f"{float((torch.cat(ps) - offline).abs().max() / offline.abs().max()):.4f}")
check("exercise 2", ok)

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 3: replace None with integers
n_sines = None      # sine components in the harmonic source
top_sine_hz = None  # frequency of the highest sine for F0 = 250 Hz
ok = None
if n_sines is not None and top_sine_hz is not None:
    k = vcfg.n_harmonics + 1
    ok = n_sines == k == voc.generator.source.merge.in_features and top_sine_hz == 250 * k
check("exercise 3", ok)

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 4: replace None with floats
loss_d_half = None    # L_D of one sub-discriminator that always outputs 0.5
loss_adv_half = None  # L_adv of the generator against it
ok = None
if loss_d_half is not None and loss_adv_half is not None:
    half_out = [(torch.full((2, 5), 0.5), [])]  # one sub-discriminator, any shape of scores
    ok = (abs(loss_d_half - float(discriminator_loss(half_out, half_out))) < 1e-6
          and abs(loss_adv_half - float(generator_adv_loss(half_out))) < 1e-6)
check("exercise 4", ok)

# %% [markdown]
# ## Summary
#
# * A mel spectrogram has no phase and only 80 numbers per 480 new samples; a vocoder has to invent
#   the rest. Griffin-Lim finds a consistent phase by alternating projections but sounds metallic.
# * HiFT predicts F0, builds a harmonic excitation (NSF: sines at the harmonics when voiced, noise of α/3 when not),
#   filters it with an upsampling conv stack and finishes with an iSTFT: cheaper than upsampling to 24 kHz with
#   convolutions.
# * It is trained as a GAN: LSGAN against multi-period and multi-resolution discriminators, feature matching, and
#   reconstruction losses (mel L1, multi-resolution STFT, a full-band mel for what the 0–8 kHz mel cannot see).
# * Streaming re-runs a small mel context, carries the source phase and cross-fades a held-back
#   tail: the streamed audio matches offline synthesis and the joins do not click; the lookahead sets the latency.
#
# Next: notebook 06 puts the stages together into streaming text-to-speech.
