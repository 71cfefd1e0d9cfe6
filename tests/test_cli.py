"""The ``minicosy`` command line: every command listed, documented, and spelled consistently."""

import argparse
import subprocess
import sys

import pytest

from minicosy.system.cli import add_synth_args, build_parser, cli_stream, cli_synth, command_table, main
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


@pytest.mark.parametrize("stage", ["tokenizer", "lm", "flow", "speaker"])
def test_every_trainer_takes_set_and_refuses_an_unknown_field_before_any_work(stage, capsys, tmp_path):
    """``--set FIELD=VALUE`` (a size probe) on every stage trained from a preset; a wrong field is one line."""
    assert "--set" in {o for a in _subparser(f"train {stage}")._actions for o in a.option_strings}
    rc = main(["train", stage, "--corpus", str(tmp_path / "nothing"), "--out", str(tmp_path / "run"),
               "--set", "no_such_field=1"])
    err = capsys.readouterr().err
    assert rc == 2 and "--set 'no_such_field=1'" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_group_without_a_command_prints_its_help(capsys):
    assert main(["train"]) == 2
    assert "tokenizer" in capsys.readouterr().out


# ----------------------------------------------------------------------------- synth, stream


CLIP = REPO_ROOT / "data" / "fixtures" / "audio" / "festival_kal" / "festival_kal-valid-00000.flac"
CLIP_TEXT = "Adam and Kevin are good friends."


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from minicosy.testing import write_untrained_checkpoint

    return write_untrained_checkpoint(tmp_path_factory.mktemp("ckpt"), "micro")


def _args(ckpt, out, *extra):
    p = argparse.ArgumentParser()
    add_synth_args(p)
    return p.parse_args(["--text", "Hi there.", "--out", str(out), "--checkpoint", str(ckpt), "--device", "cpu",
                         *extra])


def test_cli_synth_and_stream_write_whole_files(ckpt, tmp_path, capsys):
    import soundfile as sf

    out = tmp_path / "a.wav"
    assert cli_synth(_args(ckpt, out, "--prompt-wav", str(CLIP), "--prompt-text", CLIP_TEXT)) == 0
    wav, sr = sf.read(out)
    assert sr == 24000 and wav.size and "RTF" in capsys.readouterr().out
    out2 = tmp_path / "b.flac"
    assert cli_stream(_args(ckpt, out2, "--speaker", "flite_slt")) == 0
    assert "first packet after" in capsys.readouterr().out and sf.read(out2)[0].size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "b.flac"]  # no partial files left
    out3 = tmp_path / "c.wav"  # --voice NAME: the prompt registered first, the breakdown printed
    assert cli_stream(_args(ckpt, out3, "--prompt-wav", str(CLIP), "--prompt-text", CLIP_TEXT, "--voice", "kal")) == 0
    printed = capsys.readouterr().out
    assert "registered voice 'kal'" in printed and "flow_prompt_block" in printed


@pytest.mark.parametrize("extra, match", [
    (["--out-dir-missing"], "does not exist"), (["--prompt-text", "hello"], "needs --prompt-wav"),
    (["--voice", "kal"], "give --prompt-wav too"),
])
def test_cli_bad_arguments(ckpt, tmp_path, extra, match):
    out = tmp_path / "missing" / "x.wav" if extra == ["--out-dir-missing"] else tmp_path / "x.wav"
    args = _args(ckpt, out, *([] if extra == ["--out-dir-missing"] else extra))
    with pytest.raises(ValueError, match=match):
        cli_synth(args)
    assert not list(tmp_path.iterdir())


def test_synth_and_stream_are_commands_with_one_line_errors(capsys, tmp_path):
    assert {"synth", "stream"} <= set(COMMANDS)
    assert main(["synth", "--text", "hi", "--out", str(tmp_path / "no" / "x.wav")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minicosy: error:") and err.count("\n") == 1 and "does not exist" in err
