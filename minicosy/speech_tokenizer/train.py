"""Training of the speech tokenizer (CosyVoice 2 released no training code).

Stage: speech tokenizer, CosyVoice 2 §2.2. The only training signal is the ASR loss: CTC between
the head's character posteriors and the normalised transcript [CV2 §2.2, Fig. 1(a)]. The FSQ
codes receive gradients only through the straight-through estimator; the VQ baseline adds its
commitment loss and learns its codebook by EMA (with dead-code restarts unless ``vq-plain``).

Budget: training stops at ``max_steps`` or after ``max_minutes`` of wall clock, whichever comes
first, and the cosine learning-rate decay follows whichever of the two runs out first, so a
time-capped run still anneals. A resumed run with a larger ``max_steps`` starts a new, lower
cosine cycle from where it stopped (a warm restart). How the committed checkpoints were trained
(commands, minutes, curves) is in docs/results.md and ``data/pretrained/tiny/speech_tokenizer.json``.

Augmentation (all on cached features, so an epoch costs only the network): speed perturbation
(0.9 / 1.0 / 1.1), vocal-tract-length perturbation and SpecAugment; with per-utterance cepstral
mean normalisation in the model (``utterance_cmn``), these are what make an ASR model robust to
speakers it never heard.

* :func:`load_split` — 16 kHz log-mels of one manifest split, computed once and cached as a
  ``.pt`` file (``<corpus>/cache/``), so an epoch costs only the network.
* :func:`tokenizer_loss`, :func:`train_tokenizer` — the augmented CTC loss, and the run around it:
  length-bucketed batches, AdamW with warm-up + cosine decay, validation CER and the export; the loop
  (gradient clipping, tqdm, checkpoints with resume, devices, ``torchrun``) is :class:`minicosy.training.Loop`.
* :func:`run_model`, :func:`cer` — the eval-mode pass and the CER that validation and
  :mod:`minicosy.speech_tokenizer.evaluate` share.

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §2.2 and §4 (FSQ 100% vs VQ 23% code use).
    [2] Park et al., "SpecAugment", arXiv 1904.08779.
    [3] Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (AdamW), arXiv 1711.05101.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from minicosy import judges
from minicosy.data.manifest import manifest_root, read_manifest
from minicosy.speech_tokenizer.fsq import codebook_usage
from minicosy.speech_tokenizer.model import (
    SpeechTokenizer,
    SpeechTokenizerConfig,
    ctc_greedy_decode,
    text_to_ids,
)
from minicosy.text.normalize import normalize_transcript
from minicosy.training import (
    Loop,
    LoopConfig,
    add_loop_args,
    add_set_arg,
    apply_loop_args,
    cached_features,
    check_config,
    init_from,
    length_batches,
    warmup_cosine,
)
from minicosy.utils import DEFAULT_CORPUS_DIR, REPO_ROOT

# ----------------------------------------------------------------------------- data


def load_split(manifest, split: str, cache_dir: str | Path | None = "auto", voices=None) -> list[dict]:
    """Features of every utterance of one split: ``[{id, voice, text, feats (80, F) fp16}]``.

    ``F`` is cropped to a multiple of 4 (the tokenizer's length rule). With ``cache_dir="auto"``
    the features are cached under ``<corpus>/cache/`` (not for the committed fixtures).
    """
    from minicosy.audio import load_audio, tokenizer_features

    rows = read_manifest(manifest, split=split, voices=voices)
    if not rows:
        raise ValueError(f"manifest {manifest} has no utterances in split {split!r}"
                         + (f" for voices {sorted(voices)}" if voices else "") + ".")

    def featurize(u, root):
        f = tokenizer_features(load_audio(u.audio_path(root), 16000))
        f = f[:, : f.shape[1] // 4 * 4]
        if f.shape[1] < 4 or not normalize_transcript(u.text):
            return None  # too short for one token, or nothing to recognise
        return {"id": u.id, "voice": u.voice, "text": normalize_transcript(u.text), "feats": f.half()}

    return cached_features(rows, manifest_root(manifest), cache_dir, f"tokenizer16k_{split}", featurize,
                           key_fields=("id", "path", "duration", "text"))


def make_batches(data: list[dict], batch_frames: int, seed: int) -> list[list[int]]:
    """Length-bucketed batches of at most ``batch_frames`` padded frames (:func:`minicosy.training.length_batches`)."""
    return length_batches([d["feats"].shape[1] for d in data], batch_frames, seed)


def spec_augment(x: torch.Tensor, lengths: torch.Tensor, gen: torch.Generator, n_freq: int = 2, freq_w: int = 10,
                 time_w: int = 10, time_per_s: float = 1.0) -> torch.Tensor:
    """Zero random mel bands and time spans of normalised features ``(B, n_mels, F)``  [SpecAugment]."""
    x = x.clone()
    B, M, _ = x.shape
    for b in range(B):
        for _ in range(n_freq):
            w = int(torch.randint(0, freq_w + 1, (1,), generator=gen))
            f0 = int(torch.randint(0, M - w + 1, (1,), generator=gen))
            x[b, f0:f0 + w] = 0
        L = int(lengths[b])
        for _ in range(int(time_per_s * L / 100)):
            w = int(torch.randint(0, time_w + 1, (1,), generator=gen))
            t0 = int(torch.randint(0, max(1, L - w), (1,), generator=gen))
            x[b, :, t0:t0 + w] = 0
    return x


def vtlp(feats: torch.Tensor, alpha: float, fmax: float = 8000.0) -> torch.Tensor:
    """Vocal-tract-length perturbation of one raw log-mel ``(n_mels, F)``  [Jaitly & Hinton 2013].

    The spectrum is stretched along frequency by ``alpha``: the output at frequency ``f`` is the
    input at ``f / alpha`` (``alpha > 1`` moves formants up, as a shorter vocal tract would), read
    off the mel bands by linear interpolation between band centres. Training on such warps makes
    the tokens depend less on who speaks, which is what held-out voices need.
    """
    import librosa

    n = feats.shape[0]
    centres = librosa.mel_frequencies(n_mels=n + 2, fmin=0.0, fmax=fmax)[1:-1]
    pos = torch.from_numpy(np.interp(centres / alpha, centres, np.arange(n))).to(feats.device, torch.float32)
    lo = pos.floor().long().clamp(max=n - 2)
    w = (pos - lo)[:, None]
    f = feats.float()
    return (f[lo] * (1 - w) + f[lo + 1] * w).to(feats.dtype)


def speed_perturb(feats: torch.Tensor, factor: float) -> torch.Tensor:
    """Speed perturbation of one raw log-mel ``(n_mels, F)`` by ``factor``  [Ko et al. 2015].

    Playing audio ``factor`` times faster (sox ``speed``) shortens it by ``factor`` and moves every
    frequency up by ``factor``; on cached features that is a VTLP warp by ``factor`` followed by a
    linear time resampling to ``F / factor`` frames (cropped to a multiple of 4, the length rule).
    The transcript is unchanged, so the ASR loss asks for the same characters at a new tempo and
    pitch: a cheap new speaker, the standard Kaldi recipe uses 0.9 / 1.0 / 1.1.
    """
    if factor == 1.0:
        return feats
    f = vtlp(feats, factor).float()
    n_out = max(4, int(round(f.shape[1] / factor)) // 4 * 4)
    # frame j of the output reads the input at time j·factor (linear interpolation)
    f = torch.nn.functional.interpolate(f[None], size=n_out, mode="linear", align_corners=False)[0]
    return f.to(feats.dtype)


@torch.inference_mode()
def run_model(model: SpeechTokenizer, data: list[dict], batch_frames: int = 20000) -> list[dict]:
    """Eval-mode pass over cached features: per utterance the tokens, the transcript, the mean
    of the token embeddings ``Ĥ`` and of the raw log-mel (for the speaker probe)."""
    was = model.training
    model.eval()
    res = []
    for batch in sorted(make_batches(data, batch_frames, 0)):
        feats, lengths = model.pad_features([data[i]["feats"] for i in batch])
        out = model(feats, lengths)
        hyps = ctc_greedy_decode(out["logits"], out["logit_lengths"])
        emb = model.embed_tokens(out["indices"])  # (B, T, d)
        for k, i in enumerate(batch):
            T = int(out["mask"][k].sum())
            res.append({"i": i, "tokens": out["indices"][k, :T].cpu(), "hyp": hyps[k],
                        "emb_mean": emb[k, :T].mean(0).float().cpu(),
                        "mel_mean": data[i]["feats"].float().mean(1)})
    model.train(was)
    return sorted(res, key=lambda r: r["i"])


def cer(data: list[dict], results: list[dict], voices=None) -> float:
    """Character error rate pooled over utterances (Σ edits / Σ reference characters)."""
    pairs = [(data[r["i"]]["text"], r["hyp"]) for r in results if voices is None or data[r["i"]]["voice"] in voices]
    if not pairs:
        return float("nan")
    return judges.cer([r for r, _ in pairs], [h for _, h in pairs])


# ----------------------------------------------------------------------------- training


@dataclass
class TrainConfig:
    batch_frames: int = 8000  # padded 100 Hz frames per batch (~80 s of audio)
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: int = 200
    max_steps: int = 3000
    max_minutes: float = 30.0  # stop (and export) when the wall clock says so, whatever max_steps says
    grad_clip: float = 1.0
    eval_every: int = 250
    ckpt_every: int = 100
    n_valid: int = 300  # utterances of valid used for the running CER
    spec_augment: bool = True
    vtlp: float = 0.12  # per-utterance VTLP factor drawn from [1 - vtlp, 1 + vtlp]; 0 turns it off
    speed_perturb: tuple = (0.9, 1.0, 1.1)  # per-utterance speed factor, drawn uniformly; (1.0,) turns it off
    seed: int = 0
    precision: str = "fp32"  # minicosy.training.LoopConfig: auto, fp32, bf16, fp16
    grad_accum: int = 1
    workers: int = 0
    log_every: int = 50


def lr_at(step: int, tc: TrainConfig, elapsed_s: float = 0.0) -> float:
    """Warm-up + cosine (:func:`minicosy.training.warmup_cosine`) with this trainer's budgets."""
    return warmup_cosine(step, tc.lr, tc.warmup, tc.max_steps, tc.max_minutes, elapsed_s)


def augment(raw: list[torch.Tensor], tc: TrainConfig, gen: torch.Generator) -> list[torch.Tensor]:
    """Per-utterance speed perturbation, then VTLP, on raw log-mels ``(n_mels, F_i)``."""
    if len(tc.speed_perturb) > 1:
        picks = torch.randint(0, len(tc.speed_perturb), (len(raw),), generator=gen)
        raw = [speed_perturb(f, float(tc.speed_perturb[int(k)])) for f, k in zip(raw, picks)]
    if tc.vtlp > 0:
        alphas = 1 + tc.vtlp * (2 * torch.rand(len(raw), generator=gen) - 1)
        raw = [vtlp(f, float(a)) for f, a in zip(raw, alphas)]
    return raw


def tokenizer_loss(model: SpeechTokenizer, batch: list[dict], tc: TrainConfig, gen: torch.Generator) -> dict:
    """Augment a batch of cached utterances and score it: ``loss`` (CTC + aux, the one to minimise),
    ``ctc`` (the ASR loss alone) and ``n`` (feature frames, the batch's weight across processes)."""
    feats, lengths = model.pad_features(augment([d["feats"] for d in batch], tc, gen))
    if tc.spec_augment:
        feats = spec_augment(feats, lengths, gen)
    out = model(feats, lengths)
    loss = model.ctc_loss(out, [text_to_ids(d["text"]) for d in batch])  # the ASR loss   [CV2 §2.2]
    # aux: the VQ baseline's commitment loss (0 for FSQ)
    return {"loss": loss + out["aux"], "ctc": loss.detach(), "n": float(lengths.sum())}


def train_step(model: SpeechTokenizer, opt: torch.optim.Optimizer, batch: list[dict], tc: TrainConfig,
               gen: torch.Generator, lr: float) -> float:
    """One optimisation step on a batch of cached utterances, without the loop; returns the CTC loss."""
    for g in opt.param_groups:
        g["lr"] = lr
    out = tokenizer_loss(model, batch, tc, gen)
    opt.zero_grad(set_to_none=True)
    out["loss"].backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
    opt.step()
    return out["ctc"].item()


def new_model(cfg: SpeechTokenizerConfig, train: list[dict], device) -> SpeechTokenizer:
    """A fresh tokenizer whose input normalisation is measured on (a sample of) the training features."""
    model = SpeechTokenizer(cfg).to(device)
    allf = torch.cat([d["feats"].float() for d in train[:: max(1, len(train) // 1000)]], dim=1)  # (80, N)
    model.feat_mean.copy_(allf.mean(1))
    model.feat_std.copy_(allf.std(1).clamp(min=1e-3))
    return model


def validate(model: SpeechTokenizer, valid_sub: list[dict], train_voices, step: int) -> dict:
    """Running validation: CER on train and held-out voices, codebook use."""
    res = run_model(model, valid_sub)
    held = sorted({d["voice"] for d in valid_sub} - set(train_voices))
    usage = codebook_usage(torch.cat([r["tokens"] for r in res]), model.codebook_size)
    return {"step": step, "cer_train_voices": cer(valid_sub, res, set(train_voices)),
            "cer_heldout_voices": cer(valid_sub, res, set(held)), "utilisation": usage["utilisation"],
            "perplexity": usage["perplexity"]}


def train_tokenizer(cfg: SpeechTokenizerConfig, tc: TrainConfig, manifest, run_dir, device=None,
                    resume: bool = False, export: str | Path | None = None, progress: bool = True,
                    log=print, init: str | Path | None = None) -> SpeechTokenizer:
    """Train a tokenizer on the ``train`` split of ``manifest``; validate on ``valid``.

    The loop (:class:`minicosy.training.Loop`) checkpoints to ``run_dir/ckpt.pt`` every
    ``tc.ckpt_every`` steps; ``resume=True`` continues from there. ``init`` (an exported tokenizer
    of the same config) starts from its weights instead of a random init — a warm start: a new
    run on new data whose step count, schedule and optimiser start afresh. At the end the model is
    exported (fp32 safetensors + JSON) to ``export``.
    """
    loop = Loop(LoopConfig.of(tc, device=device, progress=progress, desc=f"tokenizer[{cfg.label}]"), run_dir, log)
    train, valid = load_split(manifest, "train"), load_split(manifest, "valid")
    train_voices = sorted({d["voice"] for d in train})
    valid_sub = [
        valid[i] for i in sorted(random.Random(tc.seed).sample(range(len(valid)), min(tc.n_valid, len(valid))))
    ]
    loop.log(f"train: {len(train)} utts, {sum(d['feats'].shape[1] for d in train) / 360000:.2f} h, "
             f"{len(train_voices)} voices; valid: {len(valid)} utts")
    model = new_model(cfg, train, loop.device)
    warm = init_from(model, init) if init is not None else None
    if warm:
        loop.log(f"warm start from {init} ({warm['steps']} steps on {warm['train_utterances']} utterances)")
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay, betas=(0.9, 0.98))
    loop.log(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, quantizer "
             f"{cfg.quantizer} ({model.codebook_size} codes), device {loop.device}")
    n_batches = [0]

    def batches(epoch: int) -> list:
        out = [[train[i] for i in b] for b in make_batches(train, tc.batch_frames, tc.seed * 1000 + epoch)]
        n_batches[0] = len(out)
        return out

    state = loop.fit({"model": model}, {"opt": opt}, lambda batch, loop: tokenizer_loss(model, batch, tc, loop.gen),
                     batches=batches, eval_fn=lambda st: validate(model, valid_sub, train_voices, st["step"]),
                     lr_fn=lambda step, elapsed: lr_at(step, tc, elapsed), resume=resume,
                     on_resume=lambda saved: check_config(saved, cfg, SpeechTokenizerConfig, loop.ckpt),
                     extra={"config": cfg.to_dict(), "train_config": asdict(tc)})
    model.eval()
    if export is not None and loop.is_main:
        stem = model.save_pretrained(export, extra={"trained": {
            "steps": state["step"], "epochs": state["epoch"] + state["pos"] / max(1, n_batches[0]),
            "minutes": round(state["elapsed"] / 60, 1), "device": str(loop.device),
            "train_utterances": len(train), "train_voices": train_voices, "last_valid": state["history"][-1],
            "train_config": asdict(tc), **({"init": warm} if warm else {})}})
        loop.log(f"exported {stem}.safetensors / .json")
    return model


# ----------------------------------------------------------------------------- CLI


def _train_cmd(args) -> int:
    torch.set_num_threads(args.threads)
    cfg = getattr(SpeechTokenizerConfig, args.preset)()
    cfg.quantizer = "vq" if args.quantizer == "vq-plain" else args.quantizer
    cfg.vq_restart = args.quantizer != "vq-plain"
    if args.utterance_cmn is not None:
        cfg.utterance_cmn = args.utterance_cmn
    cfg = cfg.with_overrides(args.set)
    tc = TrainConfig()
    for k in ("max_steps", "max_minutes", "batch_frames", "lr", "seed", "eval_every"):
        if getattr(args, k) is not None:
            setattr(tc, k, getattr(args, k))
    apply_loop_args(args, tc)
    name = {"fsq": "speech_tokenizer", "vq": "vq_tokenizer", "vq-plain": "vq_plain_tokenizer"}[args.quantizer]
    export = args.export or (REPO_ROOT / "data" / "pretrained" / args.preset / name)
    out = args.out or (REPO_ROOT / "runs" / f"tokenizer_{args.preset}_{args.quantizer}")
    manifest = Path(args.corpus) / "manifest.jsonl" if Path(args.corpus).is_dir() else Path(args.corpus)
    train_tokenizer(cfg, tc, manifest, out, device=args.device, resume=args.resume, export=export,
                    progress=not args.no_progress, init=args.init)
    return 0


def register_cli(groups) -> None:
    p = groups["train"].add_parser("tokenizer", help="train the FSQ (or VQ) speech tokenizer with a CTC ASR loss")
    p.add_argument("--preset", choices=["tiny", "paper"], default="tiny")
    p.add_argument("--quantizer", choices=["fsq", "vq", "vq-plain"], default="fsq",
                   help="fsq (the paper), vq (EMA VQ with dead-code restarts) or vq-plain (no restarts)")
    p.add_argument("--corpus", default=str(DEFAULT_CORPUS_DIR), help="corpus folder or manifest.jsonl")
    p.add_argument("--out", default=None, help="run folder for checkpoints (default runs/tokenizer_<preset>_<q>)")
    p.add_argument("--export", default=None, help="stem of the exported model (default data/pretrained/<preset>/...)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/ckpt.pt")
    p.add_argument("--init", default=None, metavar="STEM",
                   help="warm start from an exported tokenizer of the same config (e.g. the committed one)")
    add_set_arg(p, "d_model=256 enc1_layers=4")
    p.add_argument("--utterance-cmn", action=argparse.BooleanOptionalAction, default=None,
                   help="subtract each clip's own mean log-mel per bin as well (default: the preset's; tiny: on)")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--batch-frames", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    add_loop_args(p, TrainConfig.precision)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the CPU is shared)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_train_cmd)
