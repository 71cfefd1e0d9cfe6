"""``minicosy demo`` — the project's main job, end to end as far as the stages reach.

Today (foundation): build a small slice of the offline multi-speaker corpus with the Debian TTS
engines, print the corpus figures (voices, splits, hours), then judge the recordings with the
independent judges (pocketsphinx WER per voice, resemblyzer speaker similarity between voices).
Later stages extend this job to speech tokens, the LM, flow matching and the vocoder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from minicosy.utils import REPO_ROOT

DEMO_DIR = REPO_ROOT / "data" / "demo"


def run_demo(out: str | Path = DEMO_DIR, per_voice: int = 2, n_test: int = 3, jobs: int = 2,
             seed: int = 0) -> dict:
    """Build the demo slice and judge it. Returns the corpus summary and the judges' report."""
    from minicosy.data.corpus import build_corpus, summarize
    from minicosy.judges import groundtruth_report

    out = Path(out)
    t0 = time.perf_counter()
    utts = build_corpus(out, per_voice=per_voice, n_valid=1, n_test=n_test, seed=seed, jobs=jobs,
                        progress=False)
    t_build = time.perf_counter() - t0
    summary = summarize(utts)
    report = groundtruth_report(out / "manifest.jsonl", split="test", jobs=jobs)
    return {"corpus": summary, "build_seconds": round(t_build, 1), "judges": report}


def _cmd_demo(args) -> int:
    from minicosy.judges import report_markdown

    print(f"[demo] building a small corpus slice in {args.out} "
          f"({args.per_voice} train + 1 valid + {args.test} test sentences per voice) ...", flush=True)
    res = run_demo(args.out, args.per_voice, args.test, args.jobs, args.seed)
    s = res["corpus"]
    print(f"[demo] corpus: {s['utterances']} utterances, {s['hours'] * 60:.1f} min of audio, "
          f"{len(s['voices'])} voices, built in {res['build_seconds']:.0f} s")
    print(f"{'voice':18s} {'train':>6s} {'valid':>6s} {'test':>6s} {'minutes':>8s}")
    for vid, d in s["voices"].items():
        print(f"{vid:18s} {d['train']:6d} {d['valid']:6d} {d['test']:6d} {d['hours'] * 60:8.2f}")
    print("\n[demo] independent judges on the test recordings:\n")
    print(report_markdown(res["judges"]))
    (Path(args.out) / "demo_report.json").write_text(json.dumps(res, indent=1) + "\n")
    print(f"[demo] full report: {Path(args.out) / 'demo_report.json'}")
    return 0


def register_cli(groups) -> None:
    p = groups["top"].add_parser("demo", help="build a small corpus slice and print corpus + judge figures")
    p.add_argument("--out", default=str(DEMO_DIR))
    p.add_argument("--per-voice", type=int, default=2, help="train sentences per train voice")
    p.add_argument("--test", type=int, default=3, help="test sentences per voice")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_demo)
