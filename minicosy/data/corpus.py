"""The offline multi-speaker corpus: classic TTS engines read generated sentences.

Stage: data (docs/paper_vs_code.md §3). CosyVoice 2 trains on a large corpus of real speech [1]; here nothing
can be downloaded, so the TTS engines Debian ships read sentences the project builds: the voices, their
engines and the pseudo-speaker transforms are in ``minicosy.data.voices``; this module plans who reads
what (``plan_corpus``) and builds it (``build_corpus``).

Text (version 3, the default) comes from ``minicosy.data.textbank`` — WordNet gloss examples and
a WordNet grammar, each sentence with a written and a spoken form — plus the hand-written
``natural`` split that every voice reads; version 2's ``minicosy.data.sentences`` stays available
(``version=2``). The split is at the sentence level, so test sentences are never heard in training.
Audio is stored as 16-bit FLAC at the engine's native rate,
trimmed of long leading/trailing silence and peak-normalised; ``manifest.jsonl`` describes it.
The build runs over a process pool and is resumable (existing valid files are kept).

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §3 (training data).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from minicosy.data.manifest import SPLITS, Utterance, read_manifest, write_manifest
from minicosy.data.voices import (  # noqa: F401  (the voice table is part of the corpus API)
    DEFAULT_VARIANTS,
    DEFAULT_VARIANTS_V2,
    ENGINE_BINARY,
    HELDOUT_VOICES,
    TRAIN_VOICES,
    VARIANTS,
    VOICE_BY_ID,
    VOICES,
    Variant,
    Voice,
    _read_wav,
    apply_variant,
    check_engines,
    default_variants,
    is_variant,
    split_voice_id,
    synthesize,
    variant_voice_id,
)
from minicosy.utils import DEFAULT_CORPUS_DIR, FIXTURES_DIR

#: Size of the version-2 sentence pool a build draws from (split into train/valid/test pools). With
#: the default 400 per voice, the 8 train voices read 3,200 different sentences of the 3,600 train ones.
#: Version 3's bank holds ``minicosy.data.textbank.N_BANK`` (66,000) sentences.
N_SENTENCES = 4000
#: Default train utterances per train voice, by corpus version. Version 3: 1,900 each, so 28 train
#: voices read 53,200 different sentences (mostly disjoint windows of the 65,600-sentence train pool).
PER_VOICE = {2: 400, 3: 1900}


#: Valid/test windows are laid out for ``POOL_VOICES`` voices: v2 voice ``10 + i`` reads the
#: valid/test sentences of v1 voice ``i``.
#: That keeps v1's split (and its figures) unchanged and gives every valid/test sentence two
#: readers — held-out pairs ``mbrola_us3``/``pico_en_gb`` and ``mbrola_en1``/``rhvoice_lyubov``
#: read the same sentences, which cross-voice token agreement needs.
POOL_VOICES = 10



# ----------------------------------------------------------------------------- planning


def plan_corpus(per_voice: int | None = None, n_valid: int = 20, n_test: int = 20, voices=None,
                variants=None, variant_fraction: float = 0.5, seed: int = 0,
                max_words: int | None = None, variant_of=None, version: int = 3,
                natural: bool = True) -> list[dict]:
    """Decide every utterance of a build (which voice reads which sentence), deterministically.

    Sentences: version 3 (default) draws from :func:`minicosy.data.textbank.split_bank` (WordNet
    examples + the WordNet grammar, written and spoken forms); version 2 from
    ``generate_sentences`` → ``split_sentences_pool``. Both split at the sentence level. Train
    voice *i* (its index in ``TRAIN_VOICES``, so the choice does not depend on ``voices``) reads
    a window of ``per_voice`` train sentences starting at ``i·per_voice`` (cyclic), so voices
    read different sentences; valid/test windows work the same way over the voice index
    modulo ``POOL_VOICES`` (10), so every valid/test sentence has several readers. In version 3
    every voice, train and held out, also reads the whole hand-written ``natural`` set (unless
    ``natural=False``). Each train voice in ``variant_of`` (default: all) gets each variant
    (``variants``, or by default ``default_variants(voice)``) on a seeded subset of
    ``ceil(variant_fraction · per_voice)`` of its train utterances.

    Args:
        per_voice: train utterances per train voice; default ``PER_VOICE[version]``.
        max_words: keep only sentences of at most this many (spoken) words.
        version: 3 (corpus v3 text) or 2 (the v2 template sentences, reproduced exactly).

    Returns:
        jobs: one dict per base utterance ``{voice, split, index, text, variants: [suffix]}``
        (``text``: the spoken form the engines read); version 3 adds ``written`` (the form as
        people type it) and ``source`` (``wordnet-examples``, ``grammar`` or ``natural``).
    """
    if version not in PER_VOICE:
        raise ValueError(f"unknown corpus version {version!r}; choose 2 or 3.")
    per_voice = PER_VOICE[version] if per_voice is None else per_voice
    voices = list(voices) if voices is not None else [v.id for v in VOICES]
    for v in voices:
        if v not in VOICE_BY_ID:
            raise ValueError(f"unknown voice {v!r}; choose from {list(VOICE_BY_ID)}.")
    for s in variants or ():
        if s not in VARIANTS:
            raise ValueError(f"unknown variant {s!r}; choose from {list(VARIANTS)}.")
    if min(per_voice, n_valid, n_test) < 0 or not 0 <= variant_fraction <= 1:
        raise ValueError("per_voice, n_valid and n_test must be ≥ 0 and variant_fraction in [0, 1].")
    variant_of = set(TRAIN_VOICES if variant_of is None else variant_of)
    if variant_of - set(TRAIN_VOICES):
        raise ValueError(f"variants are for train voices only, not {sorted(variant_of - set(TRAIN_VOICES))}.")
    pools = (_pools_v3(n_valid, n_test, seed, max_words, natural) if version == 3
             else _pools_v2(n_valid, n_test, seed, max_words))
    all_ids = [v.id for v in VOICES]

    def window(pool, start, n):
        return [pool[(start + k) % len(pool)] for k in range(n)]

    jobs = []
    for vid in voices:
        role = VOICE_BY_ID[vid].role
        counts = {"train": per_voice if role == "train" else 0, "valid": n_valid, "test": n_test,
                  "natural": len(pools.get("natural", ()))}
        for split in SPLITS:
            n = counts[split] if split in pools else 0
            if n == 0:
                continue
            pos = TRAIN_VOICES.index(vid) if split == "train" else all_ids.index(vid) % POOL_VOICES
            texts = pools["natural"] if split == "natural" else window(pools[split], pos * n, n)
            chosen = {}
            if split == "train" and vid in variant_of:
                k = math.ceil(variant_fraction * n)
                for s in (default_variants(vid, version) if variants is None else variants):
                    rng = random.Random(f"minicosy-variant-{seed}-{vid}-{s}")
                    for i in rng.sample(range(n), k):
                        chosen.setdefault(i, []).append(s)
            for i, entry in enumerate(texts):
                text = entry["text"] if isinstance(entry, dict) else entry
                job = {"voice": vid, "split": split, "index": i, "text": text,
                       "variants": sorted(chosen.get(i, []))}
                if isinstance(entry, dict):
                    job |= {"written": entry["written"], "source": entry["source"]}
                jobs.append(job)
    return jobs


def _pools_v2(n_valid: int, n_test: int, seed: int, max_words: int | None) -> dict[str, list[str]]:
    """Version 2's pools: 4,000 template sentences, split as v1/v2 did (kept bit for bit)."""
    from minicosy.data.sentences import generate_sentences, split_sentences_pool, words

    pool_v, pool_t = max(200, n_valid * POOL_VOICES), max(200, n_test * POOL_VOICES)
    sentences = generate_sentences(max(N_SENTENCES, 2 * (pool_v + pool_t)), seed)
    if max_words is not None:
        sentences = [s for s in sentences if len(words(s)) <= max_words]
        pool_v, pool_t = min(pool_v, len(sentences) // 4), min(pool_t, len(sentences) // 4)
    return split_sentences_pool(sentences, seed, n_valid=pool_v, n_test=pool_t)


def _pools_v3(n_valid: int, n_test: int, seed: int, max_words: int | None, natural: bool) -> dict[str, list[dict]]:
    """Version 3's pools of ``{written, text, source}`` entries (see :mod:`minicosy.data.textbank`)."""
    from minicosy.data.sentences import words
    from minicosy.data.textbank import split_bank

    pool_v, pool_t = max(200, n_valid * POOL_VOICES), max(200, n_test * POOL_VOICES)
    pools = split_bank(seed, n_valid=pool_v, n_test=pool_t)
    if max_words is not None:
        pools = {k: [e for e in v if len(words(e["text"])) <= max_words] for k, v in pools.items()}
    if not natural:
        pools.pop("natural")
    return pools


def _utt_id(voice: str, split: str, index: int) -> str:
    return f"{voice}-{split}-{index:05d}"


def _valid_audio(path: Path, text: str | None = None) -> bool:
    """A file we can keep on resume: readable by libsndfile, non-empty and, when ``text`` is
    given, holding that transcript in its comment tag (so a changed sentence list re-synthesises)."""
    import soundfile as sf

    try:
        if not path.is_file():
            return False
        with sf.SoundFile(str(path)) as f:
            return f.frames > 0 and (text is None or f.comment == text)
    except Exception:
        return False


def _write_flac(path: Path, wav: np.ndarray, sr: int, text: str, voice: str) -> None:
    """Write 16-bit FLAC atomically (tmp file + rename) so an interrupted build leaves no half
    file; the transcript goes in the comment tag, the voice id in the title tag."""
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with sf.SoundFile(str(tmp), "w", sr, 1, format="FLAC", subtype="PCM_16") as f:
        f.comment, f.title = text, voice
        f.write(np.clip(wav, -1, 1))
    os.replace(tmp, path)


def _run_job(job: dict, out: str) -> list[dict]:
    """Synthesise one base utterance and its variants (skipping valid existing files).

    Returns the manifest rows, or one ``{"failed": True, ...}`` row when the engine cannot read
    the sentence (the build skips it and counts it in ``build_info.json``).
    """
    import soundfile as sf

    out = Path(out)
    rows, base = [], None
    entries = [(job["voice"], None)] + [(variant_voice_id(job["voice"], s), s) for s in job["variants"]]
    for vid, suffix in entries:  # the base voice first: its file is there before the variants
        uid = _utt_id(vid, job["split"], job["index"])
        rel = Path("audio") / vid / f"{uid}.flac"
        made = not _valid_audio(out / rel, job["text"])
        if made and suffix is None:
            try:
                wav, sr = synthesize(vid, job["text"])
            except (ValueError, subprocess.TimeoutExpired) as exc:  # one bad sentence must not stop a build
                return [{"failed": True, "voice": vid, "split": job["split"], "index": job["index"],
                         "text": job["text"], "error": str(exc)[:300]}]
            _write_flac(out / rel, wav, sr, job["text"], vid)
        elif made:
            # Variants start from the *stored* 16-bit base file, never from the float array in
            # memory: sox's WSOLA pitch shift makes discrete choices that tiny input differences
            # can flip, so this is what makes a resumed build equal a clean one, sample for sample.
            if base is None:
                base = _read_wav(str(out / rows[0]["path"]))
            _write_flac(out / rel, apply_variant(*base, suffix), base[1], job["text"], vid)
        info = sf.info(str(out / rel))
        rows.append(dict(id=uid, voice=vid, text=job["text"], path=rel.as_posix(),
                         duration=round(info.frames / info.samplerate, 4),
                         sample_rate=int(info.samplerate), split=job["split"], made=made))
    return rows


def _run_job_star(args):
    return _run_job(*args)


# ----------------------------------------------------------------------------- build


def build_corpus(out=DEFAULT_CORPUS_DIR, per_voice: int | None = None, n_valid: int = 20, n_test: int = 20,
                 voices=None, variants=None, variant_fraction: float = 0.5, seed: int = 0,
                 jobs: int = 2, max_words: int | None = None, variant_of=None,
                 progress: bool = True, plan: list[dict] | None = None, version: int = 3,
                 natural: bool = True) -> list[Utterance]:
    """Build (or resume) a corpus in ``out``: audio/…/*.flac, manifest.jsonl, build_info.json.

    ``build_info.json`` holds the seed, the options, the seconds taken, how many files were made
    and how many reused (a resumed build is fast), the sentences an engine failed on (skipped,
    not fatal: ``failures``), and ``summarize``'s counts and hours.
    ``plan`` (a list of :func:`plan_corpus` jobs) replaces the plan the other options describe.

    Returns:
        the utterances written to the manifest.
    """
    t0 = time.time()
    if plan is None:
        plan = plan_corpus(per_voice, n_valid, n_test, voices, variants, variant_fraction, seed,
                           max_words, variant_of, version, natural)
    check_engines(sorted({j["voice"] for j in plan}))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = _synthesise(plan, out, jobs, progress)
    failures = [r for r in rows if r.get("failed")]
    rows = [r for r in rows if not r.get("failed")]
    made = sum(r.pop("made") for r in rows)
    utts = [Utterance(**r) for r in rows]
    write_manifest(out / "manifest.jsonl", utts)
    info = {"seed": seed, "version": version, "per_voice": per_voice, "valid": n_valid, "test": n_test,
            "variants": (DEFAULT_VARIANTS_V2 if version <= 2 else DEFAULT_VARIANTS) if variants is None
            else list(variants),
            "variant_fraction": variant_fraction,
            "seconds": round(time.time() - t0, 1), "files_made": made, "files_reused": len(utts) - made,
            "failed": len(failures), "failure_rate": round(len(failures) / max(1, len(plan)), 5),
            "failures": [{k: r[k] for k in ("voice", "split", "index", "text", "error")} for r in failures],
            **summarize(utts)}
    (out / "build_info.json").write_text(json.dumps(info, indent=1) + "\n")
    return utts


def _synthesise(plan: list[dict], out: Path, jobs: int, progress: bool) -> list[dict]:
    """Run every job of ``plan`` (over ``jobs`` processes); manifest rows in plan order."""
    from tqdm import tqdm

    rows = []
    bar = tqdm(total=len(plan), desc="synthesising", unit="utt", file=sys.stderr, disable=not progress)
    work = [(j, str(out)) for j in plan]
    if jobs <= 1:
        for args in work:
            rows.extend(_run_job_star(args))
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=jobs) as ex:
            for r in ex.map(_run_job_star, work, chunksize=4):
                rows.extend(r)
                bar.update()
    bar.close()
    return rows


