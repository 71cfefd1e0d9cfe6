"""Training of the text-speech LM: ``minicosy train lm --preset tiny``.

Stage: text-speech LM, CosyVoice 2 §2.3 [1]. The data are the corpus transcripts (characters,
through :class:`~minicosy.text.chars.CharTokenizer`) and the speech tokens of the frozen
tokenizer (``minicosy data tokens`` writes the cache, :func:`load_token_cache` reads it). Each
example is drawn afresh every epoch:

* **layout** — streaming (N:M interleave with FILL targets) with probability 0.5 where the
  utterance allows it (``T / L > M / N``), else non-streaming: the paper's unified model;
* **speaker tag** — with probability 0.5 the voice's tag is put before the text (SFT), else
  not (the model also learns to speak with no tag, which is what ICL prompts rely on).

* **ICL pairs** — with probability ``p_pair`` the example is two utterances of the same voice
  joined, ``text_a + " " + text_b`` and ``speech_a + speech_b``: exactly what an ICL request looks
  like at inference (prompt transcript + text, prompt tokens, then the model continues). The paper
  relies on long multi-sentence training utterances for this; a corpus of 2–4 s single sentences
  never shows the model a second sentence after a first one, and zero-shot prompts then derail
  (measured: token CER 0.72 on held-out prompt voices at 49 min without pairs, vs 0.36 for SFT).
* **robust ICL pairs** — a pair's prompt is sometimes *two* earlier utterances of the voice
  (``p_two_prompts``: prompts of one to three sentences, about 2–9 s, as users' prompts vary), and
  sometimes *noisy* (``p_noisy_prompt``): a share drawn from ``prompt_noise`` of its tokens replaced
  by random codes, with no loss on the prompt's speech (the model must not learn to emit noise).
  This stands in for the prompt of a voice the tokenizer never heard, whose tokens are less
  regular than a training voice's: the continuation must follow the text, not derail after
  an unusual prompt. A cheap proxy for tokenising augmented audio, which would cost a second
  token cache.

Training: length-bucketed batches (``batch_tokens`` padded positions), AdamW [2] with weight decay,
linear warm-up then cosine decay to 10% (over ``max_steps`` or ``max_minutes``, whichever runs
out first), gradient clipping, bf16 autocast on CUDA; every ``eval_every`` steps the valid loss
and top-1 accuracy (fixed layouts, so the numbers are comparable), and whenever the valid loss is
the best so far the model is exported (early-stopping friendly: the export is always the best
model, training can be stopped at any time). The export is fp16 if the teacher-forced greedy
tokens on valid batches stay identical in fp16, else fp32. The loop itself — checkpoints and
``--resume``, budgets, tqdm, devices, ``--precision``, ``--grad-accum``, ``torchrun`` — is
:class:`minicosy.training.Loop`.

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §2.3.
    [2] Loshchilov & Hutter, "Decoupled Weight Decay Regularization", arXiv 1711.05101.
"""

from __future__ import annotations

import copy
import random
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch

from minicosy.data.manifest import read_manifest
from minicosy.lm.model import LMConfig, TextSpeechLM
from minicosy.lm.sequence import build_sequence, to_tensors, use_streaming
from minicosy.text.chars import CharTokenizer
from minicosy.training import (
    Loop,
    LoopConfig,
    add_loop_args,
    add_set_arg,
    apply_loop_args,
    check_config,
    init_from,
    length_batches,
    warmup_cosine,
)
from minicosy.utils import DEFAULT_CORPUS_DIR, REPO_ROOT


@dataclass
class TrainConfig:
    batch_tokens: int = 2560  # padded positions per batch (≈ 16 × 160, docs/paper_vs_code.md §5)
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup: int = 200
    max_steps: int = 20000
    max_minutes: float = 60.0
    grad_clip: float = 1.0
    eval_every: int = 250
    ckpt_every: int = 100
    p_streaming: float = 0.5  # streaming layout where allowed [CV2 §2.3]
    p_speaker_tag: float = 0.5  # speaker tag before the text (SFT) vs none (ICL-style)
    p_pair: float = 0.5  # two utterances of one voice joined (ICL-shaped examples); see the module docstring
    p_two_prompts: float = 0.3  # of the pairs: the prompt is two utterances (a longer prompt)
    p_noisy_prompt: float = 0.3  # of the pairs: prompt tokens partly randomised, no loss on them
    prompt_noise: tuple = (0.05, 0.3)  # share of a noisy prompt's tokens replaced, drawn uniformly
    n_valid: int = 300
    seed: int = 0
    precision: str = "auto"  # bf16 autocast on CUDA, fp32 on CPU (minicosy.training.LoopConfig)
    grad_accum: int = 1
    workers: int = 0
    log_every: int = 50


