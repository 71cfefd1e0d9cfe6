"""Benchmark: how long ``import minicosy`` takes, against a bare interpreter and ``import torch``.

``minicosy/__init__.py`` loads its public names lazily (PEP 562), so importing the package must
cost next to nothing: torch (seconds on a cold 2-core machine) is imported only when a name that
needs it is touched. Each case is a fresh ``python -c`` process; the figure is the median wall time
of several runs, with the bare interpreter's start-up reported beside it (and subtracted).

Usage:
    python benchmarks/import_time.py [--repeats 7] [--out f.json]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout

from minicosy.utils import emit_json, machine_info  # noqa: E402

CASES = {
    "python": "pass",
    "import_minicosy": "import minicosy",
    "import_minicosy_then_TTSConfig": "import minicosy; minicosy.TTSConfig",
    "import_torch": "import torch",
    "import_minicosy_then_SpeechTokenizer": "import minicosy; minicosy.SpeechTokenizer",
}


def wall(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    return time.perf_counter() - t0


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    for code in CASES.values():  # warm the file-system cache once
        wall(code)
    med = {name: statistics.median(wall(code) for _ in range(args.repeats)) for name, code in CASES.items()}
    base = med["python"]
    torch_loaded = subprocess.run([sys.executable, "-c", "import sys, minicosy; print('torch' in sys.modules)"],
                                  capture_output=True, text=True, cwd=REPO).stdout.strip() == "True"
    result = {"benchmark": "import_time", "machine": machine_info(), "repeats": args.repeats,
              "median_s": {k: round(v, 4) for k, v in med.items()},
              "over_bare_python_s": {k: round(v - base, 4) for k, v in med.items() if k != "python"},
              "import_minicosy_loads_torch": torch_loaded,
              "ratio_import_torch_to_import_minicosy": round((med["import_torch"] - base)
                                                             / max(med["import_minicosy"] - base, 1e-4), 1)}
    return emit_json(result, args.out)


if __name__ == "__main__":
    main()
