"""Probe TTS voices before they enter the corpus: intelligibility, distinctness, speed.

Stage: data (docs/paper_vs_code.md §3). A voice earns a place among the corpus's train voices if it
is *a new speaker* to the speaker judge and can be understood. This module reads the same few
sentences (``PROBE_SENTENCES``) with every voice of ``minicosy.data.corpus.VOICES`` and every
candidate of ``CANDIDATES``, then measures, with the independent judges of ``minicosy.judges``:

* **WER** — pocketsphinx on the 6 sentences (corpus-level over them);
* **speaker similarity** — resemblyzer, utterance-averaged cosine between voices
  (``similarity_matrix(mode="utterance")``: the mean over all cross pairs of utterances), and each
  voice's nearest other voice among the train voices and the candidates;
* **speed** — wall-clock seconds of synthesis per sentence, one process (what a build pays).

For pseudo-speakers (``probe_variants``) it adds the median F0 ratio to the base voice (librosa
pYIN), the formant warp the spectral envelope shows (``minicosy.data.vtlp.estimate_warp``), the
duration ratio, WER and the similarity to the base voice. ``python -m minicosy.voice_probe``
writes all of it to ``results/voices_v3_probe.json`` (about 10 minutes on 2 cores).

Candidates were chosen from what Debian ships that reads English: espeak-ng's accented English
mbrola voices (``mb-XX-en``), espeak-ng's own formant voices (its ``+variant`` settings, the
klatt synthesiser, regional accents) and festival's ``don`` diphone voice. Never probed, on
purpose: festival's ``kdlpc`` voice and RHVoice's ``clb`` (reserved for an independent evaluation),
and festival's mbrola wrappers (``festvox-us1``...: the same diphones as ``mbrola_us1``...).

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §3 (many speakers in the training data).
    [2] Wan et al., "Generalized End-to-End Loss for Speaker Verification", arXiv 1710.10467.
    [3] Mauch & Dixon, "pYIN: a fundamental frequency estimator using probabilistic threshold
        distributions", ICASSP 2014.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from minicosy.data.corpus import TRAIN_VOICES, VOICE_BY_ID, VOICES, Voice, apply_variant, split_voice_id, synthesize

#: Short everyday sentences, hand-written for the probe (not from the corpus generator, so the
#: probe's numbers do not move when the corpus text changes).
PROBE_SENTENCES = (
    "The children walked to school in the morning.",
    "Please close the window before you leave.",
    "My brother bought a new car last week.",
    "We will meet at the station at noon.",
    "She read the letter twice and smiled.",
    "There is fresh bread on the kitchen table.",
)

#: Corpus-length sentences (10–15 words) for :func:`time_voices`: what a build pays per sentence.
TIMING_SENTENCES = (
    "The committee agreed to postpone the meeting until the end of next month.",
    "A small boat drifted slowly across the lake while the children watched from the shore.",
    "He could not remember where he had left his keys after dinner.",
    "Most of the farmers in the valley grow wheat, barley and potatoes.",
    "Please send the finished report to the office before noon on Friday.",
)
#: One voice per engine (and festival's slowest voices), for :func:`time_voices`.
TIMING_VOICES = ("flite_awb", "festival_kal", "festival_slt_hts", "festival_don", "mbrola_de4_en",
                 "espeak_en_klatt2", "rhvoice_bdl", "pico_en_us")

_MB = "espeak-ng mbrola mbrola-"
#: Voices probed and *not* taken into ``VOICES`` (the fourteen taken are the table's version-3 block):
#: each was either within 0.78 similarity of a train voice or a taken candidate, or read worse
#: (pocketsphinx WER 0.78–0.96 on ``PROBE_SENTENCES``) than a taken voice of its kind.
CANDIDATES = [
    Voice("mbrola_af1_en", "mbrola", "mb-af1-en", 16000, "train", "low", _MB + "af1"),
    Voice("mbrola_de3_en", "mbrola", "mb-de3-en", 22050, "train", "high", _MB + "de3"),
    Voice("mbrola_fr4_en", "mbrola", "mb-fr4-en", 22050, "train", "high", _MB + "fr4"),
    Voice("mbrola_gr2_en", "mbrola", "mb-gr2-en", 22050, "train", "low", _MB + "gr2"),
    Voice("mbrola_hu1_en", "mbrola", "mb-hu1-en", 16000, "train", "high", _MB + "hu1"),
    Voice("mbrola_sw1_en", "mbrola", "mb-sw1-en", 16000, "train", "low", _MB + "sw1"),
    *[Voice(f"espeak_{n.replace('-', '_').replace('+', '_')}", "espeak", n, 22050, "train", reg, "espeak-ng")
      for n, reg in (("en-us+m3", "low"), ("en-us+m5", "low"), ("en-us+m7", "low"), ("en-us+f1", "high"),
                     ("en-us+f4", "high"), ("en+f5", "high"), ("en+klatt", "low"), ("en+klatt4", "low"),
                     ("en-gb-x-rp+m2", "low"), ("en-029+m4", "low"), ("en-us+Andrea", "high"))],
]
#: The version-3 block of ``VOICES`` (the voices this probe chose).
V3_VOICES = [v.id for v in VOICES[20:]]


def _voice(vid: str) -> Voice:
    if vid in VOICE_BY_ID:
        return VOICE_BY_ID[vid]
    for v in CANDIDATES:
        if v.id == vid:
            return v
    raise ValueError(f"unknown voice {vid!r}: give an id of corpus.VOICES or voice_probe.CANDIDATES.")


def read_all(voices, sentences=PROBE_SENTENCES) -> dict[str, dict]:
    """Synthesise ``sentences`` with each voice → ``{voice: {"wavs", "sr", "sec_per_sentence"}}``."""
    out = {}
    for vid in voices:
        voice, wavs, t0 = _voice(vid), [], time.perf_counter()
        for text in sentences:
            wav, sr = synthesize(voice, text)
            wavs.append(wav)
        out[vid] = {"wavs": wavs, "sr": sr, "sec_per_sentence": (time.perf_counter() - t0) / len(sentences)}
    return out


def judge_voices(audio: dict[str, dict], sentences=PROBE_SENTENCES, jobs: int = 2) -> dict:
    """WER, embeddings and the utterance-averaged similarity matrix of synthesised voices.

    Args:
        audio: :func:`read_all`'s output.

    Returns:
        ``{"voices": {vid: {"wer", "sec_per_sentence", "sample_rate", "audio_s_per_sentence"}},
        "matrix_voices": [vid], "similarity": (V, V) list}``.
    """
    from minicosy.judges import intelligibility, similarity_matrix, speaker_embedding

    per, embs = {}, {}
    for vid, a in audio.items():
        w = intelligibility(a["wavs"], list(sentences), a["sr"], jobs=jobs)["wer"]
        embs[vid] = [speaker_embedding(x, a["sr"]) for x in a["wavs"]]
        per[vid] = {"wer": round(float(w), 3), "sec_per_sentence": round(a["sec_per_sentence"], 4),
                    "sample_rate": a["sr"],
                    "audio_s_per_sentence": round(float(np.mean([len(x) for x in a["wavs"]])) / a["sr"], 2)}
    names, m = similarity_matrix(embs, mode="utterance")
    return {"voices": per, "matrix_voices": names, "similarity": np.round(m, 4).tolist()}


def nearest_other(names, matrix, vid: str, among) -> tuple[str, float]:
    """The voice of ``among`` (≠ ``vid``) most similar to ``vid`` in ``matrix`` (``(V, V)``)."""
    m = np.asarray(matrix)
    i = names.index(vid)
    cands = [names.index(o) for o in among if o != vid and o in names]
    j = max(cands, key=lambda k: m[i, k])
    return names[j], float(m[i, j])


def probe_variants(voices, suffixes, sentences=PROBE_SENTENCES, audio=None, jobs: int = 2) -> dict:
    """Measure pseudo-speakers of base ``voices`` made with each of ``suffixes``.

    Returns:
        ``{voice_suffix: {"wer", "base_wer", "similarity_to_base", "f0_ratio", "formant_warp",
        "duration_ratio", "sec_per_sentence"}}`` — F0 as the ratio of median pYIN F0 (voiced frames
        pooled over the sentences), the warp from :func:`minicosy.data.vtlp.estimate_warp`.
    """
    import librosa

    from minicosy.data.vtlp import estimate_warp
    from minicosy.judges import intelligibility, speaker_embedding

    audio = audio if audio is not None else read_all(voices, sentences)
    out = {}
    for vid in voices:
        a = audio[vid]
        wavs, sr = a["wavs"], a["sr"]
        base_wer = intelligibility(wavs, list(sentences), sr, jobs=jobs)["wer"]
        base_emb = [speaker_embedding(x, sr) for x in wavs]
        f0b = _median_f0(wavs, sr, librosa)
        for s in suffixes:
            t0 = time.perf_counter()
            var = [apply_variant(x, sr, s) for x in wavs]
            sec = (time.perf_counter() - t0) / len(wavs)
            emb = [speaker_embedding(x, sr) for x in var]
            sim = float(np.mean([e @ b for e in emb for b in base_emb]))
            out[f"{vid}_{s}"] = {
                "wer": round(float(intelligibility(var, list(sentences), sr, jobs=jobs)["wer"]), 3),
                "base_wer": round(float(base_wer), 3), "similarity_to_base": round(sim, 3),
                "f0_ratio": round(_median_f0(var, sr, librosa) / f0b, 3),
                "formant_warp": float(np.median([estimate_warp(b, v, sr) for b, v in zip(wavs, var)])),
                "duration_ratio": round(sum(map(len, var)) / sum(map(len, wavs)), 3),
                "sec_per_sentence": round(sec, 4)}
    return out


def variant_pair_similarity(voices, suffixes, audio) -> dict[str, dict[str, float]]:
    """Mean resemblyzer cosine between every two of {base, *suffixes} of each voice: are a voice's
    pseudo-speakers distinct from the base *and from one another*? ``{voice: {"a/b": cos}}``."""
    from minicosy.judges import speaker_embedding

    out = {}
    for vid in voices:
        a = audio[vid]
        embs = {"base": [speaker_embedding(x, a["sr"]) for x in a["wavs"]]}
        for s in suffixes:
            embs[s] = [speaker_embedding(apply_variant(x, a["sr"], s), a["sr"]) for x in a["wavs"]]
        keys = list(embs)
        out[vid] = {f"{x}/{y}": round(float(np.mean([e @ f for e in embs[x] for f in embs[y]])), 3)
                    for i, x in enumerate(keys) for y in keys[i + 1:]}
    return out


def _median_f0(wavs, sr: int, librosa) -> float:
    f0 = [librosa.pyin(x, fmin=60, fmax=500, sr=sr, frame_length=2048)[0] for x in wavs]
    return float(np.nanmedian(np.concatenate(f0)))


def time_voices(voices=TIMING_VOICES, suffixes=("p+4", "v+12"), sentences=TIMING_SENTENCES) -> dict:
    """Seconds per sentence of synthesis and of each variant, one process: ``{voice: {...}}``."""
    import os

    audio = read_all(voices, sentences)
    out = {}
    for vid, a in audio.items():
        out[vid] = {"synth_s": round(a["sec_per_sentence"], 3),
                    "audio_s": round(float(np.mean([len(x) for x in a["wavs"]])) / a["sr"], 2)}
        for s in suffixes:
            t0 = time.perf_counter()
            for x in a["wavs"]:
                apply_variant(x, a["sr"], s)
            out[vid][f"{s}_s"] = round((time.perf_counter() - t0) / len(a["wavs"]), 3)
    out["load_average_1min"] = round(os.getloadavg()[0], 2)  # timings on a shared machine: context
    return out


def choose_greedy(wer: dict[str, float], names, matrix, base, candidates, threshold: float = 0.78) -> list[str]:
    """Pick candidates in order of WER, each only if it stays below ``threshold`` to all kept voices.

    Args:
        wer: voice → WER (lower first).
        names, matrix: voice ids and their ``(V, V)`` similarity matrix.
        base: the voices already in (never dropped); candidates are compared with them too.
        candidates: voices to choose from.

    Returns:
        the chosen candidates, in the order they were taken.
    """
    m, idx = np.asarray(matrix), {v: i for i, v in enumerate(names)}
    kept, chosen = list(base), []
    for c in sorted(candidates, key=lambda v: (wer[v], v)):
        if all(m[idx[c], idx[o]] < threshold for o in kept):
            kept.append(c)
            chosen.append(c)
    return chosen


def build_estimate(per_voice_sec: dict[str, float], variant_sec: float, n_sentences: int,
                   variants_per_voice: int = 2, variant_fraction: float = 0.5, jobs: int = 2) -> dict:
    """Wall-clock minutes a build would take: each train voice reads ``n_sentences / V`` sentences
    and copies ``variant_fraction`` of them per variant; ``jobs`` processes share the work evenly."""
    n = n_sentences / len(per_voice_sec)
    cpu = sum(n * s + variants_per_voice * variant_fraction * n * variant_sec for s in per_voice_sec.values())
    return {"sentences": n_sentences, "train_voices": len(per_voice_sec), "jobs": jobs,
            "cpu_minutes": round(cpu / 60, 1), "wall_minutes": round(cpu / 60 / jobs, 1)}


def estimate_from_timing(timing: dict, n_sentences: int = 50_000, jobs: int = 2) -> dict:
    """:func:`build_estimate` from :func:`time_voices` (corpus-length sentences): an untimed train
    voice costs what the timed voice of its engine costs."""
    by_engine = {}
    for vid in TIMING_VOICES:
        by_engine.setdefault(_voice(vid).engine, timing[vid]["synth_s"])
    secs = {v: timing[v]["synth_s"] if v in timing else by_engine[_voice(v).engine] for v in TRAIN_VOICES}
    vsec = float(np.mean([d[k] for d in timing.values() if isinstance(d, dict) for k in d
                          if k.endswith("_s") and k not in ("synth_s", "audio_s")]))
    return build_estimate(secs, vsec, n_sentences, jobs=jobs)


def probe_report(variant_voices, suffixes, jobs: int = 2, sentences=PROBE_SENTENCES) -> dict:
    """Synthesise, judge and measure everything ``results/voices_v3_probe.json`` holds."""
    ids = [v.id for v in VOICES] + [v.id for v in CANDIDATES]
    audio = read_all(ids, sentences)
    judged = judge_voices(audio, sentences, jobs)
    report = assemble_report(judged, probe_variants(variant_voices, suffixes, sentences, audio, jobs), sentences)
    low = [v for v in variant_voices if _voice(v).register == "low"]
    report["variant_pairs"] = variant_pair_similarity(low, ("p+4", "v+12"), audio) | variant_pair_similarity(
        [v for v in variant_voices if v not in low], ("p-4", "v-12"), audio)
    report["timing"] = time_voices()
    report["build_estimate_corpus_length"] = estimate_from_timing(report["timing"])
    return report


def assemble_report(judged: dict, variants: dict, sentences=PROBE_SENTENCES, jobs: int = 2) -> dict:
    """Add roles, nearest voices, the greedy choice, the v2 pairs at ≥ 0.80 and a build estimate to
    :func:`judge_voices` and :func:`probe_variants` outputs."""
    names, m = judged["matrix_voices"], judged["similarity"]
    train, ids = list(TRAIN_VOICES), list(judged["voices"])
    for vid, d in judged["voices"].items():
        d["role"] = ("candidate (not taken)" if vid not in VOICE_BY_ID else
                     f"{VOICE_BY_ID[vid].role} (v3)" if vid in V3_VOICES else VOICE_BY_ID[vid].role)
        d["register"] = _voice(vid).register
        for key, among in (("nearest_train", train), ("nearest_any", ids)):
            other, sim = nearest_other(names, m, vid, among)
            d[key], d[f"{key}_similarity"] = other, round(sim, 3)
    wer = {v: d["wer"] for v, d in judged["voices"].items()}
    old_train = [v for v in train if v not in V3_VOICES]
    greedy = choose_greedy(wer, names, m, old_train, V3_VOICES + [v.id for v in CANDIDATES])
    pairs = sorted({tuple(sorted((a, b))) for a in train for b in train if a != b
                    and m[names.index(a)][names.index(b)] >= 0.80})
    vsec = float(np.mean([d["sec_per_sentence"] for d in variants.values()]))
    secs = {v: judged["voices"][v]["sec_per_sentence"] for v in train}
    return {"sentences": list(sentences), "judges": "pocketsphinx WER; resemblyzer utterance-averaged cosine",
            "voices": judged["voices"], "train_pairs_at_or_above_0.80": [list(p) for p in pairs],
            "greedy_choice_at_0.78": greedy, "v3_voices": V3_VOICES, "variants": variants,
            "build_estimate": build_estimate(secs, vsec, 50_000, jobs=jobs),
            "matrix_voices": names, "similarity": m}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="probe candidate corpus voices with the independent judges")
    p.add_argument("--out", default="results/voices_v3_probe.json")
    p.add_argument("--variant-voices", default="flite_awb,rhvoice_bdl,mbrola_de4_en,pico_en_us,rhvoice_slt,"
                   "espeak_en_us_f2", help="base voices whose pseudo-speakers are measured")
    p.add_argument("--variants", default="p+2,p-2,p+4,p-4,v+8,v-8,v+12,v-12")
    p.add_argument("--jobs", type=int, default=2)
    args = p.parse_args(argv)
    for s in args.variants.split(","):
        split_voice_id(f"x_{s}")[1] or p.error(f"unknown variant {s!r}")
    report = probe_report(args.variant_voices.split(","), args.variants.split(","), args.jobs)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"{'voice':26s} {'role':22s} {'WER':>5s} {'s/sent':>7s}  nearest train voice")
    for vid, d in report["voices"].items():
        if vid in TRAIN_VOICES:
            print(f"{vid:26s} {d['role']:22s} {d['wer']:5.2f} {d['sec_per_sentence']:7.3f}  "
                  f"{d['nearest_train']} {d['nearest_train_similarity']:.2f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
