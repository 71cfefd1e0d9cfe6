"""The package layout: one folder per stage, imports that run one way, a lazy public API.

Layers, lowest first (a module may import its own layer or a lower one, never a higher one):

    0  base       minicosy.config, .audio, .utils, .nn, .training, .checkpoint
    1  data/text  minicosy.data.*, minicosy.text.*
    2  models     the model modules of each stage (speech_tokenizer.fsq/.model, vocoder.hift/
                  .griffinlim, lm.*, flow.*), and minicosy.judges, minicosy.voice_probe
    3  training   each stage's train / evaluate / corpus_tokens modules
    4  system     minicosy.system: 4 its front end, timing, streaming runtime, 5 the model (MiniCosy), 6 what runs
                  it (evaluate, demo, recipe) and minicosy.testing, 7 the CLI and minicosy.__main__

So a model module never imports its trainer, a stage never imports the system above it, the system
composes the stages, nothing imports the CLI, and import circles are refused even when the import
hides inside a function.
"""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from minicosy.utils import REPO_ROOT

PKG = REPO_ROOT / "minicosy"
STAGES = {"speech_tokenizer", "vocoder", "lm", "flow"}
TRAINING = {"train", "evaluate", "corpus_tokens"}
SYSTEM = {
    "minicosy.system": 4,
    "minicosy.system.frontend": 4,
    "minicosy.system.timing": 4,
    "minicosy.system.streaming": 4,
    "minicosy.system.model": 5,
    "minicosy.system.evaluate": 6,
    "minicosy.system.demo": 6,
    "minicosy.system.recipe": 6,
    "minicosy.testing": 6,
    "minicosy.system.cli": 7,
    "minicosy.__main__": 7,
}
BASE = {"minicosy", "minicosy.config", "minicosy.audio", "minicosy.utils", "minicosy.nn", "minicosy.training",
        "minicosy.checkpoint"}
CLI = "minicosy.system.cli"


def layer(module: str) -> int:
    parts = module.split(".")
    if module in BASE:
        return 0
    if module in SYSTEM:
        return SYSTEM[module]
    if module in ("minicosy.judges", "minicosy.voice_probe"):
        return 2
    if len(parts) >= 2 and parts[1] in ("data", "text"):
        return 1
    if len(parts) >= 2 and parts[1] in STAGES:
        return 3 if len(parts) >= 3 and parts[2] in TRAINING else 2
    raise AssertionError(f"{module}: not placed in a layer; add it to tests/test_layout.py")


def module_sources() -> dict[str, str]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(REPO_ROOT).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        out[name] = path.read_text(encoding="utf-8")
    return out


