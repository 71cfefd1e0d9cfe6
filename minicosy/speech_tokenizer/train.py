"""Training of the speech tokenizer (CosyVoice 2 released no training code).

Stage: speech tokenizer, CosyVoice 2 §2.2. The only training signal is the ASR loss: CTC between
the head's character posteriors and the normalised transcript [CV2 §2.2, Fig. 1(a)]. The FSQ
codes receive gradients only through the straight-through estimator; the VQ baseline adds its
commitment loss and learns its codebook by EMA (with dead-code restarts unless ``vq-plain``).

Budget: training stops at ``max_steps`` or after ``max_minutes`` of wall clock, whichever comes
first, and the cosine learning-rate decay follows whichever of the two runs out first, so a
time-capped run still anneals. A resumed run with a larger ``max_steps`` starts a new, lower
cosine cycle from where it stopped (a warm restart). How the committed checkpoints were trained
(commands, minutes, curves) is in the README and ``data/pretrained/tiny/speech_tokenizer.json``.

Augmentation (all on cached features, so an epoch costs only the network): speed perturbation
(0.9 / 1.0 / 1.1), vocal-tract-length perturbation and SpecAugment; with per-utterance cepstral
mean normalisation in the model (``utterance_cmn``), these are what make an ASR model robust to
speakers it never heard.

* :func:`load_split` — 16 kHz log-mels of one manifest split, computed once and cached as a
  ``.pt`` file (``<corpus>/cache/``), so an epoch costs only the network.
* :func:`train_tokenizer` — length-bucketed batches, AdamW with warm-up + cosine decay,
  SpecAugment, gradient clipping, a tqdm progress bar, validation CER, checkpoints with resume
  (model, optimiser, step, position in the epoch, elapsed time), and an fp16 export.
* :func:`run_model`, :func:`cer` — the eval-mode pass and the CER that validation and
  :mod:`minicosy.speech_tokenizer.evaluate` share.

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §2.2 and §4 (FSQ 100% vs VQ 23% code use).
    [2] Park et al., "SpecAugment", arXiv 1904.08779.
    [3] Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (AdamW), arXiv 1711.05101.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from minicosy import judges
from minicosy.speech_tokenizer.fsq import codebook_usage
from minicosy.data.manifest import manifest_root, read_manifest
from minicosy.speech_tokenizer.model import (SpeechTokenizer, SpeechTokenizerConfig,
                                             ctc_greedy_decode, text_to_ids)
from minicosy.text.normalize import normalize_transcript
from minicosy.training import cached_features, length_batches, resume_checkpoint, warmup_cosine
from minicosy.utils import DEFAULT_CORPUS_DIR, REPO_ROOT, pick_device, seed_everything

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


def train_step(model: SpeechTokenizer, opt: torch.optim.Optimizer, batch: list[dict], tc: TrainConfig,
               gen: torch.Generator, lr: float) -> float:
    """One optimisation step on a batch of cached utterances; returns the CTC loss."""
    feats, lengths = model.pad_features(augment([d["feats"] for d in batch], tc, gen))
    if tc.spec_augment:
        feats = spec_augment(feats, lengths, gen)
    for g in opt.param_groups:
        g["lr"] = lr
    out = model(feats, lengths)
    loss = model.ctc_loss(out, [text_to_ids(d["text"]) for d in batch])  # the ASR loss   [CV2 §2.2]
    opt.zero_grad(set_to_none=True)
    (loss + out["aux"]).backward()  # aux: the VQ baseline's commitment loss (0 for FSQ)
    torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
    opt.step()
    return loss.item()


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
                    log=print) -> SpeechTokenizer:
    """Train a tokenizer on the ``train`` split of ``manifest``; validate on ``valid``.

    Checkpoints go to ``run_dir/ckpt.pt`` every ``tc.ckpt_every`` steps; ``resume=True`` continues
    from there. At the end the model is exported (fp32 safetensors + JSON) to ``export``.
    """
    from tqdm import tqdm

    if log is print and progress:  # print above the progress bar, not through it
        log = lambda msg: tqdm.write(msg, file=sys.stderr)  # noqa: E731
    device = pick_device(device)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(tc.seed)
    train = load_split(manifest, "train")
    valid = load_split(manifest, "valid")
    train_voices = sorted({d["voice"] for d in train})
    rng = random.Random(tc.seed)
    valid_sub = sorted(rng.sample(range(len(valid)), min(tc.n_valid, len(valid))))
    valid_sub = [valid[i] for i in valid_sub]
    log(f"train: {len(train)} utts, {sum(d['feats'].shape[1] for d in train) / 360000:.2f} h, "
        f"{len(train_voices)} voices; valid: {len(valid)} utts")

    model = new_model(cfg, train, device)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay, betas=(0.9, 0.98))
    state = {"step": 0, "epoch": 0, "pos": 0, "elapsed": 0.0, "history": []}
    ckpt = run_dir / "ckpt.pt"
    if resume:
        state = resume_checkpoint(ckpt, model, opt, cfg, SpeechTokenizerConfig, device, log) or state
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params / 1e6:.2f} M parameters, quantizer {cfg.quantizer} ({model.codebook_size} codes), "
        f"device {device}")

    def save():
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "state": state,
                    "config": cfg.to_dict(), "train_config": asdict(tc)}, ckpt)

    def log_validation():
        row = validate(model, valid_sub, train_voices, state["step"])
        state["history"].append(row)
        with open(run_dir / "log.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        return row

    gen = torch.Generator().manual_seed(tc.seed + state["step"])
    t0 = time.time() - state["elapsed"]
    bar = tqdm(total=tc.max_steps, initial=state["step"], disable=not progress, mininterval=5,
               file=sys.stderr, dynamic_ncols=True, desc=f"tokenizer[{cfg.label}]")
    model.train()
    stop, batches = False, []
    while not stop and state["step"] < tc.max_steps:
        batches = make_batches(train, tc.batch_frames, tc.seed * 1000 + state["epoch"])
        for bi in range(state["pos"], len(batches)):
            batch = [train[i] for i in batches[bi]]
            loss = train_step(model, opt, batch, tc, gen, lr_at(state["step"], tc, time.time() - t0))
            state["step"] += 1
            state["pos"] = bi + 1
            state["elapsed"] = time.time() - t0
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", lr=f"{opt.param_groups[0]['lr']:.1e}", refresh=False)
            if state["step"] % tc.eval_every == 0 or state["step"] == tc.max_steps:
                row = log_validation()
                model.train()
                log(f"step {state['step']} loss {loss:.3f} valid CER train-voices "
                    f"{row['cer_train_voices']:.3f} held-out {row['cer_heldout_voices']:.3f} "
                    f"utilisation {row['utilisation']:.3f} ({state['elapsed'] / 60:.1f} min)")
            if state["step"] % tc.ckpt_every == 0:
                save()
            if state["step"] >= tc.max_steps or state["elapsed"] > 60 * tc.max_minutes:
                stop = True
                break
        else:
            state["epoch"] += 1
            state["pos"] = 0
    bar.close()
    if not state["history"] or state["history"][-1]["step"] != state["step"]:
        row = log_validation()
        log(f"final step {state['step']}: valid CER train-voices {row['cer_train_voices']:.3f} "
            f"held-out {row['cer_heldout_voices']:.3f} utilisation {row['utilisation']:.3f}")
    save()
    model.eval()
    if export is not None:
        stem = model.save_pretrained(export, extra={"trained": {
            "steps": state["step"], "epochs": state["epoch"] + state["pos"] / max(1, len(batches)),
            "minutes": round(state["elapsed"] / 60, 1), "device": str(device),
            "train_utterances": len(train), "train_voices": train_voices, "last_valid": state["history"][-1],
            "train_config": asdict(tc)}})
        log(f"exported {stem}.safetensors / .json")
    return model


# ----------------------------------------------------------------------------- CLI


def _train_cmd(args) -> int:
    torch.set_num_threads(args.threads)
    cfg = getattr(SpeechTokenizerConfig, args.preset)()
    cfg.quantizer = "vq" if args.quantizer == "vq-plain" else args.quantizer
    cfg.vq_restart = args.quantizer != "vq-plain"
    if args.utterance_cmn is not None:
        cfg.utterance_cmn = args.utterance_cmn
    tc = TrainConfig()
    for k in ("max_steps", "max_minutes", "batch_frames", "lr", "seed", "eval_every"):
        if getattr(args, k) is not None:
            setattr(tc, k, getattr(args, k))
    name = {"fsq": "speech_tokenizer", "vq": "vq_tokenizer", "vq-plain": "vq_plain_tokenizer"}[args.quantizer]
    export = args.export or (REPO_ROOT / "data" / "pretrained" / args.preset / name)
    out = args.out or (REPO_ROOT / "runs" / f"tokenizer_{args.preset}_{args.quantizer}")
    manifest = Path(args.corpus) / "manifest.jsonl" if Path(args.corpus).is_dir() else Path(args.corpus)
    train_tokenizer(cfg, tc, manifest, out, device=args.device, resume=args.resume, export=export,
                    progress=not args.no_progress)
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
    p.add_argument("--utterance-cmn", action=argparse.BooleanOptionalAction, default=None,
                   help="subtract each clip's own mean log-mel per bin as well (default: the preset's; tiny: on)")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--batch-frames", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the CPU is shared)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_train_cmd)
