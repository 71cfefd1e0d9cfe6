"""``minicosy train all`` — every stage of a preset, in pipeline order, resumable.

Stage: system layer, the recipe that makes ``data/pretrained/<preset>/`` (CosyVoice 2 §2, Fig. 1: tokenizer →
LM and flow → vocoder). Each stage is the stage's own command (same options, same defaults), run
in this process:

==============  ==============================  ===========================================  =============
stage           command                         output                                       needs
==============  ==============================  ===========================================  =============
``corpus``      ``minicosy data build``         ``data/corpus/manifest.jsonl``
``tokenizer``   ``minicosy train tokenizer``    ``<export>/speech_tokenizer.{json,safetensors}``  corpus
``tokens``      ``minicosy data tokens``        ``data/corpus/tokens/speech_tokens.pt``      tokenizer
``speaker``     ``minicosy train speaker``      ``<export>/speaker.*``                       corpus
``lm``          ``minicosy train lm``           ``<export>/lm.*``                            tokens
``flow``        ``minicosy train flow``         ``<export>/flow.*``                          tokens, speaker
``vocoder``     ``minicosy train vocoder``      ``<export>/vocoder.*``                       corpus
==============  ==============================  ===========================================  =============

The BPE text tokenizer (``minicosy text train``) is not a stage: the tiny LM reads characters
(:mod:`minicosy.text.chars`), with the speaker tags of the corpus's train voices.

The plan (``--dry-run`` prints it and stops):

* A **model** stage is skipped when its export exists — unless ``--force`` names it, the state
  file (``<runs>/train_all_<preset>.json``) says a run of it started and never finished (the LM
  and the vocoder export at every validation, so an export alone does not prove the run ended),
  or a model it is trained on is retrained in this plan (a new speech tokenizer means new
  tokens, so a new LM and flow; a new speaker encoder, a new flow).
* A stage that runs gets ``--resume`` when its run folder holds a checkpoint, unless it is forced
  or its inputs are retrained (the checkpoint would belong to the old inputs).
* The **data** stages (corpus, token cache) run only when a model stage that reads them runs
  and they are missing (or the token cache was made by another tokenizer): on a fresh clone
  with the committed checkpoints, ``train all`` has nothing to do.

# simplification: stages run one after another in one process (the LM and the flow could train in
# parallel on a machine with more cores: run the two commands side by side).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from minicosy.utils import DEFAULT_CORPUS_DIR, REPO_ROOT

STAGES = ("corpus", "tokenizer", "tokens", "speaker", "lm", "flow", "vocoder")
MODELS = {"tokenizer": "speech_tokenizer", "speaker": "speaker", "lm": "lm", "flow": "flow", "vocoder": "vocoder"}
TRAINED_ON = {"lm": ("tokenizer",), "flow": ("tokenizer", "speaker")}  # models a model is trained on
READS = {"corpus": ("tokenizer", "tokens", "speaker", "vocoder"), "tokens": ("lm", "flow")}  # data → its readers
RUN_CKPT = {"tokenizer": "ckpt.pt", "speaker": "ckpt.pt", "lm": "ckpt.pt", "flow": "ckpt.pt", "vocoder": "last.pt"}


@dataclass
class Step:
    """One stage of the plan: what runs (``action``: skip, run, resume), why, and the command."""

    stage: str
    action: str
    reason: str
    argv: list = field(default_factory=list)
    output: str = ""

    def line(self, k: int, n: int) -> str:
        cmd = f"  $ minicosy {' '.join(self.argv)}" if self.action != "skip" else ""
        return f"[{k}/{n}] {self.stage:9s} {self.action:6s} {self.reason}{cmd}"


@dataclass
class Paths:
    corpus: Path
    export: Path  # folder of the <model>.json / .safetensors
    runs: Path  # run folders: <runs>/<stage>_<preset>
    preset: str

    @property
    def state(self) -> Path:
        return self.runs / f"train_all_{self.preset}.json"

    def run_dir(self, stage: str) -> Path:
        return self.runs / (f"tokenizer_{self.preset}_fsq" if stage == "tokenizer" else f"{stage}_{self.preset}")

    def output(self, stage: str) -> Path:
        from minicosy.speech_tokenizer.corpus_tokens import cache_path

        if stage == "corpus":
            return self.corpus / "manifest.jsonl"
        if stage == "tokens":
            return cache_path(self.corpus)
        return self.export / f"{MODELS[stage]}.safetensors"


def _read_state(paths: Paths) -> dict:
    return json.loads(paths.state.read_text()) if paths.state.is_file() else {}


def _write_state(paths: Paths, stage: str, status: str) -> None:
    state = _read_state(paths)
    state[stage] = {"status": status, "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    paths.state.parent.mkdir(parents=True, exist_ok=True)
    paths.state.write_text(json.dumps(state, indent=1) + "\n")


def _tokens_fresh(paths: Paths) -> bool:
    """The token cache exists and was made by the exported speech tokenizer."""
    import torch

    from minicosy.speech_tokenizer.corpus_tokens import tokenizer_checksum

    out = paths.output("tokens")
    if not out.is_file() or not paths.output("tokenizer").is_file():
        return False
    return torch.load(out, weights_only=False).get("checksum") == tokenizer_checksum(paths.export / "speech_tokenizer")


def _argv(stage: str, paths: Paths, resume: bool, minutes: float | None, threads: int, device: str | None) -> list:
    p, c, e = paths.preset, str(paths.corpus), paths.export
    if stage == "corpus":
        return ["data", "build", "--out", c, "--jobs", str(max(2, threads))]
    if stage == "tokens":
        return ["data", "tokens", "--corpus", c, "--tokenizer", str(e / "speech_tokenizer"), "--no-progress"] + (
            ["--device", device] if device is not None else [])
    argv = ["train", stage, "--preset", p, "--corpus", c, "--out", str(paths.run_dir(stage)),
            "--export", str(e if stage == "vocoder" else e / MODELS[stage]), "--threads", str(threads), "--no-progress"]
    if stage in ("lm", "flow"):
        argv += ["--tokenizer", str(e / "speech_tokenizer")]
    if stage == "flow":
        argv += ["--speaker", str(e / "speaker")]
    if minutes is not None:
        argv += ["--max-minutes", f"{minutes:g}"]
    if device is not None:
        argv += ["--device", device]
    return argv + (["--resume"] if resume else [])


def plan(
    paths: Paths, force=(), minutes: dict | None = None, threads: int = 1, device: str | None = None
) -> list[Step]:
    """The steps of ``train all``, in order, each with its action and the reason for it (see the module doc)."""
    if paths.preset != "tiny":
        raise ValueError(f"--preset {paths.preset}: only 'tiny' trains end to end here (the paper-size LM loads "
                         "pretrained Qwen2.5 weights instead; see `minicosy train lm --help`).")
    force = set(STAGES if "all" in force else force)
    if unknown := sorted(force - set(STAGES)):
        raise ValueError(f"--force {unknown}: unknown stage(s); choose from {list(STAGES)} or 'all'.")
    minutes = minutes or {}
    state = _read_state(paths)
    runs, why = {}, {}
    for s in MODELS:  # model stages, in order: their own output, then what they are trained on
        exported = paths.output(s).is_file() and paths.output(s).with_suffix(".json").is_file()
        unfinished = state.get(s, {}).get("status") == "running"
        retrained = [d for d in TRAINED_ON.get(s, ()) if runs[d]]
        runs[s] = s in force or not exported or unfinished or bool(retrained)
        why[s] = ("forced" if s in force else f"{', '.join(retrained)} retrained" if retrained else
                  "an earlier run did not finish" if unfinished else "no export yet" if not exported else
                  f"export exists: {paths.output(s)}")
    tokens_stale = not _tokens_fresh(paths) or runs["tokenizer"]
    runs["tokens"] = "tokens" in force or (tokens_stale and any(runs[r] for r in READS["tokens"]))
    why["tokens"] = ("forced" if "tokens" in force else
                     f"needed by {', '.join(r for r in READS['tokens'] if runs[r])}" if runs["tokens"] else
                     "up to date" if not tokens_stale else "not needed (lm and flow are done)")
    have_corpus = paths.output("corpus").is_file()
    needing = [r for r in READS["corpus"] if runs[r]]
    runs["corpus"] = "corpus" in force or (not have_corpus and bool(needing))
    why["corpus"] = ("forced (resumable: existing files are kept)" if "corpus" in force else
                     f"missing, needed by {', '.join(needing)}" if runs["corpus"] else
                     "exists" if have_corpus else "not needed (every stage is done)")
    steps = []
    for s in STAGES:
        resume = (s in RUN_CKPT and runs[s] and s not in force and not any(runs[d] for d in TRAINED_ON.get(s, ()))
                  and (paths.run_dir(s) / RUN_CKPT[s]).is_file())
        action = "resume" if resume else "run" if runs[s] else "skip"
        reason = why[s] + (f"; resuming {paths.run_dir(s) / RUN_CKPT[s]}" if resume else "")
        m = minutes.get(s, minutes.get("*"))
        steps.append(Step(s, action, reason, _argv(s, paths, resume, m if s in MODELS else None, threads, device),
                          str(paths.output(s))))
    return steps


def _stage_parser(stage: str) -> argparse.ArgumentParser:
    """A parser holding only the stage's own command (its module's ``register_cli``): same options, same defaults."""
    import importlib

    module = {"corpus": "minicosy.data.corpus", "tokenizer": "minicosy.speech_tokenizer.train",
              "tokens": "minicosy.speech_tokenizer.corpus_tokens", "speaker": "minicosy.flow.train",
              "lm": "minicosy.lm.train", "flow": "minicosy.flow.train", "vocoder": "minicosy.vocoder.train"}[stage]
    parser = argparse.ArgumentParser(prog="minicosy")
    top = parser.add_subparsers(dest="command")
    groups = {
        name: top.add_parser(name).add_subparsers(dest=f"{name}_command") for name in ("data", "train", "eval", "text")
    }
    groups["top"] = top
    importlib.import_module(module).register_cli(groups)
    return parser


def train_all(paths: Paths, force=(), minutes: dict | None = None, threads: int = 1, device: str | None = None,
              dry_run: bool = False, log=print) -> list[Step]:
    """Run the plan of :func:`plan`, one progress line per stage; returns the steps."""
    steps = plan(paths, force, minutes, threads, device)
    n = len(steps)
    for k, step in enumerate(steps, 1):
        log(step.line(k, n))
    if dry_run:
        return steps
    t_all = time.perf_counter()
    for k, step in enumerate(steps, 1):
        if step.action == "skip":
            continue
        log(f"[{k}/{n}] {step.stage}: started ({step.action})")
        t0 = time.perf_counter()
        if step.stage in MODELS:
            _write_state(paths, step.stage, "running")
        args = _stage_parser(step.stage).parse_args(step.argv)
        args.func(args)
        if not Path(step.output).is_file():
            raise ValueError(f"stage {step.stage} ended without writing {step.output}; give it more --max-minutes.")
        if step.stage in MODELS:
            _write_state(paths, step.stage, "done")
        log(f"[{k}/{n}] {step.stage}: done in {(time.perf_counter() - t0) / 60:.1f} min → {step.output}")
    log(f"train all: finished in {(time.perf_counter() - t_all) / 60:.1f} min; checkpoints in {paths.export}")
    return steps


# ----------------------------------------------------------------------------- CLI


def parse_minutes(items) -> dict:
    """``["30", "lm=90"]`` → ``{"*": 30.0, "lm": 90.0}`` (a bare number: every model stage)."""
    out = {}
    for item in items or ():
        stage, _, value = item.rpartition("=")
        stage = stage or "*"
        if stage != "*" and stage not in MODELS:
            raise ValueError(f"--max-minutes {item}: {stage!r} is not a training stage ({', '.join(MODELS)}).")
        try:
            out[stage] = float(value)
        except ValueError:
            raise ValueError(f"--max-minutes {item}: give minutes, e.g. 30 or lm=90.") from None
        if out[stage] <= 0:
            raise ValueError(f"--max-minutes {item}: must be positive.")
    return out


def _cmd(args) -> int:
    paths = Paths(Path(args.corpus), Path(args.export or REPO_ROOT / "data" / "pretrained" / args.preset),
                  Path(args.runs), args.preset)
    train_all(paths, args.force or (), parse_minutes(args.max_minutes), args.threads, args.device, args.dry_run,
              log=lambda s: print(s, flush=True))
    return 0


def register_cli(groups) -> None:
    """``minicosy train all``."""
    p = groups["train"].add_parser("all", help="every stage in order (corpus → tokenizer → tokens → speaker → LM → "
                                   "flow → vocoder), skipping finished ones, resuming interrupted ones")
    p.add_argument("--preset", default="tiny", choices=["tiny"])
    p.add_argument("--corpus", default=str(DEFAULT_CORPUS_DIR), help="corpus folder (built here if a stage needs it)")
    p.add_argument("--export", default=None, help="checkpoint folder (default data/pretrained/<preset>)")
    p.add_argument("--runs", default=str(REPO_ROOT / "runs"), help="parent of the run folders (checkpoints, logs)")
    p.add_argument("--force", nargs="+", default=None, metavar="STAGE",
                   help=f"retrain these even if exported ({', '.join(STAGES)}, or all); what they feed retrains too")
    p.add_argument("--max-minutes", nargs="+", default=None, metavar="[STAGE=]MIN",
                   help="wall-clock budget of the training stages: 30 (each) and/or lm=90 flow=120")
    p.add_argument("--dry-run", action="store_true", help="print the plan (what runs, what resumes, why) and stop")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads of each trainer (the corpus build uses max(2, N) processes)",
    )
    p.add_argument("--device", default=None)
    p.set_defaults(func=_cmd)
