"""Measuring a trained speech tokenizer: what its tokens keep (content) and what they drop (speaker).

Stage: speech tokenizer, CosyVoice 2 §2.2 and §4 (the FSQ vs VQ comparison). ``minicosy eval
tokenizer`` writes every figure of the README's tokenizer table:

* codebook utilisation and perplexity (:func:`minicosy.speech_tokenizer.fsq.codebook_usage`);
* CER of the ASR head on the train voices and on held-out voices;
* **cross-voice token agreement**: the same sentence read by two different held-out voices should
  give similar token sequences, more similar than two different sentences read by one voice. Measured
  with ``difflib.SequenceMatcher.ratio`` on the raw sequences and with repeats collapsed
  (``a a b b b c`` → ``a b c``: a slower reader repeats tokens, the content does not change);
* a speaker-ID probe (logistic regression on mean-pooled token embeddings, vs the same probe on
  mean-pooled log-mel): lower on tokens means the tokens carry less of the speaker.

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §2.2, §4 (FSQ 100% vs VQ 23% code use).
    [2] Ratcliff & Obershelp pattern matching (Python's ``difflib.SequenceMatcher``).
"""

from __future__ import annotations

import difflib
import itertools
import json
from pathlib import Path

import numpy as np
import torch

from minicosy.data.manifest import read_manifest
from minicosy.speech_tokenizer.fsq import codebook_usage
from minicosy.speech_tokenizer.model import SpeechTokenizer
from minicosy.speech_tokenizer.train import cer, load_split, run_model
from minicosy.utils import DEFAULT_CHECKPOINT, DEFAULT_CORPUS_DIR, REPO_ROOT


def collapse_repeats(seq) -> list[int]:
    """``[5, 5, 7, 7, 7, 5]`` → ``[5, 7, 5]``."""
    return [k for k, _ in itertools.groupby(list(seq))]


def sequence_match(a, b, collapse: bool = False) -> float:
    """``difflib.SequenceMatcher`` ratio ``2·M / (|a| + |b|)`` of two token sequences, in [0, 1]."""
    a, b = [int(x) for x in a], [int(x) for x in b]
    if collapse:
        a, b = collapse_repeats(a), collapse_repeats(b)
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def cross_voice_agreement(texts: list[str], voices: list[str], tokens: list, only_voices=None) -> dict:
    """Same sentence by two voices vs two sentences by one voice.

    Args:
        texts, voices, tokens: one entry per utterance (``tokens``: sequences of ids).
        only_voices: restrict to these voices (e.g. the held-out ones).

    Returns:
        ``{"same_sentence": {"raw", "collapsed", "pairs"}, "different_sentence": {...},
        "margin": {"raw", "collapsed"}}`` — means over pairs; margin = same − different.
    """
    idx = [i for i, v in enumerate(voices) if only_voices is None or v in only_voices]
    by_text: dict[str, list[int]] = {}
    for i in idx:
        by_text.setdefault(texts[i], []).append(i)
    same = [(i, j) for group in by_text.values() for i, j in itertools.combinations(group, 2)
            if voices[i] != voices[j]]
    by_voice: dict[str, list[int]] = {}
    for i in idx:
        by_voice.setdefault(voices[i], []).append(i)
    diff = [(g[k], g[k + 1]) for g in by_voice.values() for k in range(len(g) - 1) if texts[g[k]] != texts[g[k + 1]]]
    if not same or not diff:
        raise ValueError("cross-voice agreement needs sentences read by two voices and two sentences by one voice.")

    def mean(pairs, collapse):
        return float(np.mean([sequence_match(tokens[i], tokens[j], collapse) for i, j in pairs]))

    out = {name: {"raw": mean(p, False), "collapsed": mean(p, True), "pairs": len(p)}
           for name, p in (("same_sentence", same), ("different_sentence", diff))}
    out["margin"] = {k: out["same_sentence"][k] - out["different_sentence"][k] for k in ("raw", "collapsed")}
    return out


