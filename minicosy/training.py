"""The one training loop every trainer uses, and the pieces they share.

A trainer is data + loss + export (PyTorch Lightning's ``fit``, HF ``Trainer``, nanoGPT's single
``train.py`` [2, 3]): :class:`Loop` owns everything else, once — the run folder, the checkpoint
(models, optimisers, step, epoch, position in the epoch, elapsed time, RNG states, best-so-far),
``--resume``, the step and wall-clock budgets (elapsed time accumulates across resumes), the
learning-rate hook, evaluation / checkpoint / log intervals, ``log.jsonl``, tqdm, the device,
bf16 / fp16 autocast (fp16 with a ``GradScaler``), gradient accumulation, gradient clipping, and
multi-process data parallelism under ``torchrun`` (``DistributedDataParallel`` [4]: gloo on CPU,
nccl on CUDA; no scheduler of our own).

How the batches are shared. A trainer gives ``batches(epoch)``: the epoch's list of *global*
batches (the length-bucketed lists of :func:`length_batches`). One optimiser step consumes
``grad_accum × world`` consecutive batches: rank ``r`` takes micro-batch ``j`` from position
``k·A·W + j·W + r``. Each micro-batch's loss is weighted by its size ``n`` (tokens, frames) and the
gradients are divided by the global ``Σ n``, so 2 processes × 1 batch, or 1 process accumulating
2 batches, give the same update as one batch holding both (up to float rounding). With
``A·W = 1`` nothing is weighted: the old single-process loop, bit for bit.

The other shared pieces: length-bucketed batches (sort by length, fill a budget of padded
positions, shuffle the batches with a seed, so a run can resume mid-epoch and get the same
batches), the warm-up + cosine learning rate (linear warm-up, then a cosine to 10 % of the peak
that follows whichever budget — steps or wall-clock minutes — runs out first, so a time-capped run
still anneals), and per-utterance feature caches.

References:
    [1] Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", arXiv 1608.03983.
    [2] PyTorch Lightning, ``Trainer.fit`` and manual optimisation (``automatic_optimization = False``).
    [3] Karpathy, nanoGPT ``train.py`` (gradient accumulation under DDP with ``no_sync``).
    [4] Li et al., "PyTorch Distributed: Experiences on Accelerating Data Parallel Training", VLDB 2020.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def length_batches(lengths: list[int], budget: int, seed: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, each at most ``budget`` padded positions.

    Args:
        lengths: one length per example (frames, tokens, ...).
        budget: ``max(length in batch) × batch size`` stays ≤ ``budget`` (a longer example alone
            makes a batch of one).
        seed: ties and the batch order are shuffled with it (deterministic).
    """
    rng = random.Random(seed)
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random()))
    batches, cur, longest = [], [], 0
    for i in order:
        if cur and max(longest, lengths[i]) * (len(cur) + 1) > budget:
            batches.append(cur)
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, lengths[i])
    if cur:
        batches.append(cur)
    rng.shuffle(batches)
    return batches


def warmup_cosine(step: int, lr: float, warmup: int, max_steps: int, max_minutes: float,
                  elapsed_s: float = 0.0, floor: float = 0.1) -> float:
    """Learning rate at ``step``: linear warm-up over ``warmup`` steps, then a cosine decay.

    The decay's progress ``p`` is the larger of the step fraction and the time fraction, so the
    rate reaches ``floor · lr`` when either budget is spent.
    """
    if step < warmup:
        return lr * (step + 1) / warmup
    p = min(1.0, max((step - warmup) / max(1, max_steps - warmup), elapsed_s / (60 * max_minutes)))
    # lr_t = lr_min + (lr − lr_min)·½(1 + cos πp),  lr_min = floor·lr   [SGDR Eq. 5]
    return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))


