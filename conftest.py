"""pytest configuration shared by the unit tests and the notebooks (nbval).

* Notebooks run under ``--nbval-lax --nbval-current-env`` (see pyproject.toml): only cells marked
  ``# NBVAL_CHECK_OUTPUT`` have their outputs compared; every cell must run without error.
* text/html (audio players embed the WAV as base64), JavaScript, widget views and stderr are never
  compared: they change between runs or machines without the notebook being wrong.
* ``gpu`` tests are skipped where no CUDA device exists.
* ``engines`` tests need the Debian TTS engines; they are skipped if the engines are missing, except
  under CI (``CI=true``), where a missing engine is an install bug and must fail loudly.
"""

import os
import shutil

import pytest

ENGINE_BINARIES = ("flite", "text2wave", "espeak-ng", "mbrola", "RHVoice-test", "pico2wave", "sox")


def pytest_collectstart(collector):
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += (
            "text/html",
            "application/javascript",
            "application/vnd.jupyter.widget-view+json",
            "stderr",
        )


def pytest_collection_modifyitems(config, items):
    import torch

    has_cuda = torch.cuda.is_available()
    missing = [b for b in ENGINE_BINARIES if shutil.which(b) is None]
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    skip_gpu = pytest.mark.skip(reason="no CUDA device on this machine")
    skip_engines = pytest.mark.skip(
        reason=f"TTS engines missing ({', '.join(missing)}): run `make debian` or scripts/install_debian.sh"
    )
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
        if "engines" in item.keywords and missing and not in_ci:
            item.add_marker(skip_engines)
