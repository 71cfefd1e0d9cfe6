"""Training of the chunk-aware flow and of the speaker encoder that conditions it.

Stage: flow matching, CosyVoice 2 §2.4. Per utterance of a batch the trainer draws

* one of the paper's **four masks** — non-causal, full-causal, chunk-M, chunk-2M — so one model
  serves offline and streaming synthesis (the official code draws one of two per batch: full, or a
  25-token chunk); with probability ``p_first_chunk`` instead the **scheduled** chunk mask that a
  low-latency stream uses — a first chunk of ``F = ⌈M/3⌉`` tokens after the prompt, then chunks of
  M or 2M (:func:`minicosy.flow.masks.block_ends` ``first_chunk``);
* for half the utterances a **prompt**: the first 0–30% of the frames (whole tokens) are given as
  ``cond`` and are the chunk mask's first block (as at inference), and carry no loss; with
  ``FlowConfig.prompt_lookahead="clip"`` the prompt's lookahead stops at its last token (the model
  receives each utterance's prompt length), so the prompt block is cacheable at inference;
* a **CFG dropout** of 0.2: ``mu``, speaker and ``cond`` are zeroed together, so the same network
  also learns the unconditional field that guidance subtracts;
* ``t ~ U(0, 1)`` warped by the cosine schedule ``1 − cos(π/2·t)`` (as the official trainer), so
  training sees most often the early times that inference samples most densely.

Loss: **MSE** (the official code) rather than the paper's L1, because flow matching needs the
conditional *mean* of the target velocity: the marginal field that transports the noise to the data
is ``E[u_t | x_t]`` [Lipman et al. Thm. 2], the minimiser of the squared error. L1's minimiser is the
conditional median, which equals it only for symmetric conditional distributions. ``loss="l1"``
reproduces the paper's choice.

The speaker encoder (:mod:`minicosy.flow.speaker`) is trained first (``minicosy train speaker``) on
the train voices and their pseudo-speakers; the flow then reads each utterance's own vector.

* :func:`load_mels` — 24 kHz log-mels of a split, cached as ``<corpus>/cache/flowmel24k_*.pt``;
* :func:`make_inputs`, :func:`flow_loss` — one training batch (masks, prompt, dropout, ``x_t``);
* :func:`train_flow`, :func:`train_speaker` — data, loss and export around the shared loop
  (:class:`minicosy.training.Loop`: length-bucketed batches or random crops, AdamW, warm-up + cosine,
  tqdm, validation, checkpoints with resume, ``--precision`` (the flow: bf16 on CUDA), ``torchrun``).

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §2.4, Eq. 3.
    [2] Lipman et al., "Flow Matching for Generative Modeling", ICLR 2023, Theorem 2.
    [3] Official code: ``cosyvoice/flow/flow_matching.py`` (``compute_loss``: MSE, cosine-warped t,
        ``training_cfg_rate = 0.2``), ``cosyvoice/flow/flow.py`` (prompt of up to 30%).
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from minicosy.data.manifest import manifest_root, read_manifest
from minicosy.flow.masks import attention_mask, with_padding
from minicosy.flow.matching import conditional_flow
from minicosy.flow.model import ChunkAwareFlow, FlowConfig, align_tokens_and_frames
from minicosy.flow.speaker import (
    SpeakerConfig,
    SpeakerEncoder,
    centroids,
    embed_all,
    speaker_report,
)
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


def load_mels(manifest, split: str, cache_dir: str | Path | None = "auto", voices=None) -> list[dict]:
    """``[{id, voice, mel (80, F) fp16}]`` of one split: ``log_mel(load_audio(path, 24000))``.

    With ``cache_dir="auto"`` the mels are cached under ``<corpus>/cache/`` (not for the fixtures).
    """
    from minicosy.audio import load_audio, log_mel

    rows = read_manifest(manifest, split=split, voices=voices)
    if not rows:
        raise ValueError(f"manifest {manifest} has no utterances in split {split!r}.")
    return cached_features(rows, manifest_root(manifest), cache_dir, f"flowmel24k_{split}",
                           lambda u, root: {"id": u.id, "voice": u.voice,
                                            "mel": log_mel(load_audio(u.audio_path(root), 24000)).half()})


def attach_tokens(data: list[dict], tokens: dict, vocab_size: int, up: int = 2) -> list[dict]:
    """Add each utterance's speech tokens and crop both to ``up`` frames per token.

    Utterances without tokens, or with fewer than 2 after :func:`align_tokens_and_frames`, are dropped.

    Raises:
        ValueError: a token id is outside the flow's vocabulary (a cache of another tokenizer).
    """
    out = []
    for d in data:
        if d["id"] not in tokens:
            continue
        tok, mel = align_tokens_and_frames(tokens[d["id"]].long(), d["mel"], up)
        if tok.numel() < 2:
            continue
        if int(tok.max()) >= vocab_size or int(tok.min()) < 0:
            raise ValueError(f"utterance {d['id']}: token ids up to {int(tok.max())}, but the flow's vocab_size "
                             f"is {vocab_size}; rebuild the token cache or set FlowConfig.vocab_size.")
        out.append({**d, "tokens": tok, "mel": mel})
    return out


make_batches = length_batches  # at most ``batch_frames`` padded frames a batch (minicosy.training)
lr_at = warmup_cosine  # warm-up + cosine to 10 % at max_steps or max_minutes (minicosy.training)


# ----------------------------------------------------------------------------- flow


@dataclass
class FlowTrainConfig:
    batch_frames: int = 3000  # padded 50 Hz mel frames per batch (~60 s of audio)
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 200
    max_steps: int = 6000
    max_minutes: float = 110.0
    grad_clip: float = 1.0
    eval_every: int = 250
    ckpt_every: int = 100
    n_valid: int = 64
    p_prompt: float = 0.5  # share of utterances given a prompt
    prompt_max: float = 0.3  # prompt = the first U(0, prompt_max) of the frames
    cfg_drop: float = 0.2  # drop mu, speaker and cond together
    p_first_chunk: float = 0.2  # share of utterances given the scheduled chunk mask (the rest: the paper's four)
    first_chunk_tokens: int | None = None  # F of the scheduled mask; None: ⌈M/3⌉ (M = FlowConfig.chunk_tokens)
    loss: str = "mse"  # "mse" (official) or "l1" (the paper); see the module docstring
    amp: bool = True  # False forces fp32 whatever ``precision`` says
    seed: int = 0
    precision: str = "auto"  # bf16 autocast on CUDA, fp32 on CPU (minicosy.training.LoopConfig)
    grad_accum: int = 1
    workers: int = 0
    log_every: int = 50


def draw_mask(T: int, M: int, prefix: int, tc: FlowTrainConfig, gen: torch.Generator) -> torch.Tensor:
    """One utterance's ``(T, T)`` token mask: the scheduled chunk mask with probability ``tc.p_first_chunk``
    (first chunk ``F`` after the prompt, then ``M`` or ``2M``), else one of the paper's four, uniformly.

    Raises:
        ValueError: ``p_first_chunk`` outside ``[0, 1]`` or ``first_chunk_tokens`` < 1.
    """
    if not 0.0 <= tc.p_first_chunk <= 1.0:
        raise ValueError(f"p_first_chunk is a probability in [0, 1], got {tc.p_first_chunk}.")
    # no extra draw when the schedule is off: the same masks as before it existed, for the same seed
    if tc.p_first_chunk > 0 and float(torch.rand((), generator=gen)) < tc.p_first_chunk:
        F = tc.first_chunk_tokens if tc.first_chunk_tokens is not None else math.ceil(M / 3)
        C = (M, 2 * M)[int(torch.randint(0, 2, (), generator=gen))]
        return attention_mask("chunk", T, C, prefix=prefix, first_chunk=F)
    # the paper's four masks, one drawn per utterance: non-causal, full-causal, chunk-M, chunk-2M
    kind, C = [("non_causal", None), ("full_causal", None), ("chunk", M), ("chunk", 2 * M)][
        int(torch.randint(0, 4, (), generator=gen))]
    return attention_mask(kind, T, C, prefix=prefix)


def make_inputs(model: ChunkAwareFlow, items: list[dict], tc: FlowTrainConfig, gen: torch.Generator) -> dict:
    """One training batch: padded tokens, per-utterance mask / prompt / dropout, ``x_t``, ``u_t``.

    Args:
        items: ``[{tokens (T_i,), mel (n_mels, up·T_i), spk (spk_dim,)}]``.
        gen: the generator of every random draw (the global RNG is not used).

    Returns:
        a dict of ``ChunkAwareFlow.forward`` arguments (``n_prompt (B,)`` included) plus
        ``u_t (B, n_mels, up·T)`` and ``loss_mask (B, 1, up·T)`` (real, non-prompt frames).
    """
    cfg, dev = model.cfg, model.device
    B, up, M = len(items), cfg.up, cfg.chunk_tokens
    lengths = torch.tensor([d["tokens"].numel() for d in items])
    T = int(lengths.max())
    tokens = torch.zeros(B, T, dtype=torch.long)
    x1 = torch.zeros(B, cfg.n_mels, up * T)
    masks, n_prompt = [], []
    for b, d in enumerate(items):
        L = int(lengths[b])
        tokens[b, :L] = d["tokens"]
        x1[b, :, : up * L] = model.normalize(d["mel"].float().to(dev)).cpu()
        has_prompt = float(torch.rand((), generator=gen)) < tc.p_prompt
        p = int(float(torch.rand((), generator=gen)) * tc.prompt_max * L) if has_prompt else 0
        # minicosy: the prompt is the chunk grid's first block, as at inference (official: grid from frame 0)
        masks.append(draw_mask(T, M, p, tc, gen))
        n_prompt.append(p)
    frames = torch.arange(up * T)[None, :]
    n_prompt = torch.tensor(n_prompt)
    cond = x1 * (frames < up * n_prompt[:, None])[:, None]  # prompt mel on the first frames, zeros elsewhere
    loss_mask = ((frames < up * lengths[:, None]) & (frames >= up * n_prompt[:, None]))[:, None]
    # t ~ U(0, 1), warped by the cosine schedule: t ← 1 − cos(π/2·t)   (official trainer)
    t = 1 - torch.cos(0.5 * math.pi * torch.rand(B, generator=gen))
    x0 = torch.randn(x1.shape, generator=gen)
    x_t, u_t = conditional_flow(x0, x1, t)
    drop = torch.rand(B, generator=gen) < tc.cfg_drop
    spk = torch.stack([d["spk"] for d in items]).float()
    return {k: v.to(dev) for k, v in dict(tokens=tokens, lengths=lengths, x_t=x_t, t=t, speaker=spk, cond=cond,
                                          mask=with_padding(torch.stack(masks), lengths), drop=drop,
                                          n_prompt=n_prompt, u_t=u_t, loss_mask=loss_mask).items()}


def flow_loss(model: ChunkAwareFlow, inputs: dict, loss: str = "mse") -> torch.Tensor:
    """Mean error between predicted and target velocity over real, non-prompt frames."""
    args = {k: v for k, v in inputs.items() if k not in ("u_t", "loss_mask")}
    v = model(**args).float()
    # L = ‖v_θ(φ_t, t | mu, spk, cond) − ω_t‖²  on frames that are neither padding nor prompt   [CV2 Eq. 3]
    err = (v - inputs["u_t"]) ** 2 if loss == "mse" else (v - inputs["u_t"]).abs()
    m = inputs["loss_mask"].to(err.dtype)
    return (err * m).sum() / (m.sum() * err.shape[1]).clamp(min=1)


def speaker_vectors(encoder: SpeakerEncoder, data: list[dict], batch: int = 32) -> None:
    """Add ``spk`` (the utterance's own speaker vector, as the official recipe) to every item.

    The encoder is frozen, so the vectors are computed once, before training.
    """
    encoder.eval()
    with torch.inference_mode():
        for i in range(0, len(data), batch):
            group = data[i: i + batch]
            lens = torch.tensor([d["mel"].shape[1] for d in group])
            mel = torch.zeros(len(group), encoder.cfg.n_mels, int(lens.max()))
            for k, d in enumerate(group):
                mel[k, :, : lens[k]] = d["mel"].float()
            for d, e in zip(group, encoder(mel.to(encoder.device), lens.to(encoder.device)).cpu()):
                d["spk"] = e


def load_flow_data(cfg: FlowConfig, tc: FlowTrainConfig, manifest, tokens: dict, spk_enc: SpeakerEncoder):
    """``(train, valid)`` items with tokens and speaker vectors; held-out voices never train.

    Raises:
        ValueError: the speaker vectors do not fit the flow, or no train utterance has tokens.
    """
    if spk_enc.cfg.emb_dim != cfg.spk_dim:
        raise ValueError(f"speaker encoder gives {spk_enc.cfg.emb_dim}-d vectors, the flow expects {cfg.spk_dim}.")
    train = [d for d in load_mels(manifest, "train") if not is_heldout(d["voice"])]  # zero-shot voices stay unseen
    train = attach_tokens(train, tokens, cfg.vocab_size, cfg.up)
    valid = attach_tokens(load_mels(manifest, "valid"), tokens, cfg.vocab_size, cfg.up)
    if not train:
        raise ValueError(f"no training utterance of {manifest} has speech tokens; run `minicosy data tokens`.")
    valid = random.Random(tc.seed).sample(valid, min(tc.n_valid, len(valid))) or train[: tc.n_valid]
    speaker_vectors(spk_enc, train + valid)
    return train, valid


def mel_stats(model, data: list[dict]) -> None:
    """Set the model's ``mel_mean`` / ``mel_std`` buffers from (a sample of) the training mels."""
    allm = torch.cat([d["mel"].float() for d in data[:: max(1, len(data) // 1000)]], dim=1)
    model.mel_mean.copy_(allm.mean(1))
    model.mel_std.copy_(allm.std(1).clamp(min=1e-3))


def train_flow(cfg: FlowConfig, tc: FlowTrainConfig, manifest, run_dir, speaker=None, tokens: dict | None = None,
               device=None, resume: bool = False, export: str | Path | None = None, progress: bool = True,
               log=print, init: str | Path | None = None) -> ChunkAwareFlow:
    """Train the flow on ``train`` (valid loss on ``valid``), checkpoint to ``run_dir/ckpt.pt``.

    The loop is :class:`minicosy.training.Loop`; here are the data, :func:`flow_loss` and the export.

    Args:
        speaker: a :class:`SpeakerEncoder`, its path, or ``None`` (the committed ``speaker`` model).
        tokens: ``{utt id: ids}``; ``None`` reads the corpus's token cache (``minicosy data tokens``).
        export: stem of the exported model (``save_pretrained``: fp16 only if outputs stay the same).
        init: an exported flow of the same sizes to start from (:func:`minicosy.training.init_from`), e.g. the
            previous corpus's flow continued on new tokens; its ``prompt_lookahead`` may differ (a mask, not a
            weight: the run trains with ``cfg``'s). The mel statistics are recomputed from this run's data.
    """
    from minicosy.speech_tokenizer.corpus_tokens import load_token_cache

    precision = tc.precision if tc.amp else "fp32"
    loop = Loop(LoopConfig.of(tc, device=device, progress=progress, desc="flow", precision=precision), run_dir, log)
    tokens = load_token_cache(manifest_root(manifest)) if tokens is None else tokens
    spk_enc = speaker if isinstance(speaker, SpeakerEncoder) else SpeakerEncoder.from_pretrained(speaker, loop.device)
    train, valid = load_flow_data(cfg, tc, manifest, tokens, spk_enc)
    loop.log(f"train: {len(train)} utts, {sum(d['mel'].shape[1] for d in train) / 180000:.2f} h; valid: {len(valid)}")
    model = ChunkAwareFlow(cfg).to(loop.device)
    warm = None
    if init is not None:
        warm = init_from(model, init, may_differ=("prompt_lookahead",))
        loop.log(f"warm start from {init} ({warm['steps']} steps, {warm['minutes']} min)")
    mel_stats(model, train)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay, betas=(0.9, 0.98))
    loop.log(f"model: {model.num_parameters() / 1e6:.2f} M parameters, vocab {cfg.vocab_size}, device {loop.device}")

    def step(items: list[dict], loop: Loop) -> dict:
        inputs = make_inputs(model, items, tc, loop.gen)
        return {"loss": flow_loss(model, inputs, tc.loss), "n": float(inputs["loss_mask"].sum())}

    def validate(state: dict) -> dict:
        model.eval()
        gen, losses = torch.Generator().manual_seed(1234), []  # the same draws every time: comparable
        with torch.no_grad(), loop.autocast():
            for batch in make_batches([d["mel"].shape[1] for d in valid], tc.batch_frames, 0):
                losses.append(float(flow_loss(model, make_inputs(model, [valid[i] for i in batch], tc, gen), tc.loss)))
        return {"valid_loss": sum(losses) / len(losses), "minutes": state["elapsed"] / 60}

    state = loop.fit({"model": model}, {"opt": opt}, step, eval_fn=validate, resume=resume,
                     batches=lambda epoch: [[train[i] for i in b] for b in make_batches(
                         [d["mel"].shape[1] for d in train], tc.batch_frames, tc.seed * 1000 + epoch)],
                     lr_fn=lambda s, e: lr_at(s, tc.lr, tc.warmup, tc.max_steps, tc.max_minutes, e),
                     on_resume=lambda saved: check_config(saved, cfg, FlowConfig, loop.ckpt),
                     extra={"config": cfg.to_dict(), "train_config": asdict(tc)})
    model.eval()
    if export is not None and loop.is_main:
        stem = model.save_pretrained(export, extra={"trained": {
            "steps": state["step"], "minutes": round(state["elapsed"] / 60, 1), "device": str(loop.device),
            "train_utterances": len(train), "last_valid": state["history"][-1], "train_config": asdict(tc),
            "history": list(state["history"]), **({"init": warm} if warm else {})}})
        loop.log(f"exported {stem}.safetensors / .json ({json.loads(stem.with_suffix('.json').read_text())['dtype']})")
    return model


# ----------------------------------------------------------------------------- speaker encoder


def is_heldout(voice: str) -> bool:
    """A held-out voice or any transform of it: never used for training."""
    from minicosy.data.corpus import HELDOUT_VOICES, split_voice_id

    return split_voice_id(voice)[0] in HELDOUT_VOICES


@dataclass
class SpeakerTrainConfig:
    batch_utts: int = 32
    crop_frames: tuple = (100, 200)  # random crops of 2–4 s: vectors must not depend on the length
    lr: float = 1e-3  # 3e-3 already makes the margin loss stall on the first steps
    weight_decay: float = 0.01
    warmup: int = 100
    max_steps: int = 2000
    max_minutes: float = 20.0
    eval_every: int = 250
    ckpt_every: int = 100
    seed: int = 0
    precision: str = "fp32"
    grad_accum: int = 1
    workers: int = 0
    log_every: int = 50


def speaker_batch(data: list[dict], idx: list[int], tc: SpeakerTrainConfig, gen: torch.Generator):
    """Random crops of the chosen utterances → ``mel (B, n_mels, F)``, ``lengths (B,)``."""
    crops = []
    for i in idx:
        mel = data[i]["mel"].float()
        n = min(mel.shape[1], int(torch.randint(tc.crop_frames[0], tc.crop_frames[1] + 1, (), generator=gen)))
        s = int(torch.randint(0, mel.shape[1] - n + 1, (), generator=gen))
        crops.append(mel[:, s:s + n])
    lengths = torch.tensor([c.shape[1] for c in crops])
    out = torch.zeros(len(crops), crops[0].shape[0], int(lengths.max()))
    for k, c in enumerate(crops):
        out[k, :, : c.shape[1]] = c
    return out, lengths


def train_speaker(scfg: SpeakerConfig, tc: SpeakerTrainConfig, manifest, run_dir, device=None, resume: bool = False,
                  export: str | Path | None = None, progress: bool = True, log=print) -> SpeakerEncoder:
    """Train the speaker encoder to classify the train voices and pseudo-speakers (AM-softmax).

    Batches are random crops of random utterances (``loop.gen``: no epochs). Validation:
    nearest-centroid speaker ID on the valid utterances of the train voices and the held-out
    voices' cosine to every train voice (:func:`minicosy.flow.speaker.speaker_report`).
    """
    loop = Loop(LoopConfig.of(tc, device=device, progress=progress, desc="speaker"), run_dir, log)
    train = [d for d in load_mels(manifest, "train") if not is_heldout(d["voice"]) and d["mel"].shape[1] >= 10]
    voices = sorted({d["voice"] for d in train})
    if len(voices) < 2:
        raise ValueError(f"speaker training needs at least 2 train voices, {manifest} has {voices}.")
    valid = [d for d in load_mels(manifest, "valid") if d["mel"].shape[1] >= 10]
    label = {v: k for k, v in enumerate(voices)}
    loop.log(f"speaker: {len(train)} train utts over {len(voices)} voices (pseudo-speakers included)")
    model = SpeakerEncoder(SpeakerConfig(**{**asdict(scfg), "n_speakers": len(voices)}), voices).to(loop.device)
    mel_stats(model, train)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    report: dict = {}

    def step(_, loop: Loop) -> dict:
        idx = torch.randint(0, len(train), (min(tc.batch_utts, len(train)),), generator=loop.gen).tolist()
        mel, lengths = speaker_batch(train, idx, tc, loop.gen)
        labels = torch.tensor([label[train[i]["voice"]] for i in idx], device=loop.device)
        return {"loss": F.cross_entropy(model.logits(model(mel.to(loop.device), lengths.to(loop.device)), labels),
                                        labels)}

    def validate(state: dict) -> dict | None:
        if not valid:
            return None
        report.update(
            speaker_report(model, train, valid, heldout={d["voice"] for d in valid if is_heldout(d["voice"])})
        )
        return {"speaker_id_accuracy": report["speaker_id_accuracy"], "n_valid": report["n_test"]}

    def on_resume(saved: dict) -> None:
        if saved["voices"] != voices:
            raise ValueError(f"{loop.ckpt} was trained on other voices; use a new --out folder.")

    state = loop.fit({"model": model}, {"opt": opt}, step, eval_fn=validate, resume=resume, on_resume=on_resume,
                     lr_fn=lambda s, e: lr_at(s, tc.lr, tc.warmup, tc.max_steps, tc.max_minutes, e),
                     extra={"voices": voices, "config": model.cfg.to_dict(), "train_config": asdict(tc)})
    model.eval()
    if export is not None and loop.is_main:
        # each train voice's centroid: the speaker vector that SFT synthesis uses for that voice
        cents = centroids(embed_all(model, train), [d["voice"] for d in train])
        stem = model.save_pretrained(export, extra={"trained": {
            "steps": state["step"], "minutes": round(state["elapsed"] / 60, 1), "train_utterances": len(train),
            "report": report, "train_config": asdict(tc)},
            "centroids": {v: [round(float(x), 6) for x in c] for v, c in sorted(cents.items())}})
        loop.log(f"exported {stem}.safetensors / .json")
    return model


def evaluate_speaker(model: SpeakerEncoder, manifest) -> dict:
    """:func:`~minicosy.flow.speaker.speaker_report` on a corpus: centroids from ``train`` (held-out
    voices excluded), identification on ``valid`` + ``test``; held-out voices measured there."""
    enroll = [d for d in load_mels(manifest, "train") if not is_heldout(d["voice"])]
    test = load_mels(manifest, "valid") + load_mels(manifest, "test")
    return speaker_report(model, enroll, test, heldout={d["voice"] for d in test if is_heldout(d["voice"])})


# ----------------------------------------------------------------------------- CLI


def _manifest(corpus) -> Path:
    return Path(corpus) / "manifest.jsonl" if Path(corpus).is_dir() else Path(corpus)


def _flow_cmd(args) -> int:
    from minicosy.speech_tokenizer.corpus_tokens import load_token_cache
    from minicosy.speech_tokenizer.model import SpeechTokenizer

    torch.set_num_threads(args.threads)
    vocab = SpeechTokenizer.from_pretrained(args.tokenizer, device="cpu").codebook_size
    cfg = getattr(FlowConfig, args.preset)().with_overrides(args.set)
    cfg.vocab_size = vocab  # the speech codebook of the tokenizer that made the token cache
    tc = FlowTrainConfig(**{k: getattr(args, k) for k in ("max_steps", "max_minutes", "seed", "lr")
                            if getattr(args, k) is not None})
    apply_loop_args(args, tc)
    export = args.export or (REPO_ROOT / "data" / "pretrained" / args.preset / "flow")
    out = args.out or (REPO_ROOT / "runs" / f"flow_{args.preset}")
    speaker = args.speaker or (REPO_ROOT / "data" / "pretrained" / args.preset / "speaker")
    tokens = load_token_cache(manifest_root(_manifest(args.corpus)), args.tokenizer)  # refused if made by another
    train_flow(
        cfg,
        tc,
        _manifest(args.corpus),
        out,
        speaker=speaker,
        tokens=tokens,
        device=args.device,
        resume=args.resume,
        export=export,
        progress=not args.no_progress,
        init=args.init,
    )
    return 0


def _speaker_cmd(args) -> int:
    torch.set_num_threads(args.threads)
    scfg = getattr(SpeakerConfig, args.preset)().with_overrides(args.set)  # tiny (the bare constructor) or paper
    tc = SpeakerTrainConfig(**{k: getattr(args, k) for k in ("max_steps", "max_minutes", "seed", "lr")
                               if getattr(args, k) is not None})
    apply_loop_args(args, tc)
    export = args.export or (REPO_ROOT / "data" / "pretrained" / args.preset / "speaker")
    out = args.out or (REPO_ROOT / "runs" / f"speaker_{args.preset}")
    train_speaker(scfg, tc, _manifest(args.corpus), out, device=args.device, resume=args.resume, export=export,
                  progress=not args.no_progress)
    return 0


def register_cli(groups) -> None:
    for name, func, help_ in (("flow", _flow_cmd, "train the chunk-aware flow (tokens → mel); needs the token "
                               "cache and a speaker encoder"),
                              ("speaker", _speaker_cmd, "train the speaker encoder fed to the flow")):
        p = groups["train"].add_parser(name, help=help_)
        p.add_argument("--preset", choices=["tiny", "paper"], default="tiny")
        p.add_argument("--corpus", default=str(DEFAULT_CORPUS_DIR), help="corpus folder or manifest.jsonl")
        p.add_argument("--out", default=None, help=f"run folder for checkpoints (default runs/{name}_<preset>)")
        p.add_argument("--export", default=None,
                       help=f"stem of the exported model (default data/pretrained/<preset>/{name})")
        p.add_argument("--resume", action="store_true", help="continue from <out>/ckpt.pt")
        p.add_argument("--max-steps", type=int, default=None)
        p.add_argument("--max-minutes", type=float, default=None)
        p.add_argument("--seed", type=int, default=None)
        p.add_argument("--lr", type=float, default=None,
                       help="peak learning rate of the warm-up + cosine (a resumed run follows the new schedule)")
        add_set_arg(p, "d_est=192 est_layers=6" if name == "flow" else "channels=192")
        add_loop_args(p, "auto" if name == "flow" else "fp32")
        p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the CPU is shared)")
        p.add_argument("--no-progress", action="store_true")
        if name == "flow":
            p.add_argument("--speaker", default=None,
                           help="speaker encoder stem (default data/pretrained/<preset>/speaker)")
            p.add_argument("--tokenizer", default=None, help="speech tokenizer whose codebook size is the vocab")
            p.add_argument("--init", default=None, metavar="STEM",
                           help="warm start from an exported flow of the same sizes (a new schedule)")
        p.set_defaults(func=func)