def summarize(utts) -> dict:
    """Counts and hours per split and per voice."""
    by_split = {s: {"utterances": 0, "hours": 0.0} for s in SPLITS}
    by_voice: dict[str, dict] = {}
    for u in utts:
        by_split[u.split]["utterances"] += 1
        by_split[u.split]["hours"] += u.duration / 3600
        d = by_voice.setdefault(u.voice, {s: 0 for s in SPLITS} | {"hours": 0.0})
        d[u.split] += 1
        d["hours"] += u.duration / 3600
    for d in list(by_split.values()) + list(by_voice.values()):
        d["hours"] = round(d["hours"], 3)
    return {"utterances": len(utts), "hours": round(sum(u.duration for u in utts) / 3600, 3),
            "splits": by_split, "voices": dict(sorted(by_voice.items()))}


#: What ``minicosy data fixtures`` builds: short sentences (≤ 6 words), one train/valid/test
#: utterance per v1 voice (valid/test only for held-out ones), both default variants of two voices,
#: and one test utterance of each v2 voice (what the 2 MB budget allows).
#: The fixtures keep the version-2 text, so the committed audio stays valid as the corpus grows.
FIXTURE_PLAN = dict(per_voice=1, n_valid=1, n_test=1, variants=None, variant_fraction=1.0, version=2,
                    max_words=6, variant_of=("flite_awb", "mbrola_us1"))
