"""Execute notebooks in place, keeping outputs and execution counts (``make notebooks``).

    python scripts/nbrun.py notebooks/*.ipynb

Each notebook runs with its folder as the working directory (as Jupyter does), in the current
Python environment, and the wall time is printed: the house rule is ≤ 90 s on 2 CPU cores in the
default (tiny) mode. ``--check`` exits non-zero when a notebook exceeds the limit.

``make notebooks`` first writes each ``notebooks/NN_name.py`` twin's cells into its .ipynb (jupytext); run
``make sync-notebooks`` before calling this script by hand after editing a twin.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

LIMIT_S = 90.0


def run_notebook(path: str | Path, timeout: int = 600) -> float:
    """Execute one notebook in place; return its wall time in seconds."""
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    t0 = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - t0
    nbformat.write(nb, path)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="+")
    ap.add_argument("--check", action="store_true", help=f"fail if a notebook takes > {LIMIT_S:.0f} s")
    args = ap.parse_args(argv)
    slow = []
    for nb in args.notebooks:
        secs = run_notebook(nb)
        flag = "" if secs <= LIMIT_S else f"  (over the {LIMIT_S:.0f} s budget)"
        print(f"{nb}: {secs:.1f} s{flag}", flush=True)
        if secs > LIMIT_S:
            slow.append(nb)
    return 1 if (slow and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
