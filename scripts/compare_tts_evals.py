"""Two `minicosy eval tts` reports side by side, on the utterances both judged.

Two systems judged on the same split have different voice groups (a voice one system was trained on is
"held out" for the other), so their summary tables do not compare. This script keeps the utterances present
in both reports (the same ids, the same scenario), groups them by the *newer* report's groups, and prints,
per group and scenario, the pooled WER of each system beside the recordings' WER on those utterances, and the
share whose output's nearest voice is the target. Markdown on stdout, the same figures as JSON with ``--json``.

    python scripts/compare_tts_evals.py results/tts_eval_v2_natural.json results/tts_eval_v3_natural.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from minicosy.judges import wer


def _rows(report: dict) -> dict:
    return {(scenario, u["id"]): u for scenario, rows in report["utterances"].items() for u in rows}


def compare(old: dict, new: dict) -> list[dict]:
    """Per (group of ``new``, scenario): n, WER old / new / recordings, nearest = target old / new."""
    a, b = _rows(old), _rows(new)
    recordings = {r["id"]: r for r in new["recordings"]}
    group_of = {r["id"]: r["group"] for r in new["recordings"]}
    out = []
    for scenario in new["utterances"]:
        for group in dict.fromkeys(group_of.values()):
            ids = [i for (s, i) in b if s == scenario and (s, i) in a and group_of.get(i) == group]
            if not ids:
                continue
            refs = [b[(scenario, i)]["reference"] for i in ids]
            out.append({
                "group": group, "scenario": scenario, "n": len(ids),
                "wer_old": round(wer(refs, [a[(scenario, i)]["hypothesis"] for i in ids]), 3),
                "wer_new": round(wer(refs, [b[(scenario, i)]["hypothesis"] for i in ids]), 3),
                "wer_recording": round(wer(refs, [recordings[i]["hypothesis"] for i in ids]), 3),
                "nearest_old": round(sum(a[(scenario, i)]["nearest_voice"] == a[(scenario, i)]["voice"]
                                         for i in ids) / len(ids), 3),
                "nearest_new": round(sum(b[(scenario, i)]["nearest_voice"] == b[(scenario, i)]["voice"]
                                         for i in ids) / len(ids), 3),
            })
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old", type=Path)
    p.add_argument("new", type=Path)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    rows = compare(json.loads(args.old.read_text()), json.loads(args.new.read_text()))
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print("| voices (new system's groups) | scenario | utt. | recording WER | old WER | new WER | nearest old / new |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['group']} | {r['scenario']} | {r['n']} | {r['wer_recording']:.3f} | {r['wer_old']:.3f} | "
              f"{r['wer_new']:.3f} | {r['nearest_old']:.0%} / {r['nearest_new']:.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
