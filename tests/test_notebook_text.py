"""The notebooks read as a textbook: no project process or history in what a learner sees.

A learner reads the markdown cells and the outputs of the code cells; neither should speak of how
the project was run — its issues, targets, sessions, budgets, CI, what was "committed" — nor point
at files outside the repository or print a machine's absolute paths. Code comments are not scanned
(they are for whoever edits the notebook). Audio players (``text/html``) and images are skipped.

The check bans *phrases*, not words, where a word has an honest technical use: "target" is also the
target text, the target speaker, the LM's training target; only the project-goal uses are banned
("targets (…)", "targets met", "2/14 met", "the targets are set").
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from minicosy.utils import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))

#: (name, pattern): each pattern is searched line by line. Case-insensitive unless it says (?-i).
BANNED = [
    ("issue", r"(?<!github )\bissues?\b"),
    ("targets as goals", r"\btargets?\s*\(\s*(?:issue|#|\d)"  # "Targets (issue 12)"
                         r"|\btargets?\s+(?:are\s+|were\s+|is\s+|was\s+)?(?:met|set|passed|failed|missed)\b"
                         r"|\b\d+\s*/\s*\d+\s+(?:targets?\s+)?met\b"  # "2/14 met"
                         r"|\bthe\s+targets?\b(?=[^.]*\b(?:met|limit|set for)\b)"),
    ("goal in brackets", r"\(\s*goal\b"),
    ("session", r"\bsessions?\b"),
    ("budget", r"\bbudgets?\b"),
    ("CI", r"(?-i:(?<!% )\bCI\b)"),  # "95 % CI" is a confidence interval
    ("committed", r"\bcommitted\b|\b(?:this|the|a|each|every|that|last)\s+commits?\b"),
    ("DESIGN.md (not in the repository)", r"\bDESIGN\.md\b"),
    ("an absolute path", r"(?:^|[\s'\"(=])/(?:home|work|tmp|root|Users|private|var/folders)/"),
]
PATTERNS = [(name, re.compile(p, re.IGNORECASE)) for name, p in BANNED]
TEXT_OUTPUTS = ("text/plain", "text/markdown", "text/latex")  # not text/html: audio players are base64


def visible_text(nb) -> list[tuple[int, str, str]]:
    """``(cell index, "markdown" | "output", text)`` for everything a reader of the notebook sees as text."""
    out = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            out.append((i, "markdown", cell.source))
        elif cell.cell_type == "code":
            for o in cell.get("outputs", []):
                if o.output_type == "stream":
                    out.append((i, "output", o.text))
                elif o.output_type in ("execute_result", "display_data"):
                    out += [(i, "output", str(o.data[k])) for k in TEXT_OUTPUTS if k in o.get("data", {})]
                elif o.output_type == "error":
                    out.append((i, "output", f"{o.ename}: {o.evalue}"))
    return out


def offences(path: Path) -> list[str]:
    """One line per banned phrase: ``notebook cell N (markdown|output): [rule] the line``."""
    nb = nbformat.read(path, as_version=4)
    found = []
    for i, where, text in visible_text(nb):
        for line in text.splitlines():
            for name, pat in PATTERNS:
                if pat.search(line):
                    found.append(f"{path.name} cell {i} ({where}): [{name}] {line.strip()[:160]}")
    return found


@pytest.mark.parametrize(
    "line, bad",
    [
        ("Targets (issue 12): 2/14 met.", True),
        ("the targets (issue 12): WER ≤ 1.5 ×", True),
        ("2/14 met", True),
        ("well under the 90 s budget", True),
        ("honest in CI", True),
        ("the committed checkpoints", True),
        ("once this session ends", True),
        ("see DESIGN.md §4", True),
        ("(goal ≤ +10 %)", True),
        ("checkpoint: /work/main/data/pretrained/tiny", True),
        ("the target text, the target speaker, the target mel", False),
        ("In training, the output after the M-th speech token is the target FILL", False),
        ("the loss targets are the speech tokens and EOS", False),
        ("FILL targets (one per full block): 3", False),
        ("trained against pYIN pitch targets (`pyin_f0`, cached)", False),
        ("ΔWER +0.021 (95 % CI -0.005 … +0.049)", False),
        ("the following steps commit to one rendering; the sample commits to it", False),
        ("the last commit changed it", True),
        ("minicosy/system/evaluate.py and its CLI", False),
        ("the paper reports WER 2.45 streaming vs 2.47 offline", False),
        ("users report 0.5–5 s in the official repository's GitHub issues", False),
        ("data/pretrained/tiny", False),
    ],
)
def test_the_rules_catch_process_words_and_spare_technical_ones(line, bad):
    assert any(p.search(line) for _, p in PATTERNS) == bad, line


def test_there_are_notebooks_to_read():
    assert len(NOTEBOOKS) >= 8


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_process_words_in_what_a_learner_reads(path: Path):
    found = offences(path)
    assert not found, "process language a learner should not meet:\n" + "\n".join(found)
