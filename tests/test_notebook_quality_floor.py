"""Notebook 07's quality floors stop a system that learned nothing.

Notebook 07 asserts three floors on what the trained system says (audible output, clones nearer their
own prompt voice than another, training voices read at a bounded WER). A floor that random weights
also pass proves nothing, so this test executes the notebook — as ``scripts/nbrun.py`` does, on a copy,
with the kernel in ``notebooks/`` — against a checkpoint whose LM, flow and speaker encoder are
random-init (:func:`minicosy.testing.write_untrained_checkpoint`), chosen through the notebook's
``MINICOSY_CHECKPOINT`` variable. It must fail, and fail *at a floor*: an ``AssertionError`` whose
message starts with "quality floor", not an error of any other kind (a crash, a refused input, a
format check) that would hide whether the floors work.
"""

from __future__ import annotations

import pytest

from minicosy.utils import REPO_ROOT

NOTEBOOK = REPO_ROOT / "notebooks" / "07_end_to_end.ipynb"


@pytest.mark.slow  # random-init stages synthesise long, quiet babble: about 1–2 min on 2 cores
def test_notebook_07_fails_a_quality_floor_on_random_weights(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from nbclient.exceptions import CellExecutionError

    from minicosy.testing import write_untrained_checkpoint

    ckpt = write_untrained_checkpoint(tmp_path / "untrained", "tiny")
    monkeypatch.setenv("MINICOSY_CHECKPOINT", str(ckpt))  # the kernel inherits the environment
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", record_timing=False,
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    with pytest.raises(CellExecutionError) as info:
        client.execute()
    err = info.value
    failed = next(i for i, c in enumerate(nb.cells)
                  if any(o.get("output_type") == "error" for o in c.get("outputs", [])))
    assert err.ename == "AssertionError", f"cell {failed} failed with {err.ename}: {err.evalue}"
    assert err.evalue.startswith("quality floor"), f"cell {failed} failed another assert: {err.evalue}"
    # the notebook did load the random-init checkpoint, and got as far as its syntheses
    printed = "".join(o.get("text", "") for c in nb.cells[:failed] for o in c.get("outputs", []))
    assert "random-init stages: ['lm', 'flow', 'speaker']" in printed
    assert "syntheses: float32, finite" in printed
    print(f"cell {failed}: {err.evalue}")  # which floor fired (pytest -s shows it)