def speaker_probe(features: torch.Tensor, voices: list[str], folds: int = 5, seed: int = 0) -> float:
    """Cross-validated accuracy of a logistic-regression speaker-ID probe on ``features (N, d)``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.array(voices)
    n_min = min(np.unique(y, return_counts=True)[1])
    if len(set(voices)) < 2 or n_min < 2:
        raise ValueError("speaker probe needs at least 2 voices with 2 utterances each.")
    cv = StratifiedKFold(n_splits=min(folds, n_min), shuffle=True, random_state=seed)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    return float(cross_val_score(clf, features.numpy(), y, cv=cv).mean())


def _agreement(data, res, held) -> dict | None:
    texts = [data[r["i"]]["text"] for r in res]
    voices = [data[r["i"]]["voice"] for r in res]
    try:
        return cross_voice_agreement(texts, voices, [r["tokens"] for r in res], only_voices=set(held))
    except ValueError:
        return None  # fewer than two held-out voices read a common sentence in this split


def evaluate_tokenizer(model: SpeechTokenizer, manifest, split: str = "valid", train_voices=None) -> dict:
    """The measured figures of one tokenizer on one split of a corpus.

    Returns a dict with codebook usage (utilisation, perplexity), CER of the ASR head on the
    train voices and on held-out voices (voices absent from the train split), and a speaker-ID
    probe accuracy on mean-pooled token embeddings vs mean-pooled log-mel (chance = 1 / voices).
    """
    data = load_split(manifest, split)
    if train_voices is None:
        train_voices = {u.voice for u in read_manifest(manifest, split="train")}
    train_voices = set(train_voices)
    res = run_model(model, data)
    voices = [data[r["i"]]["voice"] for r in res]
    held = sorted(set(voices) - train_voices)
    usage = codebook_usage(torch.cat([r["tokens"] for r in res]), model.codebook_size)
    return {
        "quantizer": model.cfg.label, "split": split, "n_utterances": len(data),
        **usage,
        "cer_train_voices": cer(data, res, train_voices), "cer_heldout_voices": cer(data, res, set(held)),
        "cer_per_voice": {v: round(cer(data, res, {v}), 4) for v in sorted(set(voices))},
        "heldout_voices": held,
        "cross_voice_agreement": _agreement(data, res, held),
        "speaker_probe": {"n_voices": len(set(voices)), "chance": 1 / len(set(voices)),
                          "tokens": speaker_probe(torch.stack([r["emb_mean"] for r in res]), voices),
                          "mel": speaker_probe(torch.stack([r["mel_mean"] for r in res]), voices)},
    }




def _eval_cmd(args) -> int:
    torch.set_num_threads(args.threads)
    manifest = Path(args.corpus) / "manifest.jsonl" if Path(args.corpus).is_dir() else Path(args.corpus)
    paths = args.checkpoint or [DEFAULT_CHECKPOINT / "speech_tokenizer", DEFAULT_CHECKPOINT / "vq_tokenizer"]
    rel = lambda p: str(Path(p).resolve().relative_to(REPO_ROOT) if Path(p).resolve().is_relative_to(REPO_ROOT)  # noqa: E731
                        else p)
    report = {"corpus": rel(manifest), "split": args.split, "results": {}}
    names = args.name or []
    if names and len(names) != len(paths):
        raise ValueError(f"{len(names)} --name for {len(paths)} --checkpoint: give one name per checkpoint.")
    for k, p in enumerate(paths):
        model = SpeechTokenizer.from_pretrained(p, device=args.device)
        r = evaluate_tokenizer(model, manifest, args.split)
        r["checkpoint"] = rel(p)
        r["trained"] = {k2: model.meta.get("trained", {}).get(k2) for k2 in ("steps", "minutes", "train_utterances")}
        name = names[k] if names else model.cfg.label
        if name in report["results"]:
            raise ValueError(f"two checkpoints would both be reported as {name!r}: name them with --name.")
        report["results"][name] = r
        print(
            f"{name} ({model.cfg.label}): utilisation {r['utilisation']:.3f} ({r['codes_used']}/{r['codebook_size']}), "
            f"perplexity {r['perplexity']:.1f}, CER train voices {r['cer_train_voices']:.3f}, held-out "
            f"{r['cer_heldout_voices']:.3f}, speaker probe tokens {r['speaker_probe']['tokens']:.3f} vs mel "
            f"{r['speaker_probe']['mel']:.3f} (chance {r['speaker_probe']['chance']:.3f})"
        )
        agree = r["cross_voice_agreement"]
        if agree:
            print(f"  cross-voice agreement (held-out): same sentence {agree['same_sentence']['raw']:.3f} / "
                  f"{agree['same_sentence']['collapsed']:.3f} (raw / collapsed) vs different sentences "
                  f"{agree['different_sentence']['raw']:.3f} / {agree['different_sentence']['collapsed']:.3f}: "
                  f"margin {agree['margin']['raw']:+.3f} / {agree['margin']['collapsed']:+.3f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0




def register_cli(groups) -> None:
    e = groups["eval"].add_parser("tokenizer", help="codebook use, CER and speaker probe of trained tokenizers")
    e.add_argument("--checkpoint", action="append", default=None, help="tokenizer stem(s); default: tiny FSQ + VQ")
    e.add_argument("--name", action="append", default=None,
                   help="a name per --checkpoint for the report (default: its quantizer, fsq / vq / vq-plain)")
    e.add_argument("--corpus", default=str(DEFAULT_CORPUS_DIR))
    e.add_argument("--split", default="valid", choices=["valid", "test", "natural"])
    e.add_argument("--out", default=None, help="JSON file for the figures")
    e.add_argument("--device", default=None)
    e.add_argument("--threads", type=int, default=1)
    e.set_defaults(func=_eval_cmd)