def load_lm_data(corpus, split: str, tokens: dict, tokenizer: CharTokenizer) -> list[dict]:
    """``[{id, voice, text_ids, speech}]`` for one split (utterances without tokens are skipped)."""
    out = []
    for u in read_manifest(corpus, split=split):
        speech = tokens.get(u.id)
        text = tokenizer.encode(u.text)
        if speech is None or not len(speech) or not text:
            continue
        out.append({"id": u.id, "voice": u.voice, "text_ids": text, "speech": speech.long().tolist()})
    return out


def pair_examples(data: list[dict], tokenizer: CharTokenizer, rng: random.Random, p_pair: float,
                  p_two: float = 0.0, p_noisy: float = 0.0, noise: tuple = (0.05, 0.3),
                  codebook_size: int | None = None) -> list[dict]:
    """``data`` with each item, with probability ``p_pair``, preceded by other utterances of its voice.

    The joined item reads ``text_a + " " + text_b`` (the same space :func:`encode_icl` puts between
    an ICL prompt transcript and the text) and ``speech_a + speech_b``; the others are unchanged.
    With probability ``p_two`` a pair's prompt is two utterances ``a1 a2`` (same joins). With
    probability ``p_noisy`` the prompt's tokens are corrupted: each is replaced by a random code
    (``0 .. codebook_size - 1``) with a probability drawn from ``noise``, and the item carries
    ``n_masked`` = the prompt's length, the speech targets :func:`make_example` leaves without loss.
    """
    if p_pair <= 0:
        return data
    if p_noisy > 0 and not codebook_size:
        raise ValueError("pair_examples: noisy prompts need codebook_size (the range of the random codes).")
    by_voice: dict[str, list[dict]] = {}
    for d in data:
        by_voice.setdefault(d["voice"], []).append(d)
    space = tokenizer.encode(" ")
    out = []
    for d in data:
        others = by_voice[d["voice"]]
        if len(others) > 1 and rng.random() < p_pair:
            n_prompt = 2 if p_two > 0 and len(others) > 2 and rng.random() < p_two else 1
            prompt = []
            while len(prompt) < n_prompt:
                a = others[rng.randrange(len(others))]
                if a is not d and all(a is not q for q in prompt):
                    prompt.append(a)
            text, speech = [], []
            for a in prompt:
                text += a["text_ids"] + space
                speech += a["speech"]
            noisy = p_noisy > 0 and rng.random() < p_noisy
            if noisy:
                rate = rng.uniform(*noise)
                speech = [rng.randrange(codebook_size) if rng.random() < rate else s for s in speech]
            item = {"id": "+".join([a["id"] for a in prompt] + [d["id"]]), "voice": d["voice"],
                    "text_ids": text + d["text_ids"], "speech": speech + d["speech"]}
            if noisy:
                item["n_masked"] = len(speech)
            d = item
        out.append(d)
    return out


def make_example(d: dict, tokenizer: CharTokenizer, cfg: LMConfig, rng: random.Random, p_streaming: float,
                 p_tag: float) -> tuple[list, list]:
    """One training sequence: speaker tag (maybe), layout (maybe streaming)."""
    text = d["text_ids"]
    if d["voice"] in tokenizer.speakers and rng.random() < p_tag:
        text = [tokenizer.speaker_id(d["voice"])] + text
    streaming = use_streaming(len(text), len(d["speech"]), rng, p_streaming, n=cfg.mix_n, m=cfg.mix_m)
    inputs, targets = build_sequence(text, d["speech"], streaming, cfg.mix_n, cfg.mix_m)
    masked = d.get("n_masked", 0)  # a noisy prompt: its speech tokens are inputs, not targets
    if masked:
        seen = 0
        for i, t in enumerate(targets):
            if t is not None and t[0] == "speech":
                if seen < masked:
                    targets[i] = None
                seen += 1
    return inputs, targets


make_batches = length_batches  # batches of at most ``batch_tokens`` padded positions