def init_from(model, init, check: Callable | None = None, may_differ: tuple = ()) -> dict:
    """Warm start ``model`` from an exported checkpoint of the same stage and config (``--init STEM``).

    Every parameter and buffer is copied (a tokenizer's input normalisation too); the step count, the schedule and
    the optimiser start afresh — a new run, on new data or with a new budget, from trained weights. ``check(meta)``
    may refuse the export on other grounds (the LM: another text tokenizer) by raising ``ValueError``.
    ``may_differ`` names config fields that change no parameter shape and may differ (the flow's
    ``prompt_lookahead``: a mask, not a weight); the run keeps its own value.

    Returns:
        ``{"from", "steps", "train_utterances", "minutes"}`` of the export, for the new export's ``trained.init``.

    Raises:
        ValueError: the export is missing, of another stage, or has another config than ``model``.
    """
    src = type(model).from_pretrained(init, device="cpu")
    def shape_fields(cfg) -> dict:
        return {k: v for k, v in cfg.to_dict().items() if k not in may_differ}

    if shape_fields(src.cfg) != shape_fields(model.cfg):
        raise ValueError(f"--init {init} has another config ({src.cfg.to_dict()}) than this run "
                         f"({model.cfg.to_dict()}): a warm start needs the same architecture.")
    meta = src.meta  # from_pretrained sets it
    if check is not None:
        check(meta)
    model.checkpoint_module().load_state_dict(src.checkpoint_module().state_dict())
    trained = meta.get("trained") or {}
    return {"from": str(init), "steps": trained.get("steps"), "train_utterances": trained.get("train_utterances"),
            "minutes": trained.get("minutes")}


def check_config(saved: dict, cfg, config_cls, where, key: str = "config") -> None:
    """Refuse to resume a checkpoint trained with another model config.

    The saved config is read back through ``config_cls.from_saved`` (a field added later takes the value
    the run was trained with) and must equal ``cfg``.

    Raises:
        ValueError: the checkpoint was trained with another config.
    """
    if config_cls.from_saved(saved[key]) != cfg:
        raise ValueError(f"{where} was trained with another config ({saved[key]}); use a new --out folder "
                         "or drop --resume.")


def cached_features(rows: list, root, cache_dir, name: str, featurize: Callable,
                    key_fields: tuple = ("id", "path", "duration")) -> list[dict]:
    """Per-utterance features of one split, computed once and cached as a ``.pt`` file.

    Args:
        rows: the split's manifest rows (``Utterance``s, with ``audio_path(root)``).
        root: the corpus folder the rows' paths are relative to.
        cache_dir: a folder for the cache; ``"auto"``: ``<root>/cache`` except for the committed fixtures
            (they are small and read-only); ``None``: no cache.
        name: the cache file's prefix, e.g. ``"flowmel24k_train"``; a hash of ``key_fields`` of every
            row completes the name, so a changed split never reads a stale cache.
        featurize: ``(row, root) → dict`` (or ``None`` to drop the row).
    """
    from minicosy.utils import FIXTURES_DIR

    if cache_dir == "auto":
        cache_dir = None if Path(root).resolve() == FIXTURES_DIR.resolve() else Path(root) / "cache"
    key = hashlib.sha1("\n".join("|".join(str(getattr(u, f)) for f in key_fields) for u in rows).encode())
    cache = Path(cache_dir) / f"{name}_{key.hexdigest()[:16]}.pt" if cache_dir else None
    if cache is not None and cache.is_file():
        return torch.load(cache)
    out = [d for d in (featurize(u, root) for u in rows) if d is not None]
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")  # torchrun: every rank may write it at once
        torch.save(out, tmp)
        tmp.replace(cache)
    return out


# ----------------------------------------------------------------------------- the loop


@dataclass
class LoopConfig:
    """What :class:`Loop` needs to know; :meth:`of` copies the fields a trainer's config shares."""

    max_steps: int = 1000  # optimiser steps; 0: no step limit
    max_minutes: float = 60.0  # wall clock, summed over resumes
    eval_every: int = 0  # steps between evaluations (0: only at the end)
    eval_every_minutes: float = 0.0  # or minutes between evaluations (0: off)
    eval_at_start: bool = False  # a first evaluation at step 0 (the vocoder's curve starts there)
    ckpt_every: int = 100  # steps between checkpoints (0: only after evaluations and at the end)
    log_every: int = 50  # steps between training-loss rows in log.jsonl
    grad_accum: int = 1  # micro-batches per optimiser step
    grad_clip: float = 0.0  # max global gradient norm (0: no clipping)
    precision: str = "fp32"  # auto (bf16 on CUDA, else fp32), fp32, bf16 (CPU or CUDA), fp16 (CUDA)
    device: str | None = None  # see minicosy.utils.pick_device; under torchrun "cuda" means cuda:LOCAL_RANK
    seed: int = 0
    workers: int = 0  # DataLoader worker processes that collate batches
    progress: bool = True  # tqdm bar (only on rank 0 and a terminal)
    desc: str = "train"

    @classmethod
    def of(cls, tc, **overrides) -> LoopConfig:
        """The fields of ``tc`` (a trainer's dataclass config) that share a name with these, then ``overrides``."""
        names = {f.name for f in fields(cls)}
        return cls(**{**{k: v for k, v in vars(tc).items() if k in names}, **overrides})


