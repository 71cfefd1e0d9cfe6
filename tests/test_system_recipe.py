"""Tests for minicosy.system.recipe: the plan of `minicosy train all` — order, skips, resumes, forced
retraining and what it drags along — in dry-run mode on empty folders (nothing trains here), and
that every planned command parses with its stage's own command-line options.
"""

import pytest

from minicosy.system.cli import main
from minicosy.system.recipe import MODELS, STAGES, Paths, _stage_parser, _write_state, parse_minutes, plan


@pytest.fixture
def paths(tmp_path):
    return Paths(tmp_path / "corpus", tmp_path / "export", tmp_path / "runs", "tiny")


def _export(paths, *stages):
    paths.export.mkdir(parents=True, exist_ok=True)
    for s in stages:
        for ext in (".json", ".safetensors"):
            (paths.export / f"{MODELS[s]}{ext}").write_text("{}")


def _actions(steps):
    return {s.stage: s.action for s in steps}


def test_fresh_machine_runs_every_stage_in_pipeline_order(paths):
    steps = plan(paths)
    assert [s.stage for s in steps] == list(STAGES) == ["corpus", "tokenizer", "tokens", "speaker", "lm", "flow",
                                                         "vocoder"]
    assert set(_actions(steps).values()) == {"run"}
    assert "missing, needed by tokenizer, tokens, speaker, vocoder" in steps[0].reason
    lm = steps[4].argv
    assert lm[:2] == ["train", "lm"] and "--resume" not in lm
    assert lm[lm.index("--tokenizer") + 1] == str(paths.export / "speech_tokenizer")  # the tokenizer just trained


def test_everything_exported_nothing_to_do_not_even_the_corpus(paths):
    """A fresh clone with the committed checkpoints: no corpus build, no token cache."""
    _export(paths, *MODELS)
    steps = plan(paths)
    assert set(_actions(steps).values()) == {"skip"}
    assert steps[0].reason.startswith("not needed") and steps[2].reason.startswith("not needed")


def test_a_retrained_tokenizer_retrains_what_reads_its_tokens(paths):
    _export(paths, *MODELS)
    acts = _actions(plan(paths, force=["tokenizer"]))
    assert acts == {"corpus": "run", "tokenizer": "run", "tokens": "run", "speaker": "skip", "lm": "run",
                    "flow": "run", "vocoder": "skip"}
    acts = _actions(plan(paths, force=["speaker"]))
    assert acts == {"corpus": "run", "tokenizer": "skip", "tokens": "run", "speaker": "run", "lm": "skip",
                    "flow": "run", "vocoder": "skip"}
    assert set(_actions(plan(paths, force=["all"])).values()) == {"run"}


def test_interrupted_runs_resume_and_forced_ones_start_over(paths):
    _export(paths, "tokenizer", "speaker", "vocoder")
    (paths.runs / "lm_tiny").mkdir(parents=True)
    (paths.runs / "lm_tiny" / "ckpt.pt").write_bytes(b"")
    steps = {s.stage: s for s in plan(paths)}
    assert steps["lm"].action == "resume" and steps["lm"].argv[-1] == "--resume"
    assert steps["flow"].action == "run" and "--resume" not in steps["flow"].argv  # no checkpoint yet
    assert steps["tokens"].action == "run" and "needed by lm, flow" in steps["tokens"].reason
    assert plan(paths, force=["lm"])[4].action == "run"  # forced: from scratch, not resumed
    # the LM exports at every validation: an export whose run started but never finished is not done
    _export(paths, "lm", "flow")
    _write_state(paths, "lm", "running")
    steps = {s.stage: s for s in plan(paths)}
    assert steps["lm"].action == "resume" and "did not finish" in steps["lm"].reason
    assert steps["flow"].action == "skip"
    _write_state(paths, "lm", "done")
    assert plan(paths)[4].action == "skip"


def test_vocoder_resumes_from_last_pt(paths):
    _export(paths, "tokenizer", "speaker", "lm", "flow")
    (paths.runs / "vocoder_tiny").mkdir(parents=True)
    (paths.runs / "vocoder_tiny" / "last.pt").write_bytes(b"")
    step = plan(paths)[-1]
    assert step.action == "resume" and step.argv[step.argv.index("--export") + 1] == str(paths.export)


def test_max_minutes_per_stage(paths):
    assert parse_minutes(["30", "lm=90"]) == {"*": 30.0, "lm": 90.0}
    steps = {s.stage: s.argv for s in plan(paths, minutes=parse_minutes(["30", "lm=90"]))}
    assert steps["lm"][steps["lm"].index("--max-minutes") + 1] == "90"
    assert steps["flow"][steps["flow"].index("--max-minutes") + 1] == "30"
    assert "--max-minutes" not in steps["corpus"] and "--max-minutes" not in steps["tokens"]
    for bad, match in ((["corpus=3"], "not a training stage"), (["lm=x"], "give minutes"), (["0"], "positive")):
        with pytest.raises(ValueError, match=match):
            parse_minutes(bad)
    with pytest.raises(ValueError, match="unknown stage"):
        plan(paths, force=["nope"])


def test_every_planned_command_parses_with_its_stages_own_options(paths):
    for step in plan(paths, minutes={"*": 5.0}, threads=2, device="cpu"):
        args = _stage_parser(step.stage).parse_args(step.argv)
        assert callable(args.func), step.stage
        if step.stage in MODELS:
            assert args.threads == 2 and args.max_minutes == 5.0 and args.device == "cpu"


def test_cli_dry_run_prints_one_line_per_stage(paths, capsys):
    _export(paths, "tokenizer", "vocoder")
    rc = main(["train", "all", "--dry-run", "--corpus", str(paths.corpus), "--export", str(paths.export),
               "--runs", str(paths.runs)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert rc == 0 and len(lines) == len(STAGES)
    assert [ln.split()[1] for ln in lines] == list(STAGES)
    assert [ln.split()[2] for ln in lines] == ["run", "skip", "run", "run", "run", "run", "skip"]
    assert not paths.runs.exists()  # a dry run writes nothing
    assert main(["train", "all", "--dry-run", "--force", "bogus", "--export", str(paths.export)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minicosy: error:") and err.count("\n") == 1
