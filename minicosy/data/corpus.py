"""The offline multi-speaker corpus: classic TTS engines read generated sentences.

Stage: data (docs/paper_vs_code.md §3). CosyVoice 2 trains on a large corpus of real speech [1]; here nothing
can be downloaded, so we build a small corpus from the TTS engines Debian ships: flite,
festival (``text2wave``), espeak-ng driving mbrola voices, RHVoice and SVOX Pico. Version 2 has
twenty base voices (``VOICES``; v1 had the first ten):

* 16 **train** voices (``TRAIN_VOICES``), among them two accented mbrola voices reading English;
* 4 **held-out** voices (``HELDOUT_VOICES``: ``mbrola_us3, mbrola_en1, pico_en_gb,
  rhvoice_lyubov``) — valid/test only, for zero-shot tests.

Why pseudo-speakers? Measured with resemblyzer (docs/paper_vs_code.md §3), several engines share a
speaker (flite_kal16 = festival_kal; flite_slt, festival_slt_hts and rhvoice_slt are one voice), so
the 16 train voices hold about 13 distinct speakers: few for the flow model to learn what "a new
voice" is. We therefore add, *to the training split only*, transformed copies of train voices:
``sox pitch`` shifts the pitch and, because it is a time-stretch followed by a resample, the
formants too — roughly a different vocal-tract length, i.e. a new-sounding speaker. By default
each train voice gets two settings, shifted towards the middle of the human range (male voices up
2 and 4 semitones, female voices down 2 and 4), because the other direction wrecks
intelligibility (``minicosy.judges.judge_variants``). Each setting is its own voice id
(``flite_awb_p+2``): 16 base + 32 pseudo-speakers in training. Held-out voices and any transform
of them never enter training.

Text comes from ``minicosy.data.sentences`` with a sentence-level split, so test sentences are
never heard in training either. Audio is stored as 16-bit FLAC at the engine's native rate,
trimmed of long leading/trailing silence and peak-normalised; ``manifest.jsonl`` describes it.
The build runs over a process pool and is resumable (existing valid files are kept).

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §3 (training data).
    [2] Black & Lenzo, "Flite: a small fast run-time synthesis engine", SSW 2001.
    [3] Dutoit et al., "The MBROLA project", ICSLP 1996.
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
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minicosy.data.manifest import SPLITS, Utterance, read_manifest, write_manifest
from minicosy.utils import DEFAULT_CORPUS_DIR, FIXTURES_DIR

# ----------------------------------------------------------------------------- voices


@dataclass(frozen=True)
class Voice:
    id: str       # voice id in the manifest
    engine: str   # "flite" | "festival" | "mbrola"
    name: str     # the engine's own name for the voice
    rate: int     # native sample rate in Hz (what the engine writes)
    role: str     # "train" (all splits) or "heldout" (valid/test only: zero-shot)
    register: str  # "low" (male) or "high" (female) voice: decides the default variants
    packages: str  # Debian packages that provide it


VOICES = [
    # --- version 1: eight train voices, two held out (order kept: it decides who reads what)
    Voice("flite_awb", "flite", "awb", 16000, "train", "low", "flite"),
    Voice("flite_rms", "flite", "rms", 16000, "train", "low", "flite"),
    Voice("flite_slt", "flite", "slt", 16000, "train", "high", "flite"),
    Voice("flite_kal16", "flite", "kal16", 16000, "train", "low", "flite"),
    Voice("festival_kal", "festival", "voice_kal_diphone", 16000, "train", "low", "festival festvox-kallpc16k"),
    Voice("festival_slt_hts", "festival", "voice_cmu_us_slt_arctic_hts", 32000, "train", "high",
          "festival festvox-us-slt-hts"),
    Voice("mbrola_us1", "mbrola", "mb-us1", 16000, "train", "high", "espeak-ng mbrola mbrola-us1"),
    Voice("mbrola_us2", "mbrola", "mb-us2", 16000, "train", "low", "espeak-ng mbrola mbrola-us2"),
    Voice("mbrola_us3", "mbrola", "mb-us3", 16000, "heldout", "low", "espeak-ng mbrola mbrola-us3"),
    Voice("mbrola_en1", "mbrola", "mb-en1", 16000, "heldout", "low", "espeak-ng mbrola mbrola-en1"),
    # --- version 2: eight more train voices (about seven new speakers), two more held out
    Voice("festival_rab", "festival", "voice_rab_diphone", 16000, "train", "low", "festival festvox-rablpc16k"),
    Voice("mbrola_de5_en", "mbrola", "mb-de5-en", 22050, "train", "high", "espeak-ng mbrola mbrola-de5"),
    Voice("mbrola_fr1_en", "mbrola", "mb-fr1-en", 16000, "train", "low", "espeak-ng mbrola mbrola-fr1"),
    Voice("rhvoice_alan", "rhvoice", "alan", 24000, "train", "low", "rhvoice rhvoice-english"),
    Voice("rhvoice_bdl", "rhvoice", "bdl", 24000, "train", "low", "rhvoice rhvoice-english"),
    Voice("rhvoice_slt", "rhvoice", "slt", 24000, "train", "high", "rhvoice rhvoice-english"),
    Voice("rhvoice_evgeniy", "rhvoice", "evgeniy-eng", 24000, "train", "low", "rhvoice rhvoice-english"),
    Voice("pico_en_us", "pico", "en-US", 16000, "train", "high", "libttspico-utils"),
    Voice("pico_en_gb", "pico", "en-GB", 16000, "heldout", "high", "libttspico-utils"),
    Voice("rhvoice_lyubov", "rhvoice", "lyubov", 24000, "heldout", "high", "rhvoice rhvoice-english"),
]
VOICE_BY_ID = {v.id: v for v in VOICES}
TRAIN_VOICES = [v.id for v in VOICES if v.role == "train"]
HELDOUT_VOICES = [v.id for v in VOICES if v.role == "heldout"]


@dataclass(frozen=True)
class Variant:
    suffix: str        # appended to the voice id: flite_awb + "_p+3"
    effects: tuple     # sox effect chain
    description: str


VARIANTS = {f"p{k:+d}": Variant(f"p{k:+d}", ("pitch", str(100 * k)),
                                f"pitch and formants {'up' if k > 0 else 'down'} {abs(k)} semitone(s)")
            for k in (-5, -4, -3, -2, -1, 1, 2, 3, 4, 5)}
VARIANTS["s+8"] = Variant("s+8", ("speed", "1.08"), "8% faster: tempo, pitch and formants up together")
VARIANTS["s-8"] = Variant("s-8", ("speed", "0.92"), "8% slower: tempo, pitch and formants down together")
#: Default pseudo-speakers per register: shift *towards the middle* of the human range. Measured
#: with ``minicosy data judge-variants`` (pocketsphinx WER on 6 test sentences a voice): the five
#: male voices (WER 0.07–0.49) stay near their own WER shifted up 2 (0.19–0.37) or 4 semitones
#: (0.25–0.61), but shifted down 3 they reach 0.49–1.02; the three female voices (0.10–0.26)
#: are the mirror image: down 2 or 4 gives 0.10–0.48, up 3 gives 0.76–1.00.
DEFAULT_VARIANTS = {"low": ("p+2", "p+4"), "high": ("p-2", "p-4")}


def default_variants(voice: str) -> tuple[str, ...]:
    """The default pseudo-speaker settings of a train voice (by its register)."""
    return DEFAULT_VARIANTS[VOICE_BY_ID[voice].register]


#: Size of the sentence pool a build draws from (split into train/valid/test pools). With the
#: default 400 per voice, the 8 train voices read 3,200 different sentences of the 3,600 train ones.
N_SENTENCES = 4000


#: Valid/test windows are laid out for ``POOL_VOICES`` voices: v2 voice ``10 + i`` reads the
#: valid/test sentences of v1 voice ``i``.
#: That keeps v1's split (and its figures) unchanged and gives every valid/test sentence two
#: readers — held-out pairs ``mbrola_us3``/``pico_en_gb`` and ``mbrola_en1``/``rhvoice_lyubov``
#: read the same sentences, which cross-voice token agreement needs.
POOL_VOICES = 10


def variant_voice_id(voice: str, suffix: str) -> str:
    return f"{voice}_{suffix}"


def split_voice_id(voice: str) -> tuple[str, str | None]:
    """``"flite_awb_p+2"`` → ``("flite_awb", "p+2")``; a base voice → ``(voice, None)``.

    Uses the corpus's own naming (base id + ``_`` + a key of ``VARIANTS``), so ``flite_slt``
    is a base voice even though it contains ``_s``.
    """
    base, _, suffix = voice.rpartition("_")
    if base and suffix in VARIANTS:
        return base, suffix
    return voice, None


def is_variant(voice: str) -> bool:
    """True for a pseudo-speaker (a sox copy of a train voice), False for a base voice."""
    return split_voice_id(voice)[1] is not None


# ----------------------------------------------------------------------------- engines

#: The program each engine runs (what ``check_engines`` looks for on the PATH).
ENGINE_BINARY = {"flite": "flite", "festival": "text2wave", "mbrola": "espeak-ng",
                 "rhvoice": "RHVoice-test", "pico": "pico2wave"}


def _need(binary: str, packages: str) -> None:
    if shutil.which(binary) is None:
        raise ValueError(f"`{binary}` not found: install the Debian packages `{packages}` "
                         "(scripts/install_debian.sh installs every engine minicosy uses).")


def _engine_command(voice: Voice, text: str, wav: str, tmp: str) -> tuple[list[str], str | None]:
    """The command line that makes ``voice`` read ``text`` into ``wav`` (and its stdin)."""
    if voice.engine == "flite":
        return ["flite", "-voice", voice.name, "-t", text, "-o", wav], None
    if voice.engine == "festival":
        txt = os.path.join(tmp, "text.txt")
        with open(txt, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        return ["text2wave", "-eval", f"({voice.name})", "-o", wav, txt], None
    if voice.engine == "mbrola":
        return ["espeak-ng", "-v", voice.name, "-w", wav, "--stdin"], text
    if voice.engine == "rhvoice":
        return ["RHVoice-test", "-p", voice.name, "-o", wav], text
    if voice.engine == "pico":
        return ["pico2wave", "-l", voice.name, "-w", wav, text], None
    raise ValueError(f"unknown engine {voice.engine!r}")


def _read_wav(path: str) -> tuple[np.ndarray, int]:
    import soundfile as sf

    data, sr = sf.read(path, dtype="float32", always_2d=True)
    return data.mean(axis=1), sr


def _tidy(wav: np.ndarray, sr: int, what: str, margin_s: float | None = 0.1) -> np.ndarray:
    """Trim leading/trailing silence to ``margin_s`` (``None``: no trim); peak-normalise to 0.9.

    Raises ``ValueError`` when the engine produced (near) silence — a broken voice.
    """
    if wav.size == 0 or float(np.sqrt(np.mean(wav ** 2))) < 1e-3:
        raise ValueError(f"{what}: the engine produced silence; is the voice installed?")
    if margin_s is not None:
        hop = max(1, sr // 100)  # 10 ms frames
        n = len(wav) // hop
        rms = np.sqrt(np.mean(wav[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12)
        loud = np.nonzero(rms > rms.max() * 10 ** (-40 / 20))[0]  # within 40 dB of the peak frame
        pad = int(margin_s * sr)
        start, end = max(0, loud[0] * hop - pad), min(len(wav), (loud[-1] + 1) * hop + pad)
        wav = wav[start:end]
    return (wav * (0.9 / max(float(np.abs(wav).max()), 1e-6))).astype(np.float32)


def synthesize(voice_id: str, text: str) -> tuple[np.ndarray, int]:
    """Have a base voice read ``text``.

    Returns:
        wav: ``(T,)`` float32 at the engine's native rate, trimmed and peak-normalised; and
        the rate in Hz.

    Raises:
        ValueError: unknown voice, missing engine (names the Debian package), or silent output.
    """
    if voice_id not in VOICE_BY_ID:
        raise ValueError(f"unknown voice {voice_id!r}; choose from {list(VOICE_BY_ID)}.")
    voice = VOICE_BY_ID[voice_id]
    _need(ENGINE_BINARY[voice.engine], voice.packages)
    with tempfile.TemporaryDirectory(prefix="minicosy-") as tmp:
        wav_path = os.path.join(tmp, "out.wav")
        cmd, stdin = _engine_command(voice, text, wav_path, tmp)
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0 or not os.path.isfile(wav_path) or os.path.getsize(wav_path) <= 44:
            raise ValueError(f"{voice_id}: `{' '.join(cmd[:3])} ...` failed ({proc.stderr.strip()[:200]}). "
                             f"Install the Debian packages `{voice.packages}` "
                             "(scripts/install_debian.sh).")
        wav, sr = _read_wav(wav_path)
    return _tidy(wav, sr, f"{voice_id} reading {text!r}"), sr


def apply_variant(wav: np.ndarray, sr: int, suffix: str) -> np.ndarray:
    """A pseudo-speaker copy of ``wav``: ``(T,)`` → ``(T',)`` through a sox effect chain.

    sox runs with ``-R -D`` (repeatable, no dither) and float output, so it is deterministic.
    """
    if suffix not in VARIANTS:
        raise ValueError(f"unknown variant {suffix!r}; choose from {list(VARIANTS)}.")
    _need("sox", "sox")
    import soundfile as sf

    with tempfile.TemporaryDirectory(prefix="minicosy-") as tmp:
        src, dst = os.path.join(tmp, "in.wav"), os.path.join(tmp, "out.wav")
        sf.write(src, wav, sr, subtype="FLOAT")
        cmd = ["sox", "-R", "-D", src, "-e", "floating-point", "-b", "32", dst, *VARIANTS[suffix].effects]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise ValueError(f"sox failed: {proc.stderr.strip()[:200]}")
        out, _ = _read_wav(dst)
    return _tidy(out, sr, f"variant {suffix}", margin_s=None)


# ----------------------------------------------------------------------------- planning


def plan_corpus(per_voice: int = 400, n_valid: int = 20, n_test: int = 20, voices=None,
                variants=None, variant_fraction: float = 0.5, seed: int = 0,
                max_words: int | None = None, variant_of=None) -> list[dict]:
    """Decide every utterance of a build (which voice reads which sentence), deterministically.

    Sentences: ``generate_sentences`` → ``split_sentences_pool`` (sentence-level split). Train
    voice *i* (its index in ``TRAIN_VOICES``, so the choice does not depend on ``voices``) reads
    a window of ``per_voice`` train sentences starting at ``i·per_voice`` (cyclic), so voices
    mostly read different sentences; valid/test windows work the same way over the voice index
    modulo ``POOL_VOICES`` (10), so every valid/test sentence has two readers in the v2 table.
    Each train voice in ``variant_of`` (default: all) gets each variant (``variants``, or by
    default ``default_variants(voice)``) on a seeded subset of ``ceil(variant_fraction · per_voice)``
    of its train utterances.

    Returns:
        jobs: one dict per base utterance ``{voice, split, index, text, variants: [suffix]}``.
    """
    from minicosy.data.sentences import generate_sentences, split_sentences_pool, words

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
    pool_v, pool_t = max(200, n_valid * POOL_VOICES), max(200, n_test * POOL_VOICES)
    sentences = generate_sentences(max(N_SENTENCES, 2 * (pool_v + pool_t)), seed)
    if max_words is not None:
        sentences = [s for s in sentences if len(words(s)) <= max_words]
        pool_v, pool_t = min(pool_v, len(sentences) // 4), min(pool_t, len(sentences) // 4)
    pools = split_sentences_pool(sentences, seed, n_valid=pool_v, n_test=pool_t)
    all_ids = [v.id for v in VOICES]

    def window(pool, start, n):
        return [pool[(start + k) % len(pool)] for k in range(n)]

    jobs = []
    for vid in voices:
        role = VOICE_BY_ID[vid].role
        counts = {"train": per_voice if role == "train" else 0, "valid": n_valid, "test": n_test}
        for split in SPLITS:
            n = counts[split]
            if n == 0:
                continue
            pos = TRAIN_VOICES.index(vid) if split == "train" else all_ids.index(vid) % POOL_VOICES
            texts = window(pools[split], pos * n, n)
            chosen = {}
            if split == "train" and vid in variant_of:
                k = math.ceil(variant_fraction * n)
                for s in (default_variants(vid) if variants is None else variants):
                    rng = random.Random(f"minicosy-variant-{seed}-{vid}-{s}")
                    for i in rng.sample(range(n), k):
                        chosen.setdefault(i, []).append(s)
            for i, text in enumerate(texts):
                jobs.append({"voice": vid, "split": split, "index": i, "text": text,
                             "variants": sorted(chosen.get(i, []))})
    return jobs


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
    """Synthesise one base utterance and its variants (skipping valid existing files)."""
    import soundfile as sf

    out = Path(out)
    rows, base = [], None
    entries = [(job["voice"], None)] + [(variant_voice_id(job["voice"], s), s) for s in job["variants"]]
    for vid, suffix in entries:  # the base voice first: its file is there before the variants
        uid = _utt_id(vid, job["split"], job["index"])
        rel = Path("audio") / vid / f"{uid}.flac"
        made = not _valid_audio(out / rel, job["text"])
        if made and suffix is None:
            wav, sr = synthesize(vid, job["text"])
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


def check_engines(voices) -> None:
    """Fail early, naming the Debian package, if an engine or sox is missing."""
    _need("sox", "sox")
    for vid in voices:
        v = VOICE_BY_ID[vid]
        _need(ENGINE_BINARY[v.engine], v.packages)


# ----------------------------------------------------------------------------- build


def build_corpus(out=DEFAULT_CORPUS_DIR, per_voice: int = 400, n_valid: int = 20, n_test: int = 20,
                 voices=None, variants=None, variant_fraction: float = 0.5, seed: int = 0,
                 jobs: int = 2, max_words: int | None = None, variant_of=None,
                 progress: bool = True, plan: list[dict] | None = None) -> list[Utterance]:
    """Build (or resume) a corpus in ``out``: audio/…/*.flac, manifest.jsonl, build_info.json.

    ``build_info.json`` holds the seed, the options, the seconds taken, how many files were made
    and how many reused (a resumed build is fast), and ``summarize``'s counts and hours.
    ``plan`` (a list of :func:`plan_corpus` jobs) replaces the plan the other options describe.

    Returns:
        the utterances written to the manifest.
    """
    t0 = time.time()
    if plan is None:
        plan = plan_corpus(per_voice, n_valid, n_test, voices, variants, variant_fraction, seed,
                           max_words, variant_of)
    check_engines(sorted({j["voice"] for j in plan}))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = _synthesise(plan, out, jobs, progress)
    made = sum(r.pop("made") for r in rows)
    utts = [Utterance(**r) for r in rows]
    write_manifest(out / "manifest.jsonl", utts)
    info = {"seed": seed, "per_voice": per_voice, "valid": n_valid, "test": n_test,
            "variants": DEFAULT_VARIANTS if variants is None else list(variants),
            "variant_fraction": variant_fraction,
            "seconds": round(time.time() - t0, 1), "files_made": made, "files_reused": len(utts) - made,
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
FIXTURE_PLAN = dict(per_voice=1, n_valid=1, n_test=1, variants=None, variant_fraction=1.0,
                    max_words=6, variant_of=("flite_awb", "mbrola_us1"))
FIXTURE_V2_PLAN = dict(per_voice=0, n_valid=0, n_test=1, variants=(), max_words=6)
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
                        args.variant_fraction, args.seed, args.jobs)
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
          + ", ".join(f"{k} = sox {' '.join(v.effects)}" for k, v in VARIANTS.items()))
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
    p.add_argument("--per-voice", type=int, default=400, help="train utterances per train voice")
    p.add_argument("--valid", type=int, default=20, help="valid utterances per voice")
    p.add_argument("--test", type=int, default=20, help="test utterances per voice")
    p.add_argument("--voices", default=None, help="comma-separated voice ids (default: all 20)")
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