def imports_of(name: str, source: str, known: set[str]) -> set[str]:
    """Every ``minicosy`` module that ``source`` imports, anywhere in the file (functions too)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                pkg = name.split(".") if name in known and _is_package(name) else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            # `from minicosy.x import y` imports minicosy.x.y when y is a module
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for t in targets:
            if t == "minicosy" or t.startswith("minicosy."):
                while t not in known and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t in known and t != name:
                    found.add(t)
    return found


def _is_package(name: str) -> bool:
    return (REPO_ROOT / name.replace(".", "/") / "__init__.py").is_file()


def violations(sources: dict[str, str]) -> list[str]:
    """Every broken layout rule in a set of module sources (empty = the layout holds)."""
    known = set(sources)
    graph = {m: imports_of(m, src, known) for m, src in sources.items()}
    bad = []
    for m, deps in graph.items():
        for d in deps:
            if d == CLI and m != "minicosy.__main__":
                bad.append(f"{m} imports the CLI")
            elif layer(d) > layer(m):
                bad.append(f"{m} (layer {layer(m)}) imports {d} (layer {layer(d)})")
    # circles: depth-first search for a back edge
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                bad.append("import circle: " + " → ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    return bad


def test_every_module_has_a_layer_and_the_layout_holds():
    sources = module_sources()
    assert "minicosy.speech_tokenizer.model" in sources and "minicosy.vocoder.hift" in sources
    assert violations(sources) == []


@pytest.mark.parametrize("model, trainer", [
    ("minicosy.speech_tokenizer.model", "minicosy.speech_tokenizer.train"),
    ("minicosy.vocoder.hift", "minicosy.vocoder.train"),
])
def test_checker_catches_a_model_importing_its_trainer(model, trainer):
    sources = module_sources()
    sources[model] += f"\n\ndef _register():\n    from {trainer} import *  # noqa\n"
    found = violations(sources)
    assert any(f"{model} (layer 2) imports {trainer}" in v for v in found)
    assert any(v.startswith("import circle") for v in found)


def test_checker_catches_an_import_of_the_cli():
    sources = module_sources()
    sources["minicosy.system.demo"] += "\nimport minicosy.system.cli\n"
    assert any("minicosy.system.demo imports the CLI" in v for v in violations(sources))


@pytest.mark.parametrize("stage, system", [
    ("minicosy.flow.model", "minicosy.system.frontend"),  # a model module reaching up to the system
    ("minicosy.lm.train", "minicosy.system.model"),  # a trainer too
    ("minicosy.system.frontend", "minicosy.system.model"),  # the front end under the model it serves
])
def test_checker_catches_an_import_of_the_system_from_below(stage, system):
    sources = module_sources()
    sources[stage] += f"\n\ndef _late():\n    import {system}  # noqa\n"
    assert any(v.startswith(f"{stage} (layer") and v.endswith(f"imports {system} (layer {layer(system)})")
               for v in violations(sources))


def test_the_old_flat_system_modules_are_gone():
    sources = module_sources()
    for old in ("pipeline", "voice", "demo", "tts_eval", "train_all", "cli"):
        assert f"minicosy.{old}" not in sources, f"minicosy/{old}.py came back: it lives in minicosy/system/ now"


def test_stage_folders_have_docstrings_and_no_eager_imports():
    for stage in ["data", "text", "system"] + sorted(STAGES):
        init = PKG / stage / "__init__.py"
        if not init.is_file():
            continue  # a stage that has not landed yet
        tree = ast.parse(init.read_text(encoding="utf-8"))
        doc = ast.get_docstring(tree)
        assert doc and "notebook" in doc.lower(), f"{init}: say what the stage does and which notebook"
        assert not [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))], init


def test_import_minicosy_is_lazy():
    code = ("import sys, minicosy; assert 'torch' not in sys.modules, 'torch imported eagerly'; "
            "names = sorted(minicosy.__all__); "
            "from minicosy import SpeechTokenizer, FSQ, Vocoder, TextTokenizer, log_mel, griffin_lim, TTSConfig; "
            "assert 'torch' in sys.modules; print(' '.join(names))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr
    for name in ("TTSConfig", "load_audio", "log_mel", "TextTokenizer", "FSQ", "SpeechTokenizer", "Vocoder",
                 "griffin_lim", "build_sequence", "attention_mask", "conditional_flow"):
        assert name in out.stdout.split()


def test_every_public_name_resolves():
    import minicosy

    for name in minicosy.__all__:
        assert getattr(minicosy, name) is not None, name


def test_unknown_public_name_is_an_attribute_error():
    import minicosy

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        minicosy.Nope  # noqa: B018


def _body_lines(fn: ast.FunctionDef) -> int:
    """Lines of a function's body, its docstring excluded."""
    body = fn.body
    doc = isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
        and isinstance(body[0].value.value, str)
    first = (body[1].lineno if len(body) > 1 else body[0].end_lineno) if doc else body[0].lineno
    return fn.end_lineno - first + 1


def test_no_function_over_70_lines():
    """House style: a function reads in one screen (docstring excluded); split a longer one."""
    long = []
    for name, source in module_sources().items():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _body_lines(node) > 70:
                long.append(f"{name}.{node.name} ({_body_lines(node)} lines)")
    assert long == []


def test_body_lines_counts_without_the_docstring():
    fn = ast.parse('def f():\n    """Doc.\n\n    More.\n    """\n    a = 1\n    return a\n').body[0]
    assert _body_lines(fn) == 2
    assert _body_lines(ast.parse("def g():\n    return 1\n").body[0]) == 1


def test_minicosy_class_stays_lean():
    """The system's model only loads, synthesises and streams (<= 200 lines); the rest is the front end's."""
    tree = ast.parse((PKG / "system" / "model.py").read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "MiniCosy")
    assert cls.end_lineno - cls.lineno + 1 <= 200