FIXTURE_V2_PLAN = dict(per_voice=0, n_valid=0, n_test=1, variants=(), max_words=6, version=2)
FIXTURE_V1_VOICES = [v.id for v in VOICES[:POOL_VOICES]]


def fixture_plan(seed: int = 0) -> list[dict]:
    """The jobs of the committed fixture slice (v1 voices in full, one test clip per v2 voice)."""
    v2 = [v.id for v in VOICES[POOL_VOICES:]]
    return (plan_corpus(seed=seed, voices=FIXTURE_V1_VOICES, **FIXTURE_PLAN)
            + plan_corpus(seed=seed, voices=v2, **FIXTURE_V2_PLAN))


def build_fixtures(out=FIXTURES_DIR, seed: int = 0) -> list[Utterance]:
    """The small committed slice (:func:`fixture_plan`) that tests and notebooks use without engines."""
    out = Path(out)
    if (out / "audio").is_dir():
        shutil.rmtree(out / "audio")
    return build_corpus(out, seed=seed, jobs=2, progress=False, plan=fixture_plan(seed))


# ----------------------------------------------------------------------------- CLI


def _cmd_build(args) -> int:
    voices = args.voices.split(",") if args.voices else None
    if not args.variants:
        variants = ()
    else:
        variants = tuple(args.variant_set.split(",")) if args.variant_set else None
    utts = build_corpus(args.out, args.per_voice, args.valid, args.test, voices, variants,
                        args.variant_fraction, args.seed, args.jobs, version=args.corpus_version,
                        natural=args.natural)
    s = summarize(utts)
    print(f"wrote {len(utts)} utterances ({s['hours']:.2f} h) to {Path(args.out) / 'manifest.jsonl'}")
    return 0


