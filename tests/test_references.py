"""Every cross-reference in the package's docstrings and comments, and in the notebooks, resolves.

Three kinds of reference are checked, in ``minicosy/**/*.py`` (comments and string literals,
docstrings included), in ``notebooks/*.ipynb`` (markdown and code cells) and their jupytext
``notebooks/*.py`` twins, and in ``docs/*.md`` (the whole text; a bare ``§N`` inside a document is its own
section and is not checked):

1. **paths** — ``docs/...`` and repository files named by path (``minicosy/.../x.py``,
   ``tests/...``, ``scripts/...``, ``benchmarks/...``, ``notebooks/...`` with an extension): the
   file exists. A bare ``NAME.md`` (``README.md``) must exist at the repository root.
2. **sections of our documents** — the rule that tells them from the paper's sections: a ``§N``
   belongs to one of our documents only when it *follows that document's path*, as in
   ``docs/paper_vs_code.md §3``, ``docs/paper_vs_code.md §1–2``, ``(docs/paper_vs_code.md §2
   "Vocoder")`` or ``docs/paper_vs_code.md (§1 rates, §2 components)``. Every bare ``§N`` is the
   paper's (``CosyVoice 2 §2.3``, ``[CV2 §2.3]``, ``[1, §2.1]``) or a notebook's own section, and is
   not checked. A checked ``§N`` must be a heading ``## §N ...`` of that document; a quoted title
   after it (``§2 "Vocoder"``, or ``docs/x.md, "Streaming runtime"`` without a number) must open a
   bold paragraph (``**Vocoder.**``) or a heading in that section (in the whole document).
3. **dotted names** — ``minicosy.x.y[.attr...]``: the longest module prefix exists and the rest
   resolves as attributes (``minicosy.lm.sequence.build_sequence``, ``minicosy.vocoder.hift.
   VocoderConfig.tiny``). ``__main__`` modules are found, never imported.

Each check collects every unresolved reference as ``file:line: reference (why)`` and fails with
the whole list, so one run names everything to fix.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import tokenize
from functools import cache
from pathlib import Path

from minicosy.utils import REPO_ROOT

# ----------------------------------------------------------------------------- what a reference looks like

#: repository paths; a path must not continue another one (``../docs/``, ``readthedocs/``)
PATH = re.compile(r"(?<![\w./-])((?:docs|minicosy|tests|scripts|benchmarks|notebooks)/[\w./-]*\.[A-Za-z]+)\b")
#: a bare markdown file name (``README.md``, ``DESIGN.md``), not part of a longer path
BARE_MD = re.compile(r"(?<![\w./-])([A-Za-z][\w-]*\.md)\b")
#: a document named without its extension before a section sign (``DESIGN §4``, ``README §2``)
BARE_DOC_SECTION = re.compile(r"(?<![\w-])(DESIGN|STYLE|README|CONTRIBUTING)\s+§")
DOTTED = re.compile(r"(?<![\w.])(minicosy(?:\.[A-Za-z_]\w*)+)")
# one section item: §N, §N–M, §N.M, optionally followed by a quoted title
_ITEM = r'§\s*(\d+(?:\.\d+)*)(?:\s*[–-]\s*(\d+))?(?:,?\s+"([^"\n]+)")?'
ITEM = re.compile(_ITEM)
# after a document path: an optional closing backtick, then "§..." or "(§..." — and more items of the
# same list, separated by ", " or " and " with at most a short lower-case label in between
SECTIONS = re.compile(r'`?\s*\(?\s*(' + _ITEM + r'(?:(?:\s+[a-z][\w -]{0,30}?)?(?:,|\s+and|\s*/)\s*' + _ITEM + r')*)')
TITLE_ONLY = re.compile(r'`?,?\s+"([^"\n]+)"')


def find_paths(text: str) -> list[tuple[int, str]]:
    """``(offset, path)`` for every repository path in ``text``."""
    return [(m.start(1), m.group(1).rstrip(".")) for m in PATH.finditer(text) if not re.search(r"[*<>{]", m.group(1))]


def find_sections(text: str) -> list[tuple[int, str, str, str | None]]:
    """``(offset, document, section, title)`` for every § reference that follows a ``docs/*.md`` path.

    ``section`` is ``""`` for a quoted title without a number. A range ``§1–2`` gives both ends.
    """
    out = []
    for m in PATH.finditer(text):
        doc = m.group(1)
        if not doc.endswith(".md"):
            continue
        tail = SECTIONS.match(text, m.end(1))
        if tail:
            for it in ITEM.finditer(tail.group(1)):
                out.append((m.start(1), doc, it.group(1), it.group(3)))
                if it.group(2):
                    out.append((m.start(1), doc, it.group(2), None))
            continue
        t = TITLE_ONLY.match(text, m.end(1))
        if t:
            out.append((m.start(1), doc, "", t.group(1)))
    return out


def find_dotted(text: str) -> list[tuple[int, str]]:
    return [(m.start(1), m.group(1)) for m in DOTTED.finditer(text)]


# ----------------------------------------------------------------------------- where references live


def _uncomment(text: str) -> str:
    """``# `` markers at line starts become spaces (offsets kept), so a reference may wrap lines."""
    return re.sub(r"(?m)^(\s*)#", lambda m: m.group(1) + " ", text)


def _python_units(path: Path) -> list[tuple[int, str]]:
    """``(first line, text)``: each string literal, and each run of consecutive comment lines."""
    units, run, run_start, last = [], [], 0, -2
    with open(path, encoding="utf-8") as f:
        tokens = list(tokenize.generate_tokens(f.readline))
    for tok in tokens:
        if tok.type == tokenize.STRING:
            units.append((tok.start[0], tok.string))
        elif tok.type == tokenize.COMMENT:
            if tok.start[0] != last + 1 and run:
                units.append((run_start, "\n".join(run)))
                run = []
            if not run:
                run_start = tok.start[0]
            run.append(" " + tok.string[1:])
            last = tok.start[0]
    if run:
        units.append((run_start, "\n".join(run)))
    return units


def _notebook_units(path: Path) -> list[tuple[str, str]]:
    """``(location, text)`` per cell of an ``.ipynb`` (location ``cell N``, N from 1)."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return [(f"cell {i}", "".join(c["source"]) if isinstance(c["source"], list) else c["source"])
            for i, c in enumerate(cells, 1)]


def reference_sources() -> list[tuple[str, str]]:
    """``(where, text)`` pairs; ``where`` is ``file:line`` of the text's first line (``file:cell N:line``
    for a notebook cell), so ``where`` plus the line offset of a match gives its location."""
    out = []
    for p in sorted((REPO_ROOT / "minicosy").rglob("*.py")):
        rel = p.relative_to(REPO_ROOT).as_posix()
        out += [(f"{rel}:{line}", text) for line, text in _python_units(p)]
    for p in sorted((REPO_ROOT / "notebooks").glob("*.ipynb")):
        rel = p.relative_to(REPO_ROOT).as_posix()
        out += [(f"{rel}:{cell}:1", text) for cell, text in _notebook_units(p)]
    for p in sorted((REPO_ROOT / "notebooks").glob("*.py")) + sorted((REPO_ROOT / "docs").glob("*.md")):
        out.append((f"{p.relative_to(REPO_ROOT).as_posix()}:1", _uncomment(p.read_text(encoding="utf-8"))))
    return out


def _at(where: str, text: str, offset: int) -> str:
    head, line = where.rsplit(":", 1)
    return f"{head}:{int(line) + text.count(chr(10), 0, offset)}"


# ----------------------------------------------------------------------------- resolution


@cache
def _doc_sections(doc: str) -> dict[str, str]:
    """``{"3": body of "## §3 ...", ...}`` of a markdown document."""
    text = (REPO_ROOT / doc).read_text(encoding="utf-8")
    parts = re.split(r"(?m)^#{1,6}\s*§\s*(\d+(?:\.\d+)*)\b[^\n]*\n", text)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def _has_title(body: str, title: str) -> bool:
    t = re.escape(title.strip().rstrip("."))
    return bool(re.search(r"\*\*" + t + r"\b", body) or re.search(r"(?m)^#{1,6}[^\n]*" + t, body))


def section_problem(doc: str, section: str, title: str | None) -> str | None:
    if not (REPO_ROOT / doc).is_file():
        return f"{doc} does not exist"
    sections = _doc_sections(doc)
    if section and section not in sections:
        return f"{doc} has no heading §{section} (it has §{', §'.join(sections)})"
    body = sections[section] if section else (REPO_ROOT / doc).read_text(encoding="utf-8")
    if title and not _has_title(body, title):
        return f'{doc} {"§" + section if section else ""} has no paragraph or heading "{title}"'
    return None


@cache
def dotted_problem(name: str) -> str | None:
    """``None`` if ``name`` is a module or an attribute path below one, else why not."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        mod = ".".join(parts[:i])
        try:
            spec = importlib.util.find_spec(mod)
        except (ImportError, ValueError):  # a parent is a module, not a package
            spec = None
        if spec is None:
            continue
        if i == len(parts):
            return None
        if parts[i - 1] == "__main__":
            return f"{mod} is a script, it has no attribute {parts[i]}"
        try:
            obj = importlib.import_module(mod)
        except Exception as exc:  # noqa: BLE001 - any import failure is the finding
            return f"importing {mod} failed: {type(exc).__name__}: {exc}"
        for k, attr in enumerate(parts[i:], i):
            try:
                obj = getattr(obj, attr)
            except AttributeError:
                if k == i and hasattr(obj, "__path__"):
                    return f"no module {'.'.join(parts[:k + 1])}, and {mod} has no attribute {attr!r}"
                return f"{'.'.join(parts[:k])} has no attribute {attr!r}"
        return None
    return "no such module"


def path_problem(path: str) -> str | None:
    return None if (REPO_ROOT / path).exists() else "no such file"


# ----------------------------------------------------------------------------- the extractor itself


def test_section_rule_known_answers():
    """Ours after a document path, the paper's everywhere else; lists, ranges and titles."""
    text = ('Stage (docs/paper_vs_code.md §1–2), CosyVoice 2 §2.4, Eq. 3. See `docs/paper_vs_code.md` (§1 rates,\n'
            '§2 components, §4 judges); (docs/paper_vs_code.md §2, "Vocoder": the baseline); [CV2 §2.3];\n'
            'docs/paper_vs_code.md §2 "Streaming runtime" and §3; `docs/paper_vs_code.md`, "Flow matching".')
    got = [(s, t) for _, _, s, t in find_sections(text)]
    assert got == [("1", None), ("2", None), ("1", None), ("2", None), ("4", None), ("2", "Vocoder"),
                   ("2", "Streaming runtime"), ("3", None), ("", "Flow matching")]
    assert find_sections("the paper's §2.1 and CV2 §3; README §4") == []
    assert [m.group(1) for m in BARE_DOC_SECTION.finditer("(DESIGN §4), CV2 §2.3, README §1, HiFi-GAN §2, FSQ §3")] == [
        "DESIGN", "README"]
    assert [p for _, p in find_paths("see ../docs/x.md, docs/paper_vs_code.md. and minicosy/lm/sequence.py")] == [
        "docs/paper_vs_code.md", "minicosy/lm/sequence.py"]
    assert [d for _, d in find_dotted("(:func:`minicosy.lm.sequence.build_sequence`), python -m minicosy.cli.")] == [
        "minicosy.lm.sequence.build_sequence", "minicosy.cli"]


def test_resolvers_known_answers():
    assert dotted_problem("minicosy.lm.sequence.build_sequence") is None
    assert dotted_problem("minicosy.vocoder.hift.VocoderConfig.tiny") is None
    assert "no attribute 'nope'" in dotted_problem("minicosy.lm.sequence.nope")
    assert dotted_problem("minicosy.nope.thing") is not None
    assert dotted_problem("minicosy.__main__") is None  # found, not run
    assert section_problem("docs/paper_vs_code.md", "2", "Vocoder") is None
    assert "no heading §9" in section_problem("docs/paper_vs_code.md", "9", None)
    assert "no paragraph" in section_problem("docs/paper_vs_code.md", "3", "Vocoder")
    assert section_problem("docs/nope.md", "1", None) == "docs/nope.md does not exist"


# ----------------------------------------------------------------------------- the repository


@cache
def _sources() -> tuple[tuple[str, str], ...]:
    return tuple(reference_sources())


def _report(problems: list[str]) -> str:
    return f"{len(problems)} unresolved reference(s):\n" + "\n".join(problems)


def test_paths_exist():
    sources = _sources()
    problems = []
    for where, text in sources:
        for off, path in find_paths(text):
            why = path_problem(path)
            if why:
                problems.append(f"{_at(where, text, off)}: {path} ({why})")
        for m in BARE_MD.finditer(text):
            if not (REPO_ROOT / m.group(1)).is_file():
                problems.append(f"{_at(where, text, m.start(1))}: {m.group(1)} (not a file at the repository "
                                "root; name the document by its path, e.g. docs/paper_vs_code.md)")
        for m in BARE_DOC_SECTION.finditer(text):
            problems.append(f"{_at(where, text, m.start(1))}: {m.group(1)} § (a document named without its path; "
                            "write e.g. docs/paper_vs_code.md §N)")
    assert not problems, _report(problems)


def test_document_sections_exist():
    sources = _sources()
    problems = []
    for where, text in sources:
        for off, doc, section, title in find_sections(text):
            why = section_problem(doc, section, title)
            if why:
                ref = f"{doc} §{section}" if section else f'{doc} "{title}"'
                problems.append(f"{_at(where, text, off)}: {ref} ({why})")
    assert not problems, _report(problems)


def test_dotted_names_resolve():
    sources = _sources()
    problems = []
    for where, text in sources:
        for off, name in find_dotted(text):
            why = dotted_problem(name)
            if why:
                problems.append(f"{_at(where, text, off)}: {name} ({why})")
    assert not problems, _report(problems)


def test_sources_are_found():
    """The scan is not vacuous: it sees the package, the notebooks, and references of every kind."""
    sources = _sources()
    files = {w.split(":")[0] for w, _ in sources}
    assert "minicosy/lm/sequence.py" in files and any(f.endswith(".ipynb") for f in files)
    assert sum(len(find_sections(t)) for _, t in sources) > 20
    assert sum(len(find_dotted(t)) for _, t in sources) > 20
