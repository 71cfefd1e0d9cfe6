"""Each notebook's jupytext py:percent twin (``notebooks/NN_name.py``, the file to edit) says what its .ipynb says.

The .ipynb keeps the outputs nbval compares; the twin keeps the cells. They agree when, cell by cell, the types,
the sources (``# NBVAL_*`` markers included: they are code comments) and the cell metadata that
``notebooks/jupytext.toml`` lets into the twin (hidden solutions, tags) are equal. Nothing is executed.
``make sync-notebooks`` writes the twins into the notebooks; ``make notebooks`` syncs, then executes.
"""

import shutil
from pathlib import Path

import jupytext
import nbformat
import pytest
import tomllib
from jupytext.cli import jupytext as jupytext_cli

from minicosy.utils import REPO_ROOT

NB_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))
CONFIG = tomllib.loads((NB_DIR / "jupytext.toml").read_text())
# "jupyter,tags,-all" -> ("jupyter", "tags"): the cell metadata keys the twin carries.
KEPT = tuple(k for k in CONFIG["cell_metadata_filter"].split(",") if k and not k.startswith("-"))


def _cells(nb) -> list[tuple[str, str, dict]]:
    return [(c.cell_type, c.source, {k: c.metadata[k] for k in KEPT if k in c.metadata}) for c in nb.cells]


def mismatches(ipynb: Path, twin: Path) -> list[str]:
    """Where the twin and the notebook disagree, one line each (empty when they are in sync)."""
    want = _cells(nbformat.read(ipynb, as_version=4))
    got = _cells(jupytext.read(twin, fmt="py:percent"))
    out = [] if len(want) == len(got) else [f"{len(got)} cells in the twin, {len(want)} in the notebook"]
    for i, (w, g) in enumerate(zip(want, got)):
        for what, a, b in zip(("type", "source", "metadata"), w, g):
            if a != b:
                out.append(f"cell {i}: {what} differs: notebook {str(a)[:60]!r} vs twin {str(b)[:60]!r}")
    return out


def test_pairing_config():
    assert CONFIG["formats"] == "ipynb,py:percent"
    assert {"jupyter", "tags"} <= set(KEPT), "hidden solutions (jupyter.source_hidden) and tags must survive"
    assert CONFIG["notebook_metadata_filter"] == "-all", "no header in the twins (it changes with each jupytext)"


def test_every_notebook_has_a_twin_and_every_twin_a_notebook():
    assert NOTEBOOKS
    twins = {p.stem for p in NB_DIR.glob("*.py")}
    assert twins == {p.stem for p in NOTEBOOKS}


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=lambda p: p.name)
def test_twin_is_in_sync_with_notebook(ipynb: Path):
    twin = ipynb.with_suffix(".py")
    assert twin.read_text().startswith("# %%"), "a py:percent twin without a jupytext header"
    problems = mismatches(ipynb, twin)
    assert not problems, f"{twin.name} drifted from {ipynb.name} (run `make sync-notebooks`):\n" + "\n".join(
        problems
    )


def _hidden_cell_notebook() -> Path:
    return next(p for p in NOTEBOOKS if any(c.metadata.get("jupyter") for c in nbformat.read(p, 4).cells))


def test_a_drifted_twin_is_caught_and_sync_repairs_it(tmp_path: Path):
    src = _hidden_cell_notebook()
    for name in (src.name, src.with_suffix(".py").name, "jupytext.toml"):
        shutil.copy(NB_DIR / name, tmp_path / name)
    ipynb, twin = tmp_path / src.name, tmp_path / src.with_suffix(".py").name
    assert mismatches(ipynb, twin) == []

    text = twin.read_text()
    assert '# %% jupyter={"source_hidden": true}' in text and "# NBVAL_" in text
    drifted = text.replace('# %% jupyter={"source_hidden": true}', "# %%", 1)  # the solution shows
    drifted = drifted.replace("# NBVAL_", "# nbval_", 1)  # a marker no longer counts
    drifted = drifted.replace("# %% [markdown]", "# %%", 1)  # a markdown cell turned into code
    twin.write_text(drifted)
    problems = mismatches(ipynb, twin)
    assert any("metadata differs" in p for p in problems)
    assert any("source differs" in p for p in problems)
    assert any("type differs" in p for p in problems)
    twin.write_text(text + "\n# %%\nprint('a new cell')\n")
    assert any("cells in the twin" in p for p in mismatches(ipynb, twin))

    # `make sync-notebooks`: the twin's cells go into the notebook; outputs of unchanged cells stay.
    twin.write_text(text.replace("# NBVAL_", "# nbval_", 1))
    before = nbformat.read(ipynb, 4)
    jupytext_cli(["--quiet", "--update", "--to", "ipynb", str(twin)])
    after = nbformat.read(ipynb, 4)
    assert mismatches(ipynb, twin) == []
    changed = [i for i, (a, b) in enumerate(zip(before.cells, after.cells)) if a.source != b.source]
    assert len(changed) == 1 and len(after.cells) == len(before.cells)
    kept = [i for i, c in enumerate(before.cells) if c.cell_type == "code" and i not in changed and c.outputs]
    assert kept and all(after.cells[i].outputs == before.cells[i].outputs for i in kept)
    assert after.metadata == before.metadata  # kernelspec, widget state: untouched