def lr_at(step: int, tc: TrainConfig, elapsed_s: float = 0.0) -> float:
    """Warm-up + cosine (:func:`minicosy.training.warmup_cosine`) with this trainer's budgets."""
    return warmup_cosine(step, tc.lr, tc.warmup, tc.max_steps, tc.max_minutes, elapsed_s)


def fixed_examples(data: list[dict], tokenizer, cfg: LMConfig, tc: TrainConfig) -> list[tuple[list, list]]:
    """Validation examples with pairs, layouts and tags drawn once (seed 0): comparable across steps."""
    rng = random.Random(0)
    return [make_example(d, tokenizer, cfg, rng, tc.p_streaming, tc.p_speaker_tag)
            for d in pair_examples(data, tokenizer, rng, tc.p_pair, *_robust(tc, cfg))]


def _robust(tc: TrainConfig, cfg: LMConfig) -> tuple:
    """The robust-pair arguments of :func:`pair_examples` from the train config."""
    return tc.p_two_prompts, tc.p_noisy_prompt, tuple(tc.prompt_noise), cfg.codebook_size


def valid_key(tc: TrainConfig) -> str:
    """What the validation set depends on: a resumed run whose key differs restarts its best-so-far."""
    key = f"n={tc.n_valid},seed={tc.seed},pairs={tc.p_pair}"
    if tc.p_two_prompts or tc.p_noisy_prompt:  # runs before robust pairs existed keep their key
        key += f",two={tc.p_two_prompts},noisy={tc.p_noisy_prompt},noise={tuple(tc.prompt_noise)}"
    return key


@torch.no_grad()
def validate(model: TextSpeechLM, examples: list, batch_tokens: int) -> dict:
    """Token-weighted valid loss and top-1 accuracy over ``examples``."""
    was = model.training
    model.eval()
    tot_loss = tot_acc = tot_n = 0.0
    for b in make_batches([len(e[0]) for e in examples], batch_tokens, 0):
        out = model.loss(to_tensors([examples[i] for i in b], model.cfg.codebook_size))
        tot_loss += out["loss"].item() * out["n"]
        tot_acc += out["acc"].item() * out["n"]
        tot_n += out["n"]
    model.train(was)
    return {"valid_loss": tot_loss / max(1, tot_n), "valid_acc": tot_acc / max(1, tot_n)}


@torch.no_grad()
def fp16_safe(model: TextSpeechLM, examples: list, batch_tokens: int) -> bool:
    """True if rounding the weights to fp16 leaves the teacher-forced argmax tokens unchanged."""
    half = copy.deepcopy(model).eval()
    for p in half.parameters():
        p.copy_(p.half().float())
    model = copy.deepcopy(model).eval()
    for b in make_batches([len(e[0]) for e in examples], batch_tokens, 0)[:4]:
        batch = to_tensors([examples[i] for i in b], model.cfg.codebook_size)
        a = model(batch["kinds"].to(model.device), batch["ids"].to(model.device)).argmax(-1)
        h = half(batch["kinds"].to(model.device), batch["ids"].to(model.device)).argmax(-1)
        mask = batch["targets"].to(model.device) >= 0
        if not torch.equal(a[mask], h[mask]):
            return False
    return True


