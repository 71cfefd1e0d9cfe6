"""Committed notebooks are executed, with outputs and execution counts, and import the package."""

from pathlib import Path

import nbformat
import pytest

from minicosy.utils import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert any(p.name.startswith("00_") for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_executed_and_committed_with_outputs(path: Path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "no code cells"
    missing = [i for i, c in enumerate(code) if c.execution_count is None]
    assert not missing, f"code cells without execution counts (not executed?): {missing}"
    counts = [c.execution_count for c in code]
    assert counts == sorted(counts), "cells were not run top to bottom"
    assert sum(bool(c.outputs) for c in code) >= len(code) // 3, "outputs were stripped"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    assert path.stat().st_size < 3_000_000, "keep notebooks small (short audio clips, PNG plots)"
    src = "\n".join(c.source for c in code)
    assert "from minicosy" in src and "import *" not in src
    assert "seed_everything" in src
    assert "NBVAL_CHECK_OUTPUT" in src or "assert " in src
