"""Small helpers shared by every stage: device choice, seeding, paths."""

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
