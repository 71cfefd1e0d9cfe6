"""The project's own files must install what it needs (CI runs on a fresh clone)."""

import re
import subprocess
import sys

import tomllib
import yaml

from minicosy.utils import REPO_ROOT


def _pyproject():
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    proj = _pyproject()["project"]
    expected = set(proj["dependencies"]) | set(proj["optional-dependencies"]["dev"]) | set(
        proj["optional-dependencies"]["eval"]
    )
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = {x for x in pip_section if not x.startswith("-e")}
    assert listed == expected
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"])
    # resemblyzer is installed --no-deps; the file must say so.
    assert "resemblyzer" in (REPO_ROOT / "environment.yml").read_text()


def test_torch_requirement_and_makefile_pin():
    deps = _pyproject()["project"]["dependencies"]
    assert "torch>=2.4" in deps
    install = (REPO_ROOT / "scripts" / "install_python.sh").read_text()
    assert "torch==2.13.0" in install and "import torch" in install


def test_ci_calls_the_readme_test_command():
    readme = (REPO_ROOT / "README.md").read_text()
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make demo" in readme
    assert re.search(r"^make test$", ci, re.M)


def test_debian_install_names_every_engine_package():
    script = (REPO_ROOT / "scripts" / "install_debian.sh").read_text()
    for pkg in ("flite", "festival", "festvox-kallpc16k", "festvox-us-slt-hts", "espeak-ng", "mbrola",
                "mbrola-us1", "mbrola-us2", "mbrola-us3", "mbrola-en1", "sox"):
        assert re.search(rf"\b{re.escape(pkg)}\b", script), pkg
    assert "contrib non-free" in script


def test_console_entry_points():
    assert _pyproject()["project"]["scripts"]["minicosy"] == "minicosy.system.cli:main"
    out = subprocess.run([sys.executable, "-m", "minicosy", "--help"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert out.returncode == 0 and "data" in out.stdout and "eval" in out.stdout
