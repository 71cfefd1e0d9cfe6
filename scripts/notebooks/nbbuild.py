"""What every ``build_NN.py`` notebook generator shares: the cell helpers and the writer.

    from nbbuild import NotebookBuilder
    nb = NotebookBuilder("06_streaming.ipynb")
    md, code = nb.md, nb.code
    md("# title"); code("print(1)")
    nb.main()          # writes notebooks/06_streaming.ipynb (or the path given as argv[1])

Cells are written without outputs; execute the notebook afterwards with ``scripts/nbrun.py``.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


class NotebookBuilder:
    """Collects markdown and code cells for ``notebooks/<name>`` and writes the notebook."""

    def __init__(self, name: str):
        self.out = NOTEBOOKS / name
        self.cells: list = []

    def md(self, text: str) -> None:
        self.cells.append(new_markdown_cell(textwrap.dedent(text).strip("\n")))

    def code(self, text: str, hidden: bool = False) -> None:
        cell = new_code_cell(textwrap.dedent(text).strip("\n"))
        if hidden:  # collapsed in JupyterLab / Notebook 7: the exercise solutions
            cell.metadata["jupyter"] = {"source_hidden": True}
        self.cells.append(cell)

    def notebook(self):
        nb = new_notebook(cells=self.cells)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
        return nb

    def main(self) -> None:
        """Write the notebook to ``argv[1]`` if given, else to ``notebooks/<name>``."""
        out = Path(sys.argv[1]) if len(sys.argv) > 1 else self.out
        nbformat.write(self.notebook(), out)
        print(f"wrote {out} ({len(self.cells)} cells)")