def add_loop_args(p, precision_default: str = "auto") -> None:
    """The loop's command-line flags, the same on every ``minicosy train <stage>``."""
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or auto (default: $MINICOSY_DEVICE, else "
                   "auto); under torchrun each process takes cuda:LOCAL_RANK")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help=f"autocast: auto = bf16 on CUDA, fp32 on CPU; fp16 needs CUDA (default {precision_default})")
    p.add_argument("--grad-accum", type=int, default=None, help="micro-batches per optimiser step (default 1)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader worker processes (default 0)")


def add_set_arg(p, example: str) -> None:
    """``--set FIELD=VALUE ...``: override fields of the stage's preset config (:meth:`StageConfig.with_overrides`),
    e.g. a size probe; the run's checkpoint saves the resulting config, so ``--resume`` needs the same flags."""
    p.add_argument("--set", nargs="+", default=(), metavar="FIELD=VALUE",
                   help=f"override config fields of the preset, e.g. --set {example}")


def apply_loop_args(args, tc) -> None:
    """Copy the :func:`add_loop_args` flags that were given onto the trainer's config ``tc``."""
    for k in ("precision", "grad_accum", "workers"):
        if getattr(args, k, None) is not None:
            setattr(tc, k, getattr(args, k))


def resolve_precision(precision: str, device):
    """The autocast dtype of ``precision`` on ``device`` (``None``: fp32, no autocast).

    Raises:
        ValueError: an unknown precision, fp16 without CUDA, or bf16 on a GPU without bf16.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}.")
    cuda = device.type == "cuda"
    if precision == "auto":
        precision = "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "fp16" and not cuda:
        raise ValueError("--precision fp16 needs a CUDA device (fp16 autocast with a GradScaler); on CPU use bf16.")
    if precision == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise ValueError(f"this GPU ({torch.cuda.get_device_name(device)}) has no bf16; use --precision fp16.")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _identity(x):
    return x


class _StepModule(nn.Module):
    """``step_fn`` as the ``forward`` of a module holding the models, so DDP sees every use of them."""

    def __init__(self, models: dict, step_fn: Callable, loop: Loop):
        super().__init__()
        self.models = nn.ModuleDict(models)
        self.step_fn, self.loop = step_fn, [loop]  # a list: not a submodule

    def forward(self, batch):
        return self.step_fn(batch, self.loop[0])


class Loop:
    """One training run: ``loop = Loop(cfg, run_dir)``; build models on ``loop.device``; ``loop.fit(...)``.

    Under ``torchrun`` (``WORLD_SIZE > 1``) the constructor joins the process group (gloo on CPU,
    nccl on CUDA); only rank 0 logs, evaluates and writes files. Attributes a trainer reads:
    ``device``, ``rank``, ``world``, ``is_main``, ``log``, ``state`` (after :meth:`fit` starts),
    ``gen`` (a ``torch.Generator``) and ``rng`` (a ``random.Random``) — per-rank, seeded with
    ``seed + step`` on rank 0, saved in the checkpoint so a resumed run draws what it would have drawn.

    Raises:
        ValueError: a bad device, precision, ``grad_accum`` or ``workers``.
    """

    def __init__(self, cfg: LoopConfig, run_dir, log=print, ckpt_name: str = "ckpt.pt"):
        from minicosy.utils import pick_device, seed_everything

        self.cfg = cfg
        self.rank, self.world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
        device = pick_device(cfg.device)
        if device.type == "cuda" and self.world > 1:  # torchrun: one GPU per process
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        self.device, self.amp_dtype = device, resolve_precision(cfg.precision, device)
        if cfg.grad_accum < 1 or cfg.workers < 0:
            raise ValueError(f"grad_accum must be ≥ 1 and workers ≥ 0 (got {cfg.grad_accum}, {cfg.workers}).")
        self._own_group = self.world > 1 and not dist.is_initialized()
        if self._own_group:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        self.is_main = self.rank == 0
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.ckpt = self.run_dir / ckpt_name
        self.bar_on = cfg.progress and self.is_main and sys.stderr.isatty()
        if not self.is_main:
            log = _identity
        elif log is print and cfg.progress:  # print above the progress bar, not through it
            from tqdm import tqdm

            def log(msg):
                tqdm.write(msg, file=sys.stderr)

        self.log = log
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.gen, self.rng = torch.Generator(), random.Random()
        self.state: dict = {}
        seed_everything(cfg.seed)

    def autocast(self):
        """The run's autocast context (a no-op in fp32); evaluation code may use it too."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # --------------------------------------------------------------- checkpoint

    def _rng_state(self) -> dict:
        return {"gen": self.gen.get_state(), "rng": self.rng.getstate(), "torch": torch.get_rng_state(),
                "python": random.getstate(), "numpy": np.random.get_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}

    def _seed_rngs(self, saved: dict | None) -> None:
        if saved is None or self.rank != 0:  # a fresh run, an old checkpoint, or another rank: seed + step
            seed = self.cfg.seed + self.state["step"] + 1_000_003 * self.rank
            self.gen.manual_seed(seed)
            self.rng.seed(seed)
            return
        self.gen.set_state(saved["gen"].cpu())
        self.rng.setstate(saved["rng"])
        torch.set_rng_state(saved["torch"].cpu())
        random.setstate(saved["python"])
        np.random.set_state(saved["numpy"])
        if saved.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in saved["cuda"]])

    def save(self) -> None:
        """Write the checkpoint (rank 0; through a temporary file, so a kill never leaves half of one)."""
        if not self.is_main:
            return
        ck = {name: m.state_dict() for name, m in self.models.items()}
        ck.update({name: o.state_dict() for name, o in self.optimizers.items()})
        ck.update(state=self.state, rng=self._rng_state(), **self.extra)
        if self.scaler is not None:
            ck["scaler"] = self.scaler.state_dict()
        tmp = self.ckpt.with_name(self.ckpt.name + ".tmp")
        torch.save(ck, tmp)
        tmp.replace(self.ckpt)

    def _restore(self, on_resume: Callable | None) -> None:
        """Load the checkpoint if there is one; ``on_resume(saved)`` may refuse it or edit ``saved["state"]``."""
        if not self.ckpt.is_file():
            self._seed_rngs(None)
            return
        saved = torch.load(self.ckpt, map_location=self.device, weights_only=False)
        if on_resume is not None:
            on_resume(saved)
        for name, obj in {**self.models, **self.optimizers}.items():
            obj.load_state_dict(saved[name])
        state = dict(saved["state"])
        for old, new in (("elapsed_s", "elapsed"), ("curve", "history")):  # the vocoder's first checkpoints
            if old in state:
                state[new] = state.pop(old)
        self.state.update(state)
        if self.scaler is not None and "scaler" in saved:
            self.scaler.load_state_dict(saved["scaler"])
        self._seed_rngs(saved.get("rng"))
        self.log(f"resumed from {self.ckpt} at step {self.state['step']} ({self.state['elapsed'] / 60:.1f} min)")
        log = self.run_dir / "log.jsonl"
        if self.is_main and log.is_file():  # rows written after that checkpoint are written again
            rows = [r for r in log.read_text().splitlines() if r and json.loads(r).get("step", 0) <= self.state["step"]]
            log.write_text("".join(r + "\n" for r in rows))

    def append_log(self, row: dict) -> None:
        """One JSON row in ``<run_dir>/log.jsonl`` (rank 0)."""
        if self.is_main:
            with open(self.run_dir / "log.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")

    # --------------------------------------------------------------- data

    def _groups(self, batches: Callable | None, collate: Callable | None):
        """Yield each step's micro-batches of this rank (``grad_accum`` of them), epoch after epoch.

        ``state["epoch"]`` moves on only when the next step asks for a batch past the epoch's end,
        so a run stopped after an epoch's last batch resumes into the next epoch.
        """
        A, W = self.cfg.grad_accum, self.world
        collate = collate or _identity
        while True:
            if batches is None:  # the trainer draws its own batches (random sampling)
                yield [None] * A
                continue
            blist = batches(self.state["epoch"])
            n = len(blist) // (A * W) * (A * W)
            if n == 0:
                raise ValueError(f"an epoch holds {len(blist)} batches, fewer than grad_accum × processes = {A} × {W}: "
                                 "give more data, smaller batches, a lower --grad-accum or fewer processes.")
            mine = [blist[g + j * W + self.rank] for g in range(self.state["pos"], n, A * W) for j in range(A)]
            if self.cfg.workers > 0:
                mine = torch.utils.data.DataLoader(mine, batch_size=None, collate_fn=collate,
                                                   num_workers=self.cfg.workers)
            else:
                mine = map(collate, mine)
            group = []
            for batch in mine:
                group.append(batch)
                if len(group) == A:
                    yield group
                    group = []
            self.state.update(epoch=self.state["epoch"] + 1, pos=0)

    # --------------------------------------------------------------- one step

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()`` through the fp16 ``GradScaler`` when there is one (for manual steps too)."""
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def optimizer_step(self, opt, params=None, clip: float = 0.0) -> None:
        """For manual steps: unscale (fp16), clip ``params`` (default: the optimiser's) to ``clip``, step ``opt``."""
        self._apply([opt], params, clip, 1.0)

    def _apply(self, opts: list, params, clip: float, grad_scale: float) -> None:
        if self.scaler is not None:
            for opt in opts:
                self.scaler.unscale_(opt)
        params = [p for o in opts for g in o.param_groups for p in g["params"]] if params is None else list(params)
        if grad_scale != 1.0:
            for p in params:
                if p.grad is not None:
                    p.grad.mul_(grad_scale)
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip)
        for opt in opts:
            self.scaler.step(opt) if self.scaler is not None else opt.step()

    def _auto_step(self, module, group: list) -> dict:
        """Zero, forward + backward every micro-batch (DDP syncs on the last), weight, clip, step."""
        weighted = self.cfg.grad_accum * self.world > 1
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        tally, logs = torch.zeros(2, dtype=torch.float64, device=self.device), {}  # Σ loss·n, Σ n
        for j, batch in enumerate(group):
            last = j == len(group) - 1
            with module.no_sync() if self.world > 1 and not last else contextlib.nullcontext():
                with self.autocast():
                    out = module(batch)
                n = float(out.get("n", 1.0)) if weighted else 1.0
                loss = out["loss"].float()
                self.backward(loss * n if weighted else loss)
            tally += torch.tensor([loss.item() * n, n], dtype=torch.float64, device=self.device)
            logs = {k: float(v) for k, v in out.items() if k not in ("loss", "n")}  # simplification: the last one's
        if self.world > 1:
            dist.all_reduce(tally)
        # DDP averaged the ranks' Σ_j n_j·∇loss_j: × W / Σ n makes it the gradient of the global mean
        scale = self.world / float(tally[1]) if weighted else 1.0
        self._apply(list(self.optimizers.values()), None, self.cfg.grad_clip, scale)
        return {"loss": float(tally[0] / tally[1]), **logs}

    # --------------------------------------------------------------- fit

    def _wrap(self, step_fn: Callable, manual: bool):
        """The callable a step runs: ``step_fn`` itself, or inside DDP (one wrapper per model if manual)."""
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        if manual:
            if self.cfg.grad_accum > 1:
                raise ValueError("gradient accumulation needs the loop's own step; this trainer steps by hand.")
            self.wrapped = {k: DDP(m, device_ids=ids, find_unused_parameters=True) if self.world > 1 else m
                            for k, m in self.models.items()}
            return lambda batch: step_fn(batch, self)
        self.wrapped = self.models
        module = _StepModule(self.models, step_fn, self)
        return DDP(module, device_ids=ids, find_unused_parameters=True) if self.world > 1 else module

    def _set_lr(self, lr_fn: Callable | None) -> None:
        if lr_fn is None:
            return
        lr = lr_fn(self.state["step"], self.state["elapsed"])
        for name, opt in self.optimizers.items():
            for g in opt.param_groups:
                g["lr"] = lr[name] if isinstance(lr, dict) else lr

    def _evaluate(self, eval_fn: Callable | None, logs: dict) -> None:
        """Rank 0: ``eval_fn(state)`` → a row for ``state["history"]`` and log.jsonl; then a checkpoint."""
        if eval_fn is not None and self.is_main:
            row = eval_fn(self.state)
            for m in self.models.values():
                m.train()
            if row is not None:
                row = {"step": self.state["step"], **row}
                self.state["history"].append(row)
                self.append_log(row)
                self.log(f"step {self.state['step']} " + _fmt(logs) + " | " + _fmt(row, skip=("step",))
                         + f" ({self.state['elapsed'] / 60:.1f} min)")
        self.save()

    def _sync(self, t0: float) -> None:
        """Elapsed time (rank 0's under torchrun, so every rank stops, and schedules, at the same step)."""
        e = torch.tensor([time.time() - t0], dtype=torch.float64, device=self.device)
        if self.world > 1:
            dist.broadcast(e, 0)
        self.state["elapsed"] = float(e)

    def budget_left(self) -> bool:
        c, s = self.cfg, self.state
        return (c.max_steps <= 0 or s["step"] < c.max_steps) and s["elapsed"] <= 60 * c.max_minutes

    def fit(self, models: dict, optimizers: dict, step_fn: Callable, *, batches: Callable | None = None,
            collate: Callable | None = None, eval_fn: Callable | None = None, lr_fn: Callable | None = None,
            state: dict | None = None, extra: dict | None = None, resume: bool = False,
            on_resume: Callable | None = None, manual: bool = False) -> dict:
        """Train until a budget is spent; returns the final ``state``.

        Args:
            models: ``{name: module}``, saved in the checkpoint under ``name`` (e.g. ``{"model": lm}``).
            optimizers: ``{name: optimizer}``, saved likewise (e.g. ``{"opt": adamw}``).
            step_fn: ``(batch, loop) → {"loss": tensor, "n": size (optional), **scalars}``; the loop
                runs it under autocast and does zero-grad / backward / clip / step. With ``manual=True``
                it does them itself (:meth:`backward`, :meth:`optimizer_step`, models as ``loop.wrapped``)
                and returns scalars: the GAN's two optimisers.
            batches: ``epoch → [global batch, ...]`` (sharded by rank, resumed by position); ``None``:
                ``step_fn`` gets ``None`` and draws its own batch (with ``loop.gen`` / ``loop.rng``).
            collate: ``batch → model inputs``, run in the DataLoader workers when ``workers > 0``.
            eval_fn: ``state → row`` (or ``None``) on rank 0, every ``eval_every`` steps / minutes and at the end.
            lr_fn: ``(step, elapsed_s) → lr`` (or ``{optimizer name: lr}``), set before every step.
            state: the trainer's extra state entries with their starting values.
            extra: more entries of the checkpoint (configs, tokenizers, voices).
            resume: continue from ``run_dir/<ckpt_name>`` if it exists.
            on_resume: ``saved checkpoint → None``; raise ``ValueError`` to refuse it.
        """
        from tqdm import tqdm

        self.models, self.optimizers, self.extra = models, optimizers, extra or {}
        self.state = {"step": 0, "epoch": 0, "pos": 0, "elapsed": 0.0, "history": [], **(state or {})}
        if resume:
            self._restore(on_resume)
        else:
            self._seed_rngs(None)
        run = self._wrap(step_fn, manual)
        for m in models.values():
            m.train()
        t0, c = time.time() - self.state["elapsed"], self.cfg
        bar = tqdm(total=c.max_steps or None, initial=self.state["step"], disable=not self.bar_on, mininterval=5,
                   file=sys.stderr, dynamic_ncols=True, desc=c.desc)
        if c.eval_at_start and not self.state["history"]:
            self._evaluate(eval_fn, {})
        last_eval, logs, groups = self.state["elapsed"], {}, self._groups(batches, collate)
        while self.budget_left():
            group = next(groups)
            self._set_lr(lr_fn)
            logs = run(group[0]) if manual else self._auto_step(run, group)
            if self.scaler is not None:
                self.scaler.update()
            self.state.update(step=self.state["step"] + 1, pos=self.state["pos"] + c.grad_accum * self.world)
            self._sync(t0)
            step, minutes = self.state["step"], self.state["elapsed"] / 60
            bar.update(1)
            if step % max(1, c.log_every) == 0:
                lr = next(iter(optimizers.values())).param_groups[0]["lr"]
                self.append_log({"step": step, **logs, "lr": lr, "minutes": round(minutes, 3)})
                bar.set_postfix(_short(logs), refresh=False)
                if not self.bar_on:
                    self.log(f"step {step} " + _fmt(logs) + f" lr {lr:.2e} ({minutes:.1f} min)")
            if (c.eval_every and step % c.eval_every == 0) or (
                    c.eval_every_minutes and self.state["elapsed"] - last_eval >= 60 * c.eval_every_minutes):
                last_eval = self.state["elapsed"]
                self._evaluate(eval_fn, logs)
            elif c.ckpt_every and step % c.ckpt_every == 0:
                self.save()
        bar.close()
        if not self.state["history"] or self.state["history"][-1]["step"] != self.state["step"]:
            self._evaluate(eval_fn, logs)
        else:
            self.save()
        if self._own_group:
            dist.barrier()
            dist.destroy_process_group()
        return self.state


def _fmt(row: dict, skip=()) -> str:
    return " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items() if k not in skip)


def _short(logs: dict) -> dict:
    return {k: f"{v:.3f}" for k, v in list(logs.items())[:3] if isinstance(v, float)}
