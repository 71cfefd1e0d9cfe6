"""Vocoder training: discriminators, GAN losses, a cached segment dataset, the loop, the evaluation.

Stage: training the HiFT-style vocoder of :mod:`minicosy.vocoder.hift` (docs/paper_vs_code.md §2 "Vocoder").

Losses, as HiFi-GAN/HiFT [1, 2] (weights from the official recipe):

    L_D = Σ_k E[(D_k(x) − 1)²] + E[D_k(G(s))²]                                   (LSGAN)
    L_G = Σ_k E[(D_k(G(s)) − 1)²] + 2·L_FM + 45·L_mel + L_F0
    L_FM = Σ_k Σ_l mean|D_k^l(x) − D_k^l(G(s))|        (feature matching over every layer l)
    L_mel = mean|log_mel(x) − log_mel(G(s))|,   L_F0 = mean|F0_pred − F0_pyin|

Discriminators: multi-period D_p (periods 2, 3, 5, 7, 11: the waveform folded into a 2-D
``(T/p, p)`` image, so each column sees every p-th sample) [1] and multi-resolution
spectrogram discriminators (three STFT sizes) [3], the pair CosyVoice 2's HiFT uses.

# simplification: the CPU budget is ~1–2 hours on one or two cores, so training opens with a
# warm-up of reconstruction losses only (mel-L1 + a multi-resolution STFT loss [4]) and switches
# the discriminators on afterwards (``warmup_minutes``); the MR-STFT term stays as a stabiliser.
# HiFi-GAN's per-epoch learning-rate decay becomes a per-minute one: constant, then halved every
# ``lr_half_life_minutes`` after ``decay_start_minutes`` (:func:`lr_scale`).
# simplification: weight normalisation (HiFi-GAN wraps every discriminator conv in it) is left out.

F0 targets come from ``librosa.pyin`` once per utterance and are cached with the 24 kHz audio;
mels are computed per batch from the cached audio segments (one small STFT, cheaper than
storing them).

References:
    [1] Kong, Kim & Bae, "HiFi-GAN", arXiv 2010.05646 (MPD, LSGAN, feature matching, 45 × mel).
    [2] Li et al., "HiFTNet", arXiv 2309.09493; Du et al., "CosyVoice 2", arXiv 2412.10117.
    [3] Jang et al., "UnivNet", arXiv 2106.07889 (multi-resolution spectrogram discriminator).
    [4] Yamamoto, Song & Kim, "Parallel WaveGAN", arXiv 1910.11480 (multi-resolution STFT loss).
    [5] Mauch & Dixon, "pYIN", ICASSP 2014 (the F0 targets).
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from minicosy.audio import load_audio, log_mel, save_audio
from minicosy.data.corpus import HELDOUT_VOICES, is_variant
from minicosy.training import (
    Loop,
    LoopConfig,
    add_loop_args,
    apply_loop_args,
    check_config,
)
from minicosy.utils import DEFAULT_CHECKPOINT
from minicosy.vocoder.hift import Vocoder, VocoderConfig

HELD_OUT = tuple(HELDOUT_VOICES)  # never trained on (valid/test only)

# ----------------------------------------------------------------------------- discriminators


def _conv_stack(convs: nn.ModuleList, post: nn.Module, x: torch.Tensor):
    """Shared body of every sub-discriminator: leaky-ReLU convs, then a 1-channel score.

    Returns ``(score: (B, N), features: list of every layer's output)``; the features feed the
    feature-matching loss.
    """
    feats = []
    for conv in convs:
        x = F.leaky_relu(conv(x), 0.1)
        feats.append(x)
    x = post(x)
    feats.append(x)
    return x.flatten(1), feats


class PeriodDiscriminator(nn.Module):
    """D_p: fold ``(B, 1, T)`` into ``(B, 1, T/p, p)`` and run strided 2-D convs over time."""

    def __init__(self, period: int, channels: tuple = (16, 32, 64, 64)):
        super().__init__()
        self.period = period
        convs, c_in = [], 1
        for c in channels:
            convs.append(nn.Conv2d(c_in, c, (5, 1), (3, 1), padding=(2, 0)))
            c_in = c
        convs.append(nn.Conv2d(c_in, c_in, (5, 1), 1, padding=(2, 0)))
        self.convs = nn.ModuleList(convs)
        self.post = nn.Conv2d(c_in, 1, (3, 1), 1, padding=(1, 0))

    def forward(self, x: torch.Tensor):
        B, _, T = x.shape
        if T % self.period:
            x = F.pad(x, (0, self.period - T % self.period), mode="reflect")
        x = x.view(B, 1, -1, self.period)  # (B, 1, T/p, p)
        return _conv_stack(self.convs, self.post, x)


class ResolutionDiscriminator(nn.Module):
    """UnivNet-style D on a linear magnitude spectrogram ``(B, 1, frames, bins)``."""

    def __init__(self, n_fft: int, hop: int, win: int, channels: int = 16):
        super().__init__()
        self.n_fft, self.hop, self.win = n_fft, hop, win
        c = channels
        self.convs = nn.ModuleList([
            nn.Conv2d(1, c, (3, 9), stride=(1, 2), padding=(1, 4)),
            nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4)),
            nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4)),
            nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4)),
            nn.Conv2d(c, c, (3, 3), padding=(1, 1)),
        ])
        self.post = nn.Conv2d(c, 1, (3, 3), padding=(1, 1))
        self.register_buffer("window", torch.hann_window(win), persistent=False)

    def forward(self, x: torch.Tensor):
        spec = torch.stft(x.squeeze(1), self.n_fft, self.hop, self.win, window=self.window,
                          center=True, return_complex=True).abs()  # (B, bins, frames)
        x = spec.transpose(1, 2).unsqueeze(1)  # (B, 1, frames, bins)
        return _conv_stack(self.convs, self.post, x)


class Discriminators(nn.Module):
    """All sub-discriminators; ``forward(wav)`` → list of ``(score, features)``."""

    def __init__(self, periods=(2, 3, 5, 7, 11), resolutions=((1024, 120, 600), (2048, 240, 1200),
                                                               (512, 50, 240)),
                 period_channels=(16, 32, 64, 64), spec_channels: int = 8):
        super().__init__()
        self.subs = nn.ModuleList([PeriodDiscriminator(p, period_channels) for p in periods] +
                                  [ResolutionDiscriminator(*r, channels=spec_channels) for r in resolutions])

    def forward(self, wav: torch.Tensor):  # (B, T)
        x = wav.unsqueeze(1)
        return [d(x) for d in self.subs]


# ----------------------------------------------------------------------------- losses


def discriminator_loss(real_out, fake_out) -> torch.Tensor:
    """LSGAN: Σ_k E[(D_k(x) − 1)²] + E[D_k(G(s))²]."""
    return sum(((1 - r) ** 2).mean() + (f ** 2).mean() for (r, _), (f, _) in zip(real_out, fake_out))


def generator_adv_loss(fake_out) -> torch.Tensor:
    """LSGAN for G: Σ_k E[(D_k(G(s)) − 1)²]."""
    return sum(((1 - f) ** 2).mean() for f, _ in fake_out)


def feature_matching_loss(real_out, fake_out) -> torch.Tensor:
    """Σ_k Σ_l mean|D_k^l(x) − D_k^l(G(s))| (real features are targets: detached)."""
    return sum(F.l1_loss(ff, rf.detach()) for (_, rfs), (_, ffs) in zip(real_out, fake_out)
               for rf, ff in zip(rfs, ffs))


def multi_resolution_stft_loss(x: torch.Tensor, y: torch.Tensor,
                               resolutions=((256, 64), (512, 128), (1024, 256))) -> torch.Tensor:
    """Spectral convergence + log-magnitude L1, averaged over STFT sizes   [4]

    SC = ‖|Y| − |X|‖_F / ‖|Y|‖_F,   LM = mean|log|Y| − log|X||   (x generated, y target)
    """
    total = 0.0
    for n_fft, hop in resolutions:
        w = torch.hann_window(n_fft, device=x.device)
        X = torch.stft(x, n_fft, hop, window=w, return_complex=True).abs().clamp(min=1e-5)
        Y = torch.stft(y, n_fft, hop, window=w, return_complex=True).abs().clamp(min=1e-5)
        sc = torch.linalg.norm(Y - X) / torch.linalg.norm(Y).clamp(min=1e-5)
        total = total + sc + (Y.log() - X.log()).abs().mean()
    return total / len(resolutions)


# ----------------------------------------------------------------------------- data


def pyin_f0(wav: np.ndarray, n_frames: int, sample_rate: int = 24000, hop: int = 480) -> np.ndarray:
    """F0 in Hz per mel frame (0 where unvoiced), aligned with :func:`minicosy.audio.log_mel`   [5]

    Mel frame t is centred on sample ``t·hop + hop/2`` (reflect pad (n_fft−hop)/2, no centring);
    pyin with ``center=True`` centres frame t on ``t·hop``, hence the ``hop/2`` shift.
    """
    import librosa

    x = wav[hop // 2:]
    f0, voiced, _ = librosa.pyin(x, fmin=50.0, fmax=600.0, sr=sample_rate, frame_length=4 * hop,
                                 hop_length=hop, center=True)
    f0 = np.where(voiced, np.nan_to_num(f0), 0.0).astype(np.float32)
    out = np.zeros(n_frames, dtype=np.float32)
    out[:min(n_frames, f0.size)] = f0[:n_frames]
    return out


def build_cache(manifest, split: str = "train", max_per_voice: int | None = 40,
                cache_file=None, exclude_voices=(), seed: int = 0, log=print) -> dict:
    """Load utterances at 24 kHz and their pyin F0 once; save/reuse ``cache_file``.

    Returns:
        ``{"ids", "voices", "wav": [int16 (T,)], "f0": [float32 (T//480,)]}``.
    """
    from minicosy.data.manifest import manifest_root, read_manifest

    if cache_file is not None and Path(cache_file).is_file():
        cache = torch.load(cache_file, weights_only=False)
        log(f"vocoder data: {len(cache['ids'])} {split} utterances from cache {cache_file}")
        return cache
    utts = [u for u in read_manifest(manifest, split=split) if u.voice not in set(exclude_voices)]
    if not utts:
        raise ValueError(f"no {split!r} utterances in {manifest} (after excluding {list(exclude_voices)}).")
    rng = random.Random(seed)
    by_voice: dict = {}
    for u in utts:
        by_voice.setdefault(u.voice, []).append(u)
    chosen = []
    for v in sorted(by_voice):
        us = sorted(by_voice[v], key=lambda u: u.id)
        rng.shuffle(us)
        chosen += us[:max_per_voice] if max_per_voice else us
    root = manifest_root(manifest)
    cache = {"ids": [], "voices": [], "wav": [], "f0": []}
    t0 = time.time()
    for i, u in enumerate(chosen):
        wav = load_audio(u.audio_path(root), 24000)
        n = wav.size // 480
        if n < 8:
            continue
        cache["ids"].append(u.id)
        cache["voices"].append(u.voice)
        cache["wav"].append(torch.from_numpy(np.round(np.clip(wav[:n * 480], -1, 1) * 32767).astype(np.int16)))
        cache["f0"].append(torch.from_numpy(pyin_f0(wav, n)))
        if (i + 1) % 100 == 0:
            log(f"vocoder data: {i + 1}/{len(chosen)} utterances, {time.time() - t0:.0f} s")
    log(f"vocoder data: {len(cache['ids'])} {split} utterances, {len(by_voice)} voices, "
        f"{sum(w.numel() for w in cache['wav']) / 24000 / 60:.1f} min of audio, {time.time() - t0:.0f} s")
    if cache_file is not None:
        Path(cache_file).parent.mkdir(parents=True, exist_ok=True)
        torch.save(cache, cache_file)
    return cache


def sample_batch(cache: dict, batch_size: int, segment_frames: int, rng: random.Random):
    """Random segments: ``wav (B, S·480)`` float32 and ``f0 (B, S)``."""
    wavs, f0s = [], []
    for _ in range(batch_size):
        i = rng.randrange(len(cache["ids"]))
        w, f = cache["wav"][i], cache["f0"][i]
        n = f.numel()
        if n <= segment_frames:
            s = 0
            w = F.pad(w.float(), (0, (segment_frames - n) * 480 + max(0, n * 480 - w.numel())))
            f = F.pad(f, (0, segment_frames - n))
        else:
            s = rng.randrange(n - segment_frames)
        wavs.append(w[s * 480:(s + segment_frames) * 480].float() / 32767.0)
        f0s.append(f[s:s + segment_frames])
    return torch.stack(wavs), torch.stack(f0s)


# ----------------------------------------------------------------------------- training


@dataclass
class TrainConfig:
    batch_size: int = 4
    segment_frames: int = 24  # 0.48 s
    lr_g: float = 5e-4
    lr_d: float = 2e-4
    betas: tuple = (0.8, 0.99)
    lambda_mel: float = 45.0
    lambda_mel_full: float = 0.0  # full-band (0–12 kHz) mel L1 (fullband_log_mel); the fine-tune stage turns it on
    lambda_stft: float = 15.0
    lambda_fm: float = 2.0
    lambda_f0: float = 1.0
    warmup_minutes: float = 25.0  # reconstruction losses only, then the GAN
    max_minutes: float = 140.0  # the committed tiny checkpoint: one CPU thread, 140 min
    # learning-rate decay (HiFi-GAN decays by 0.999 per epoch): constant until ``decay_start_minutes``,
    # then halved every ``lr_half_life_minutes`` of training (0: never)
    decay_start_minutes: float = 100.0
    lr_half_life_minutes: float = 10.0
    max_steps: int = 0  # 0: no limit
    eval_every_minutes: float = 5.0
    max_per_voice: int = 40
    n_valid: int = 8
    seed: int = 0
    precision: str = "fp32"  # minicosy.training.LoopConfig: auto, fp32, bf16, fp16
    workers: int = 0
    log_every: int = 50

    @classmethod
    def tiny(cls) -> TrainConfig:
        return cls()

    @classmethod
    def paper(cls) -> TrainConfig:
        """HiFT's published recipe: batch 16 × 0.5 s ... on a GPU for many hours."""
        return cls(batch_size=16, segment_frames=25, lr_g=2e-4, lr_d=2e-4, lambda_stft=0.0,
                   warmup_minutes=0.0, max_minutes=24 * 60, eval_every_minutes=30.0, max_per_voice=0,
                   lr_half_life_minutes=0.0)


def _validation(vocoder: Vocoder, valid: dict, max_frames: int = 200):
    """Mean log-mel L1 of resynthesis on the fixed validation utterances (eval mode)."""
    errs, outs = [], []
    for w in valid["wav"]:
        x = (w[:max_frames * 480].float() / 32767.0).to(vocoder.device)
        mel = log_mel(x)
        y = vocoder(mel)
        errs.append(float((log_mel(y) - mel).abs().mean()))
        outs.append(y.cpu())
    return float(np.mean(errs)), outs


def lr_scale(minutes: float, tcfg: TrainConfig) -> float:
    """Factor on both learning rates after ``minutes`` of training: 1 until
    ``decay_start_minutes``, then ``0.5 ** ((minutes - start) / lr_half_life_minutes)``."""
    if tcfg.lr_half_life_minutes <= 0 or minutes <= tcfg.decay_start_minutes:
        return 1.0
    return 0.5 ** ((minutes - tcfg.decay_start_minutes) / tcfg.lr_half_life_minutes)


def _validation_subset(valid_all: dict, n_valid: int) -> dict:
    """A fixed validation set: one utterance per voice, held-out voices first, then base voices,
    then pseudo-speakers (the corpus's own naming decides which is which)."""
    first: dict = {}
    for i, v in enumerate(valid_all["voices"]):
        first.setdefault(v, i)
    rank = sorted(first, key=lambda v: (v not in HELD_OUT, is_variant(v), v))
    pick = [first[v] for v in rank[:n_valid]]
    return {k: [valid_all[k][i] for i in pick] for k in valid_all}


def fullband_log_mel(wav: torch.Tensor) -> torch.Tensor:
    """Log-mel over 0–12 kHz (the whole band at 24 kHz), 80 bins, the flow's framing.

    The flow's features stop at 8 kHz, so a loss on them leaves 8–12 kHz to the discriminators
    alone; HiFT's official loss uses a separate full-band mel for exactly this reason.
    """
    from minicosy.config import MelConfig

    cfg = MelConfig.flow()
    return log_mel(wav, MelConfig(sample_rate=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
                                  win_length=cfg.win_length, n_mels=cfg.n_mels, fmin=0.0,
                                  fmax=cfg.sample_rate / 2))


def train_step(gen: nn.Module, disc: Discriminators, opt_g, opt_d, wav: torch.Tensor, f0: torch.Tensor,
               tcfg: TrainConfig, use_gan: bool, loop=None) -> dict:
    """One optimisation step: the discriminator step (if the GAN is on), then the generator's.

    Args:
        wav: ``(B, S·480)`` real segments; f0: ``(B, S)`` their pYIN F0 (teacher-forces the source).
        loop: the :class:`minicosy.training.Loop` that runs this step by hand (its autocast, fp16
            scaler and DDP wrappers); ``None``: plain fp32 backward and steps.

    Returns:
        the losses as floats (``mel``, ``mel_full``, ``stft``, ``f0``, and ``d``/``adv``/``fm`` with the GAN).
    """
    amp = loop.autocast if loop is not None else contextlib.nullcontext
    backward = loop.backward if loop is not None else torch.Tensor.backward
    mel = log_mel(wav)  # (B, 80, S)
    # simplification: the harmonic source is driven by the pYIN F0 targets (teacher forcing), not by the
    # predicted F0, so the generator learns on a clean excitation; the F0 predictor learns by L_F0 alongside.
    with amp():
        y, f0_hat = gen(mel, f0_source=f0)
    y, out = y.float(), {}
    if use_gan:
        with amp():
            real_out = disc(wav)
            loss_d = discriminator_loss(real_out, disc(y.detach()))  # L_D   (LSGAN)
        opt_d.zero_grad(set_to_none=True)
        backward(loss_d.float())
        loop.optimizer_step(opt_d) if loop is not None else opt_d.step()
        out["d"] = loss_d.item()
    loss_mel = F.l1_loss(log_mel(y), mel)
    loss_stft = multi_resolution_stft_loss(y, wav)
    loss_f0 = F.l1_loss(f0_hat.float(), f0)
    loss_g = tcfg.lambda_mel * loss_mel + tcfg.lambda_stft * loss_stft + tcfg.lambda_f0 * loss_f0
    if tcfg.lambda_mel_full > 0:
        loss_full = F.l1_loss(fullband_log_mel(y), fullband_log_mel(wav))
        loss_g = loss_g + tcfg.lambda_mel_full * loss_full
        out["mel_full"] = loss_full.item()
    if use_gan:
        # simplification: feature-matching targets reuse D(x) from the D step (one forward less)
        with amp():
            fake_out = disc(y)
            adv, fm = generator_adv_loss(fake_out), feature_matching_loss(real_out, fake_out)
        loss_g = loss_g + adv.float() + tcfg.lambda_fm * fm.float()  # L_G = adv + 2·L_FM + 45·L_mel + ...
        out.update(adv=adv.item(), fm=fm.item())
    opt_g.zero_grad(set_to_none=True)
    backward(loss_g)
    if loop is not None:
        loop.optimizer_step(opt_g, gen.parameters(), 100.0)
    else:
        torch.nn.utils.clip_grad_norm_(gen.parameters(), 100.0)
        opt_g.step()
    out.update(mel=loss_mel.item(), stft=loss_stft.item(), f0=loss_f0.item())
    return out


def _learning_rates(tcfg: TrainConfig, elapsed_s: float) -> dict:
    scale = lr_scale(elapsed_s / 60, tcfg)
    return {"opt_g": tcfg.lr_g * scale, "opt_d": tcfg.lr_d * scale}


def _start_record(vocoder: Vocoder) -> dict:
    """The training record and curve of a checkpoint a fine-tune starts from (notebook 05 plots both)."""
    return {k: vocoder.meta[k] for k in ("training", "curve") if k in vocoder.meta}


def _export(vocoder: Vocoder, out_dir, state: dict, curve: list, data: dict, preset: str, device, tcfg) -> None:
    """The fp16 export with its training record (and, for a fine-tune, the starting checkpoint's)."""
    meta = {"training": {"preset": preset, "steps": state["step"], "minutes": round(state["elapsed"] / 60, 1),
                         "init_from": state["init_from"], "gan_start_step": state["gan_start_step"],
                         "device": str(device), "train_utterances": len(data["ids"]),
                         "train_voices": sorted(set(data["voices"])), "train_config": asdict(tcfg)},
            "curve": curve}
    if state.get("init_meta"):
        meta["init"] = state["init_meta"]  # the fine-tuned checkpoint's training record and curve
    vocoder.save(out_dir, half=True, meta=meta)


def train(manifest, run_dir="runs/vocoder_tiny", preset: str = "tiny", out_dir=None, resume: bool = True,
          device=None, tcfg: TrainConfig | None = None, progress: bool = True, log=print,
          init_from=None) -> Vocoder:
    """Train (or resume, or fine-tune) a vocoder; export fp16 weights to ``out_dir`` at every validation.

    The loop is :class:`minicosy.training.Loop` with a hand-written step (two optimisers). Writes into
    ``run_dir``: ``last.pt`` (generator, discriminators, optimisers, step, elapsed time), ``curve.json``
    (validation mel-L1 against training minutes), ``log.jsonl``, ``samples/*.wav``.

    Args:
        init_from: a saved vocoder folder (``Vocoder.save``) whose generator starts the run — a
            fine-tune (fresh discriminators and optimisers); ignored when resuming ``last.pt``.
    """
    if preset not in ("tiny", "paper"):
        raise ValueError(f"unknown preset {preset!r}: use 'tiny' or 'paper'.")
    tcfg, cfg = tcfg or getattr(TrainConfig, preset)(), getattr(VocoderConfig, preset)()
    loop = Loop(LoopConfig.of(tcfg, device=device, progress=progress, desc="vocoder", ckpt_every=0, grad_clip=0.0,
                              eval_at_start=True), run_dir, log, ckpt_name="last.pt")
    log, run_dir = loop.log, Path(run_dir)
    (run_dir / "samples").mkdir(parents=True, exist_ok=True)
    data = build_cache(manifest, "train", tcfg.max_per_voice, run_dir / "cache_train.pt", exclude_voices=HELD_OUT,
                       log=log)
    valid = _validation_subset(build_cache(manifest, "valid", 2, run_dir / "cache_valid.pt", log=log), tcfg.n_valid)
    log(f"validation voices: {', '.join(valid['voices'])}")
    vocoder = Vocoder(cfg).to(loop.device)
    gen, disc = vocoder.generator, Discriminators().to(loop.device)
    opts = {"opt_g": torch.optim.AdamW(gen.parameters(), tcfg.lr_g, betas=tcfg.betas),
            "opt_d": torch.optim.AdamW(disc.parameters(), tcfg.lr_d, betas=tcfg.betas)}
    start = {"gan_start_step": None, "init_from": None}
    if init_from is not None and not (resume and loop.ckpt.is_file()):
        first = Vocoder.from_pretrained(init_from, device=loop.device)
        if first.cfg != cfg:
            raise ValueError(f"{init_from} is a vocoder of another preset; fine-tune it with its own --preset.")
        gen.load_state_dict(first.generator.state_dict())
        start.update(init_from=str(init_from), init_meta=_start_record(first))
        log(f"fine-tuning the generator of {init_from}")
    log(f"vocoder {preset}: {vocoder.num_parameters() / 1e6:.2f} M generator parameters, "
        f"{sum(p.numel() for p in disc.parameters()) / 1e6:.2f} M discriminator parameters, device {loop.device}")

    def on_resume(saved: dict) -> None:
        check_config(saved, cfg, VocoderConfig, loop.ckpt, key="vocoder_config")
        st = saved["state"]
        if st.get("init_from") and "init_meta" not in st and Path(st["init_from"]).is_dir():
            # a fine-tune saved before its starting record was kept: read it from the folder it started from
            st["init_meta"] = _start_record(Vocoder.from_pretrained(st["init_from"], device="cpu"))

    def step(_, loop) -> dict:
        state = loop.state
        use_gan = state["elapsed"] >= tcfg.warmup_minutes * 60
        if use_gan and state["gan_start_step"] is None:
            state["gan_start_step"] = state["step"]
            log(f"step {state['step']}: warm-up over, discriminators on")
            if out_dir is not None and state["step"] and loop.is_main:  # keep the reconstruction-only model
                vocoder.save(run_dir / "export_warmup", half=True, meta={"training": {"steps": state["step"]}})
        wav, f0 = sample_batch(data, tcfg.batch_size, tcfg.segment_frames, loop.rng)
        return train_step(loop.wrapped["generator"], loop.wrapped["discriminators"], opts["opt_g"], opts["opt_d"],
                          wav.to(loop.device), f0.to(loop.device), tcfg, use_gan, loop)

    def evaluate(state: dict) -> dict:
        val_l1, outs = _validation(vocoder, valid)
        for k in (0, len(outs) - 1) if state["step"] else ():
            save_audio(run_dir / "samples" / f"step{state['step']:06d}_{valid['voices'][k]}.wav", outs[k], 24000)
        row = {"step": state["step"], "minutes": round(state["elapsed"] / 60, 2), "val_mel_l1": round(val_l1, 4),
               "gan": state["gan_start_step"] is not None}
        (run_dir / "curve.json").write_text(json.dumps(state["history"] + [row], indent=1))
        if out_dir is not None:
            _export(vocoder, out_dir, state, state["history"] + [row], data, preset, loop.device, tcfg)
        return row

    state = loop.fit({"generator": gen, "discriminators": disc}, opts, step, eval_fn=evaluate, manual=True,
                     lr_fn=lambda s, e: _learning_rates(tcfg, e), state=start, resume=resume, on_resume=on_resume,
                     extra={"vocoder_config": cfg.to_dict(), "train_config": asdict(tcfg)})
    if out_dir is not None and loop.is_main:
        _export(vocoder, out_dir, state, state["history"], data, preset, loop.device, tcfg)
    last = state["history"][-1] if state["history"] else {}
    log(f"done: step {state['step']}, {state['elapsed'] / 60:.1f} min, validation mel-L1 {last.get('val_mel_l1')}")
    return vocoder.eval()


# ----------------------------------------------------------------------------- CLI


def add_train_args(p) -> None:
    from minicosy.utils import DEFAULT_CORPUS_DIR

    p.add_argument("--preset", default="tiny", choices=("tiny", "paper"))
    p.add_argument("--corpus", "--manifest", dest="corpus", default=str(DEFAULT_CORPUS_DIR),
                   help="corpus folder or manifest.jsonl (default data/corpus)")
    p.add_argument("--out", default="runs/vocoder_tiny", help="run folder: checkpoints, curve.json, samples/")
    p.add_argument("--export", default=str(DEFAULT_CHECKPOINT), help="where the fp16 export goes")
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    p.add_argument("--init-from", default=None,
                   help="fine-tune: start the generator from this saved vocoder folder (e.g. data/pretrained/tiny)")
    add_loop_args(p, TrainConfig.precision)
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--warmup-minutes", type=float, default=None)
    p.add_argument("--eval-every-minutes", type=float, default=None)
    p.add_argument("--max-per-voice", type=int, default=None, help="training utterances per voice")
    p.add_argument(
        "--decay-start-minutes", type=float, default=None, help="keep the learning rates constant until then"
    )
    p.add_argument(
        "--lr-half-life-minutes", type=float, default=None, help="then halve them every so many minutes (0: never)"
    )
    p.add_argument("--lambda-mel-full", type=float, default=None, help="weight of the full-band (0–12 kHz) mel L1")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="log lines instead of a progress bar")


def train_cli(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    tcfg = getattr(TrainConfig, args.preset)()
    for name in ("max_minutes", "max_steps", "warmup_minutes", "eval_every_minutes", "max_per_voice",
                 "decay_start_minutes", "lr_half_life_minutes", "lambda_mel_full"):
        if getattr(args, name) is not None:
            setattr(tcfg, name, getattr(args, name))
    if args.grad_accum not in (None, 1):
        raise ValueError("--grad-accum: the vocoder's GAN step (two optimisers) runs one batch per step.")
    apply_loop_args(args, tcfg)
    train(args.corpus, args.out, args.preset, out_dir=args.export, resume=args.resume,
          device=args.device, tcfg=tcfg, progress=not args.no_progress,
          log=lambda s: print(s, flush=True), init_from=args.init_from)
    return 0


def register_cli(groups) -> None:
    """``minicosy train vocoder``."""
    p = groups["train"].add_parser("vocoder", help="train the HiFT-style vocoder (GAN), with resume")
    add_train_args(p)
    p.set_defaults(func=train_cli)