def _cmd_fixtures(args) -> int:
    utts = build_fixtures(args.out, args.seed)
    size = sum(p.stat().st_size for p in Path(args.out).rglob("*") if p.is_file())
    print(f"wrote {len(utts)} fixture utterances, {size / 1e6:.2f} MB, to {args.out}")
    return 0


def _cmd_info(args) -> int:
    print(f"{'voice':18s} {'engine':9s} {'rate':>6s}  role     register engine voice")
    for v in VOICES:
        print(f"{v.id:18s} {v.engine:9s} {v.rate:6d}  {v.role:8s} {v.register:8s} {v.name}")
    print("variants (train voices only): "
          + ", ".join(f"{k} = " + (f"sox {' '.join(v.effects)}" if v.effects else f"formant warp {v.warp}")
                      for k, v in VARIANTS.items()))
    print(f"default variants by register: {DEFAULT_VARIANTS}")
    path = Path(args.corpus)
    if not (path / "manifest.jsonl" if path.is_dir() else path).is_file():
        print(f"no manifest at {path}; build one with `minicosy data build`.")
        return 0
    s = summarize(read_manifest(path))
    print(f"\n{s['utterances']} utterances, {s['hours']:.2f} h")
    print(f"{'voice':22s} {'train':>6s} {'valid':>6s} {'test':>6s} {'hours':>7s}")
    for vid, d in s["voices"].items():
        print(f"{vid:22s} {d['train']:6d} {d['valid']:6d} {d['test']:6d} {d['hours']:7.3f}")
    for split, d in s["splits"].items():
        print(f"{split:22s} {d['utterances']:6d} utterances {d['hours']:7.3f} h")
    return 0