def lm_optimizer(model: TextSpeechLM, tc: TrainConfig) -> torch.optim.AdamW:
    """AdamW, weight decay on matrices only (not on embeddings, norms and biases)  [2]."""
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 or "embed" in n]
    return torch.optim.AdamW([{"params": decay, "weight_decay": tc.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=tc.lr, betas=(0.9, 0.95))


def load_lm_corpus(corpus, tokens: dict, cfg: LMConfig, tc: TrainConfig):
    """``(tokenizer, voices, train, valid examples)`` with the checks a run needs before it starts.

    Raises:
        ValueError: no train or valid utterance has speech tokens, or a token does not fit the codebook.
    """
    voices = sorted({u.voice for u in read_manifest(corpus, split="train")})
    tokenizer = CharTokenizer(voices, max_speakers=cfg.text_vocab_size - CharTokenizer(max_speakers=0).vocab_size)
    train, valid = load_lm_data(corpus, "train", tokens, tokenizer), load_lm_data(corpus, "valid", tokens, tokenizer)
    if not train or not valid:
        raise ValueError(f"corpus {corpus}: no train or no valid utterances with speech tokens; build the token "
                         f"cache with `minicosy data tokens --corpus {corpus}`.")
    top = max(max(d["speech"]) for d in train + valid)
    if top >= cfg.codebook_size:
        raise ValueError(f"speech token {top} does not fit codebook_size={cfg.codebook_size}; set it from the "
                         "speech tokenizer that made the cache.")
    valid_ex = fixed_examples(random.Random(tc.seed).sample(valid, min(tc.n_valid, len(valid))), tokenizer, cfg, tc)
    return tokenizer, voices, train, valid_ex


def train_lm(cfg: LMConfig, tc: TrainConfig, corpus, run_dir, device=None, resume: bool = False,
             export: str | Path | None = None, tokens: dict | None = None, progress: bool = True,
             log=print, init: str | Path | None = None) -> TextSpeechLM:
    """Train on the ``train`` split of ``corpus``, validate on ``valid``; returns the final model.

    The loop (budgets, resume, devices, DDP) is :class:`minicosy.training.Loop`; here are the data
    (examples redrawn every epoch), the loss (:meth:`TextSpeechLM.loss`) and the best-valid export.

    Args:
        tokens: ``{utt id: LongTensor}``; default :func:`load_token_cache` of the corpus.
        export: stem of the exported best-valid model (``lm.safetensors`` + ``lm.json``).
        init: an exported LM of the same config and text tokenizer (speaker tags included) to start from — a warm
            start (:func:`minicosy.training.init_from`): e.g. a size probe continued with a longer schedule.
    """
    loop = Loop(LoopConfig.of(tc, device=device, progress=progress, desc="lm"), run_dir, log)
    if tokens is None:
        from minicosy.speech_tokenizer.corpus_tokens import load_token_cache
        tokens = load_token_cache(corpus)
    tokenizer, voices, train, valid_ex = load_lm_corpus(corpus, tokens, cfg, tc)
    loop.log(f"train: {len(train)} utts, {sum(len(d['speech']) for d in train)} speech tokens, {len(voices)} voices; "
             f"valid: {len(valid_ex)} utts")
    model = TextSpeechLM(cfg).to(loop.device)
    loop.log(f"model: {model.num_parameters() / 1e6:.2f} M parameters, device {loop.device}")
    warm = None
    if init is not None:
        def same_text_units(meta: dict) -> None:
            if meta.get("text_tokenizer") != tokenizer.to_dict():
                raise ValueError(f"--init {init} was trained with other text units or speaker tags than this corpus "
                                 "gives: a warm start needs the same voices (the tags are the voices' ids).")
        warm = init_from(model, init, check=same_text_units)
        loop.log(f"warm start from {init} ({warm['steps']} steps, {warm['minutes']} min)")

    def batches(epoch: int) -> list:
        rng = random.Random(tc.seed * 100003 + epoch)  # layouts and tags of this epoch
        examples = [make_example(d, tokenizer, cfg, rng, tc.p_streaming, tc.p_speaker_tag)
                    for d in pair_examples(train, tokenizer, rng, tc.p_pair, *_robust(tc, cfg))]
        return [[examples[i] for i in b]
                for b in make_batches([len(e[0]) for e in examples], tc.batch_tokens, tc.seed * 1000 + epoch)]

    def evaluate(state: dict) -> dict:
        row = {"step": state["step"], **validate(model, valid_ex, tc.batch_tokens),
               "minutes": round(state["elapsed"] / 60, 2)}
        if state["best"] is None or row["valid_loss"] < state["best"]["valid_loss"]:
            state["best"] = row
            if export is not None:
                dtype = torch.float16 if fp16_safe(model, valid_ex, tc.batch_tokens) else torch.float32
                model.save_pretrained(export, text_tokenizer=tokenizer.to_dict(), dtype=dtype, extra={"trained": {
                    "steps": state["step"], "minutes": row["minutes"], "device": str(loop.device),
                    "train_utterances": len(train), "train_voices": voices, "best_valid": row,
                    "train_config": asdict(tc), "history": state["history"] + [row],
                    **({"init": state["init"]} if state.get("init") else {})}})
        return row

    def on_resume(saved: dict) -> None:
        check_config(saved, cfg, LMConfig, loop.ckpt)
        # checkpoints written before ICL pairs existed validated on single utterances
        key = saved["state"].get("valid_key", valid_key(TrainConfig(n_valid=tc.n_valid, seed=tc.seed, p_pair=0.0,
                                                                    p_two_prompts=0.0, p_noisy_prompt=0.0)))
        if key != valid_key(tc):  # e.g. resumed with --p-pair: the valid set changed
            loop.log(f"validation set changed ({key} → {valid_key(tc)}): the best-so-far restarts")
            saved["state"].update(best=None, valid_key=valid_key(tc))

    opt = lm_optimizer(model, tc)
    state = loop.fit({"model": model}, {"opt": opt}, lambda batch, _: model.loss(batch), batches=batches,
                     collate=partial(to_tensors, codebook_size=cfg.codebook_size), eval_fn=evaluate,
                     lr_fn=lambda step, elapsed: lr_at(step, tc, elapsed),
                     state={"best": None, "valid_key": valid_key(tc), "init": warm}, resume=resume, on_resume=on_resume,
                     extra={"config": cfg.to_dict(), "train_config": asdict(tc), "text_tokenizer": tokenizer.to_dict()})
    model.eval()
    model.meta = {"text_tokenizer": tokenizer.to_dict(), "trained": {"steps": state["step"], "best": state["best"]}}
    return model


# ----------------------------------------------------------------------------- CLI


def _train_cmd(args) -> int:
    from minicosy.speech_tokenizer.model import SpeechTokenizer

    torch.set_num_threads(args.threads)
    if args.preset != "tiny":
        raise ValueError("only --preset tiny trains here: the paper preset (Qwen2.5-0.5B, BPE text) is built and "
                         "costed (benchmarks/lm.py) and loads real weights with TextSpeechLM(..., init_from=dir).")
    cfg = LMConfig.tiny().with_overrides(args.set)
    cfg.codebook_size = SpeechTokenizer.from_pretrained(args.tokenizer, device="cpu").codebook_size
    tc = TrainConfig()
    for k in ("max_steps", "max_minutes", "batch_tokens", "lr", "seed", "eval_every", "p_pair", "p_two_prompts",
              "p_noisy_prompt"):
        if getattr(args, k) is not None:
            setattr(tc, k, getattr(args, k))
    apply_loop_args(args, tc)
    export = args.export or (REPO_ROOT / "data" / "pretrained" / args.preset / "lm")
    out = args.out or (REPO_ROOT / "runs" / f"lm_{args.preset}")
    tokens = None
    if args.tokenizer is not None:
        from minicosy.speech_tokenizer.corpus_tokens import load_token_cache
        tokens = load_token_cache(args.corpus, args.tokenizer)
    train_lm(cfg, tc, args.corpus, out, device=args.device, resume=args.resume, export=export, tokens=tokens,
             progress=not args.no_progress, init=args.init)
    return 0


def register_cli(groups) -> None:
    p = groups["train"].add_parser("lm", help="train the text-speech LM (Qwen2 architecture) on cached speech tokens")
    p.add_argument("--preset", choices=["tiny", "paper"], default="tiny")
    p.add_argument("--corpus", default=str(DEFAULT_CORPUS_DIR), help="corpus folder or manifest.jsonl "
                   "(needs `minicosy data tokens` first)")
    p.add_argument("--out", default=None, help="run folder for checkpoints (default runs/lm_<preset>)")
    p.add_argument("--export", default=None, help="stem of the exported best-valid model "
                   "(default data/pretrained/<preset>/lm)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/ckpt.pt")
    p.add_argument("--init", default=None, metavar="STEM",
                   help="warm start from an exported LM of the same config and voices (a new schedule)")
    p.add_argument("--tokenizer", default=None, help="speech tokenizer stem (default: the committed tiny FSQ)")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--batch-tokens", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--p-pair", type=float, default=None,
                   help=f"share of ICL-shaped examples (two utterances of one voice; default {TrainConfig.p_pair})")
    p.add_argument("--p-two-prompts", type=float, default=None,
                   help=f"share of the pairs whose prompt is two utterances (default {TrainConfig.p_two_prompts})")
    p.add_argument("--p-noisy-prompt", type=float, default=None,
                   help=f"share of the pairs whose prompt tokens are partly random codes, with no loss on them "
                        f"(default {TrainConfig.p_noisy_prompt}; 0 and --p-two-prompts 0 = plain pairs)")
    p.add_argument("--seed", type=int, default=None)
    add_set_arg(p, "d_model=384 n_layers=6 d_ff=1536")
    add_loop_args(p, TrainConfig.precision)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the CPU is shared)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_train_cmd)
