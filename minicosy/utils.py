"""Small helpers shared by every stage: device choice, seeding, paths, checkpoint files.

The checkpoint helpers (:func:`checkpoint_stem`, :func:`write_checkpoint`, :func:`read_checkpoint`,
:func:`check_state_matches`) are the file layer under :class:`minicosy.checkpoint.CheckpointMixin`.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

#: Repository root (the folder holding ``minicosy/``, ``data/``, ``notebooks/``).
REPO_ROOT = Path(__file__).resolve().parent.parent
#: Where built corpora go by default (rebuildable, never committed).
DEFAULT_CORPUS_DIR = REPO_ROOT / "data" / "corpus"
#: The small committed slice used by tests and notebooks.
FIXTURES_DIR = REPO_ROOT / "data" / "fixtures"
#: The committed checkpoint folder (the tiny preset): ``<stage>.json`` + ``<stage>.safetensors`` for the
#: five stages and ``text_tokenizer.json`` (the contract: :mod:`minicosy.checkpoint`). Every
#: ``from_pretrained()`` without a path reads from here.
DEFAULT_CHECKPOINT = REPO_ROOT / "data" / "pretrained" / "tiny"


def pick_device(requested: str | torch.device | None = None) -> torch.device:
    """Choose the torch device.

    Args:
        requested: ``None`` or ``"auto"`` → CUDA if available, else CPU. ``"cpu"``,
            ``"cuda"``, ``"cuda:1"`` or a ``torch.device`` are honoured if they exist.
            ``MINICOSY_DEVICE`` in the environment overrides ``None``.

    Raises:
        ValueError: CUDA was asked for on a machine without a usable CUDA device.
    """
    if requested is None:
        requested = os.environ.get("MINICOSY_DEVICE", "auto")
    if isinstance(requested, torch.device):
        requested = str(requested)
    requested = requested.strip().lower()
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {requested!r} was requested but this machine has no usable CUDA device "
                "(torch.cuda.is_available() is False). Use device='cpu' or 'auto'."
            )
        dev = torch.device(requested)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {requested!r} does not exist: only {torch.cuda.device_count()} CUDA "
                "device(s) are visible."
            )
        return dev
    if requested == "cpu":
        return torch.device("cpu")
    raise ValueError(f"unknown device {requested!r}: use 'auto', 'cpu' or 'cuda[:N]'.")


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device) for repeatable runs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def machine_info() -> dict:
    """What a benchmark ran on: CPU count, torch version and threads, the GPU if any."""
    import platform

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def checkpoint_stem(path: str | Path, name: str) -> Path:
    """Where a ``<stem>.safetensors`` + ``<stem>.json`` checkpoint lives: ``<folder>/<name>`` for a
    folder, else ``path`` without a ``.json`` / ``.safetensors`` suffix."""
    p = Path(path)
    if p.is_dir():
        return p / name
    return p.with_suffix("") if p.suffix in (".json", ".safetensors") else p


def write_checkpoint(stem: Path, state: dict, meta: dict) -> Path:
    """Write ``<stem>.safetensors`` (``state``, tensors as they are) and ``<stem>.json`` (``meta``)."""
    import json

    from safetensors.torch import save_file

    stem.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(stem.with_suffix(".safetensors")))
    stem.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return stem


def read_checkpoint(stem: Path, what: str, train_hint: str) -> tuple[dict, dict]:
    """``(meta, state)`` of a :func:`write_checkpoint` pair.

    Raises:
        ValueError: a file is missing (``"<what> file missing: <path>. <train_hint>"``), or truncated /
            not JSON / not safetensors.
    """
    import json

    from safetensors.torch import load_file

    stem = Path(stem)
    for p in (stem.with_suffix(".json"), stem.with_suffix(".safetensors")):
        if not p.is_file():
            raise ValueError(f"{what} file missing: {p}. {train_hint}".rstrip())
    try:
        meta = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{stem}.json is not valid JSON ({exc}): truncated or not a {what}; re-export it.") from exc
    try:
        state = load_file(str(stem.with_suffix(".safetensors")))
    except Exception as exc:  # safetensors raises its own error type for a damaged file
        raise ValueError(f"cannot read {stem}.safetensors ({type(exc).__name__}: {exc}): truncated or not a "
                         f"{what}; re-export it.") from exc
    return meta, state


def check_state_matches(expected: dict, state: dict, where) -> None:
    """Raise a ``ValueError`` naming the tensors in which ``state`` and a model's ``expected`` state
    dict differ (missing, unexpected, or of another shape)."""
    bad = sorted(set(expected) ^ set(state)) + sorted(k for k in state if k in expected
                                                      and state[k].shape != expected[k].shape)
    if bad:
        raise ValueError(f"checkpoint {where} does not match its config (mismatched tensors: {bad[:5]}). "
                         "Re-export both files together.")


def emit_json(result: dict, out: str | Path | None = None) -> dict:
    """Print a benchmark's result as JSON and, if ``out`` is given, also write it there."""
    import json

    text = json.dumps(result, indent=1)
    print(text)
    if out:
        Path(out).write_text(text + "\n", encoding="utf-8")
    return result


def slider_player(play, **sliders) -> None:
    """Notebook helper: ``ipywidgets`` sliders above an output box; moving one re-runs ``play`` into it.

    ``play(**{name: slider.value})`` runs once with the sliders' starting values as ordinary cell
    output below the sliders, so an unattended run (nbval, ``make notebooks``) never writes into the
    widget; later runs replace the box's content.
    """
    import ipywidgets as widgets
    from IPython.display import display

    box = widgets.Output()

    def rerun(_):
        with box:
            box.clear_output(wait=True)
            play(**{name: s.value for name, s in sliders.items()})

    for s in sliders.values():
        s.observe(rerun, names="value")
    display(widgets.VBox([*sliders.values(), box]))
    play(**{name: s.value for name, s in sliders.items()})