def register_cli(groups) -> None:
    data = groups["data"]
    p = data.add_parser("build", help="synthesise the offline multi-speaker corpus (docs/paper_vs_code.md §3)")
    p.add_argument("--out", default=str(DEFAULT_CORPUS_DIR), help="output folder (default data/corpus)")
    p.add_argument("--per-voice", type=int, default=None,
                   help=f"train utterances per train voice (default by version: {PER_VOICE})")
    p.add_argument("--corpus-version", type=int, default=3, choices=sorted(PER_VOICE),
                   help="3 (default): WordNet examples + grammar text and the natural split; 2: v2's templates")
    p.add_argument("--natural", action=argparse.BooleanOptionalAction, default=True,
                   help="version 3: every voice reads the hand-written natural set (default on)")
    p.add_argument("--valid", type=int, default=20, help="valid utterances per voice")
    p.add_argument("--test", type=int, default=20, help="test utterances per voice")
    p.add_argument("--voices", default=None, help="comma-separated voice ids (default: all)")
    p.add_argument("--variants", action=argparse.BooleanOptionalAction, default=True,
                   help="add pseudo-speaker copies of train voices (default on)")
    p.add_argument("--variant-set", default=None, help=f"comma-separated, from {list(VARIANTS)}; "
                   f"default by register: {DEFAULT_VARIANTS}")
    p.add_argument("--variant-fraction", type=float, default=0.5,
                   help="share of a voice's train utterances that each variant copies")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2, help="worker processes")
    p.set_defaults(func=_cmd_build)
    f = data.add_parser("fixtures", help="regenerate the small committed slice in data/fixtures")
    f.add_argument("--out", default=str(FIXTURES_DIR))
    f.add_argument("--seed", type=int, default=0)
    f.set_defaults(func=_cmd_fixtures)
    i = data.add_parser("info", help="voices table, and counts/hours per voice and split of a manifest")
    i.add_argument("corpus", nargs="?", default=str(DEFAULT_CORPUS_DIR), help="corpus folder or manifest.jsonl")
    i.set_defaults(func=_cmd_info)
    t = data.add_parser("text-stats", help="corpus v3 text: sentences, words, coverage, lengths, sources")
    t.add_argument("--per-voice", type=int, default=None, help="as for `data build`")
    t.add_argument("--corpus-version", type=int, default=3, choices=sorted(PER_VOICE))
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--json", default=None, help="also write the figures to this JSON file")
    t.set_defaults(func=_cmd_text_stats)


def _cmd_text_stats(args) -> int:
    from minicosy.data.textbank import text_stats

    stats = text_stats(plan_corpus(args.per_voice, seed=args.seed, version=args.corpus_version, variants=()))
    for k, v in stats.items():
        if k not in ("length_histogram", "frequent_missing"):
            print(f"{k:24s} {v}")
    print("length (words)  " + "  ".join(f"{b}: {n}" for b, n in stats["length_histogram"].items()))
    if stats.get("frequent_missing"):
        print(f"frequent words missing   {' '.join(stats['frequent_missing'])}")
    if args.json:
        Path(args.json).write_text(json.dumps(stats, indent=1) + "\n")
    return 0
