"""The ``minicosy`` command line: every command listed, documented, and spelled consistently."""

import argparse
import subprocess
import sys

import pytest

from minicosy.cli import build_parser, command_table, main
from minicosy.utils import REPO_ROOT

PARSER = build_parser()
COMMANDS = [name for name, _ in command_table(PARSER)]


def _subparser(path: str) -> argparse.ArgumentParser:
    p = PARSER
    for word in path.split():
        sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        p = sub.choices[word]
    return p


def test_top_level_help_lists_every_command_with_its_help():
    out = subprocess.run([sys.executable, "-m", "minicosy", "--help"], capture_output=True, text=True,
                         cwd=REPO_ROOT)
    assert out.returncode == 0
    for name, help_ in command_table(PARSER):
        assert help_, f"`minicosy {name}` has no one-line help"
        assert f"  {name} " in out.stdout
    for expected in ("data build", "data tokens", "train tokenizer", "train vocoder", "eval tokenizer",
                     "eval groundtruth", "text train", "demo"):
        assert expected in COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        PARSER.parse_args(command.split() + ["--help"])
    assert exc.value.code == 0
    assert f"usage: minicosy {command}" in capsys.readouterr().out


@pytest.mark.parametrize("command", COMMANDS)
def test_flags_mean_the_same_everywhere(command):
    """A corpus is always ``--corpus`` (``--manifest`` only as its alias); ``--resume`` is a switch."""
    actions = {o: a for a in _subparser(command)._actions for o in a.option_strings}
    if "--manifest" in actions:
        assert actions["--manifest"].dest == "corpus" and "--corpus" in actions[
            "--manifest"].option_strings, command
    if "--resume" in actions:
        assert isinstance(actions["--resume"], argparse._StoreTrueAction), command
    if "--threads" in actions:
        assert actions["--threads"].type is int, command


def test_bad_input_is_one_line_and_exit_code_2(capsys, tmp_path):
    rc = main(["eval", "wer", str(tmp_path / "missing.wav"), "--ref", "hello"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("minicosy: error:") and err.count("\n") == 1


def test_group_without_a_command_prints_its_help(capsys):
    assert main(["train"]) == 2
    assert "tokenizer" in capsys.readouterr().out
