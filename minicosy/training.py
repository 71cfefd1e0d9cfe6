"""Pieces every trainer shares: length-bucketed batches, the warm-up + cosine learning rate, feature caches.

The speech tokenizer, the LM and the flow all train on utterances of very different lengths on a
small CPU budget, so they batch the same way (sort by length, fill a budget of padded positions,
shuffle the batches with a seed, so a run can resume mid-epoch and get the same batches) and decay
their learning rate the same way (linear warm-up, then a cosine to 10 % of the peak that follows
whichever budget — steps or wall-clock minutes — runs out first, so a time-capped run still anneals).

References:
    [1] Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", arXiv 1608.03983.
"""

from __future__ import annotations

import hashlib
import math
import random
from pathlib import Path
from collections.abc import Callable


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


def resume_checkpoint(ckpt, model, opt, cfg, config_cls, device, log=print) -> dict | None:
    """Load ``model`` and ``opt`` from ``ckpt`` (written as ``{"model", "opt", "state", "config"}``).

    The saved config is read back through ``config_cls.from_dict`` (fields added later take their
    defaults) and must equal ``cfg``. Returns the saved training state, or ``None`` without a file.

    Raises:
        ValueError: the checkpoint was trained with another config.
    """
    import torch

    if not ckpt.is_file():
        return None
    saved = torch.load(ckpt, map_location=device, weights_only=False)
    if config_cls.from_dict(saved["config"]) != cfg:
        raise ValueError(f"{ckpt} was trained with another config ({saved['config']}); use a new --out folder.")
    model.load_state_dict(saved["model"])
    opt.load_state_dict(saved["opt"])
    log(f"resumed from {ckpt} at step {saved['state']['step']}")
    return saved["state"]


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
        import torch

        return torch.load(cache)
    out = [d for d in (featurize(u, root) for u in rows) if d is not None]
    if cache is not None:
        import torch

        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(out, cache)
    return out
