#!/usr/bin/env bash
# Install minicosy and everything its tests, notebooks and judges need into the given Python.
# Usage: scripts/install_python.sh .venv/bin/python
set -euo pipefail
PY=${1:-python3}

# torch first: a CPU build of 2.13.0 lies on machines like ours; a bare `torch` requirement
# would otherwise pull a multi-GB CUDA build. Skip if any torch is already importable.
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  "$PY" -m pip install -q "torch==2.13.0"
fi
"$PY" -m pip install -q -e ".[dev,eval]"
# resemblyzer without its stale dependency list (see pyproject.toml, docs/paper_vs_code.md §4).
if ! "$PY" -c "import resemblyzer" >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-deps "resemblyzer==0.1.4"
fi
"$PY" -c "import resemblyzer, pocketsphinx, jiwer, torch, transformers, librosa; print('[install_python] ok: torch', torch.__version__, 'transformers', transformers.__version__, 'librosa', librosa.__version__)"
