"""Flow evaluation: ground-truth speech tokens → flow mel under each mask → committed vocoder, judged.

Stage: measuring the chunk-aware flow (docs/paper_vs_code.md §4), CosyVoice 2 §2.4 and the
streaming-vs-offline comparison of its Table 8. For the first ``per_voice`` test utterances of each
voice (by id) the flow gets the utterance's **ground-truth tokens** (the corpus token cache), a
**prompt** — another recording of the same voice: its tokens, its log-mel and the speaker vector of
the committed speaker encoder — and synthesises mel under each of the paper's four inference masks
(non-causal, full-causal, chunk-2M, chunk-M); the committed vocoder turns each mel into audio. The
LM is not involved, so the figures measure the flow (and the vocoder under it) alone.

Systems judged per utterance, by the independent judges of :mod:`minicosy.judges`:

* ``recording`` — the recording itself (its WER is the judge's floor; its similarity to the prompt
  is what "same voice, other sentence" scores);
* ``copy_synthesis`` — the vocoder on the recording's own log-mel, cropped to the same frames as the
  flow's output (two per token). This is the **ceiling**: a flow that returned the ground-truth mel
  exactly would score exactly this (the tests check that identity);
* one system per mask: the flow's mel through the vocoder.

Figures (train voices and held-out voices apart): pocketsphinx **WER** and its ratio to the copy
synthesis (goal ≤ 1.25); resemblyzer **similarity to the prompt** recording (goal ≥ 0.85 on train
voices); **most-similar rate** — how often the output's nearest voice centroid is the prompt's voice
(goal ≥ 80 % on held-out voices); **log-mel L1** to the ground truth (flow systems); and chunk-M's
WER relative to non-causal (goal within 10 %).

Definitions (deliberate choices, stated once):

* prompts are drawn (``seed``) from the same voice's other utterances of the split not being
  evaluated, else its ``valid`` ones; the speaker vector is the encoder's vector of the prompt mel;
* the candidate voices of "most similar" are every base voice of the corpus (the issue's "ten
  voices" were corpus v1's 8 train + 2 held-out; corpus v2 has 16 + 4, and all 20 is the stricter
  test); each voice's reference is the centroid of the resemblyzer embeddings of its first
  ``n_ref`` ``valid`` recordings (utterances under evaluation are never references);
* a synthesis that fails (an error, a non-finite mel, silence, no voiced audio) is kept: WER 1.0,
  similarity 0.0, not most similar, and listed under ``unscorable`` with the reason.

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §2.4, §3.3 (WER, SIM), Table 8 (streaming).
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch

from minicosy.audio import load_audio, log_mel
from minicosy.data.corpus import HELDOUT_VOICES, TRAIN_VOICES
from minicosy.data.manifest import manifest_root, read_manifest
from minicosy.flow.matching import GUIDANCE, N_STEPS
from minicosy.flow.model import ChunkAwareFlow, align_tokens_and_frames
from minicosy.flow.speaker import SpeakerEncoder
from minicosy.judges import (
    JUDGE_SR,
    intelligibility,
    nearest_voice,
    speaker_embedding,
    try_speaker_embedding,
    voice_centroids,
)
from minicosy.utils import DEFAULT_CHECKPOINT, DEFAULT_CORPUS_DIR
from minicosy.vocoder.hift import Vocoder

SR = 24000  # the flow's mel and the vocoder's audio
HOP = 480
#: inference masks: name → (mask kind, chunk in units of the model's M = cfg.chunk_tokens)
MASKS = {"non_causal": ("non_causal", None), "full_causal": ("full_causal", None),
         "chunk_2M": ("chunk", 2), "chunk_M": ("chunk", 1), "chunk_M_short_first": ("chunk", 1)}
#: masks whose first chunk after the prompt is shorter: name → its length as a share of M (⌈share·M⌉ tokens)
FIRST_CHUNK_SHARE = {"chunk_M_short_first": 2 / 3}
DEFAULT_MASKS = ("non_causal", "full_causal", "chunk_2M", "chunk_M")  # the paper's four
FIRST_SECOND_FRAMES = 50  # mel_l1_first_s: the log-mel L1 over the first second (50 frames) only
BASELINES = ("recording", "copy_synthesis")
GOALS = {"wer_ratio_max": 1.25, "similarity_train_min": 0.85, "most_similar_held_out_min": 0.80,
         "chunk_M_relative_wer_max": 0.10}

# ----------------------------------------------------------------------------- what to judge


def pick(manifest, split: str = "test", per_voice: int = 4, seed: int = 0, voices=None, n_ref: int = 3,
         candidates=None) -> tuple[list[tuple], dict]:
    """The utterances to judge, each with a prompt, and the reference recordings of each candidate voice.

    Args:
        voices: base voices to judge (default: every train and held-out voice in ``split``).
        candidates: voices of the "most similar" test (default: every base voice of the corpus).

    Returns:
        ``([(utterance, prompt utterance)], {voice: [reference utterances]})``.
    """
    if not isinstance(per_voice, int) or per_voice < 1:
        raise ValueError(f"per_voice must be a positive integer, got {per_voice!r}.")
    base = set(TRAIN_VOICES) | set(HELDOUT_VOICES)
    rows = sorted((u for u in read_manifest(manifest) if u.voice in base), key=lambda u: u.id)
    unknown = sorted(set(voices or ()) - base) + sorted(set(candidates or ()) - base)
    if unknown:
        raise ValueError(f"not base voices of the corpus: {unknown}; choose from {sorted(base)}.")
    by_voice: dict[str, list] = {}
    for u in rows:
        by_voice.setdefault(u.voice, []).append(u)
    judged_voices = sorted(voices) if voices else sorted({u.voice for u in rows if u.split == split})
    chosen = {v: [u for u in by_voice.get(v, []) if u.split == split][:per_voice] for v in judged_voices}
    if not any(chosen.values()):
        raise ValueError(f"{manifest}: no {split!r} utterances of voices {judged_voices}.")
    judged = {u.id for us in chosen.values() for u in us}
    rng = random.Random(seed)
    items = []
    for v in judged_voices:
        for u in chosen[v]:
            pool = [o for o in by_voice[v] if o.split == split and o.id not in judged]
            pool = pool or [o for o in by_voice[v] if o.split == "valid" and o.id != u.id]
            pool = pool or [o for o in by_voice[v] if o.split == split and o.id != u.id]
            if pool:  # a voice with a single recording has no prompt: it is left out
                items.append((u, rng.choice(pool)))
    refs = {}  # the judged voices are always candidates: "most similar" must be able to name them
    for v in sorted(set(candidates) | set(judged_voices)) if candidates else sorted(by_voice):
        spare = [o for o in by_voice.get(v, []) if o.id not in judged]
        ref = ([o for o in spare if o.split == "valid"] or spare)[:n_ref]
        if ref:
            refs[v] = ref
    return items, refs


def gather_tokens(utts, corpus, tokens: dict | None = None, tokenizer=None, log=print) -> dict:
    """``{id: LongTensor (T,)}`` for ``utts``: from ``tokens`` or the corpus token cache, and the
    utterances missing there encoded now with the speech tokenizer (e.g. ``data/fixtures`` has no cache)."""
    from minicosy.speech_tokenizer.corpus_tokens import cache_path, load_token_cache

    if tokens is None:
        tokens = load_token_cache(corpus, tokenizer) if cache_path(corpus).is_file() else {}
    missing = [u for u in {u.id: u for u in utts}.values() if u.id not in tokens]
    out = {u.id: tokens[u.id].long() for u in utts if u.id in tokens}
    if missing:
        from minicosy.speech_tokenizer.model import SAMPLE_RATE, SpeechTokenizer

        log(f"encoding {len(missing)} utterances missing from the token cache")
        st = SpeechTokenizer.from_pretrained(tokenizer, device="cpu")
        root = manifest_root(corpus)
        for u in missing:
            out[u.id] = st.encode(load_audio(u.audio_path(root), SAMPLE_RATE), SAMPLE_RATE).long()
    return out


def prepare(items, root, tokens: dict, speaker: SpeakerEncoder, up: int = 2) -> list[dict]:
    """Per item: ground-truth tokens and mel (``up`` frames a token), the recording over the same
    span, and the prompt (tokens, mel, speaker vector, 16 kHz audio for the judge)."""
    out = []
    for u, p in items:
        wav = load_audio(u.audio_path(root), SR)
        tok, mel = align_tokens_and_frames(tokens[u.id], log_mel(wav), up)  # (n,), (80, up·n)
        pwav = load_audio(p.audio_path(root), SR)
        ptok, pmel = align_tokens_and_frames(tokens[p.id], log_mel(pwav), up)
        out.append({"utt": u, "prompt": p, "tokens": tok, "mel": mel, "recording": wav[: mel.shape[1] * HOP],
                    "prompt_tokens": ptok, "prompt_mel": pmel, "speaker": speaker.embed(pmel).float().cpu(),
                    "prompt_wav": load_audio(p.audio_path(root), JUDGE_SR)})
    return out


def synthesize_mel(flow: ChunkAwareFlow, item: dict, mask: str, n_steps: int = N_STEPS,
                   guidance: float = GUIDANCE) -> torch.Tensor:
    """The flow's log-mel ``(80, up·n)`` for one prepared item under one of :data:`MASKS`."""
    kind, k = MASKS[mask]
    return flow.inference(item["tokens"], item["prompt_tokens"], item["prompt_mel"], item["speaker"], mask=kind,
                          chunk_tokens=None if k is None else k * flow.cfg.chunk_tokens,
                          n_steps=n_steps, guidance=guidance,
                          first_chunk_tokens=first_chunk(mask, flow.cfg.chunk_tokens)).float().cpu()


def first_chunk(mask: str, M: int) -> int | None:
    """The first chunk after the prompt of a :data:`FIRST_CHUNK_SHARE` mask (``⌈share·M⌉`` tokens), else ``None``."""
    share = FIRST_CHUNK_SHARE.get(mask)
    return None if share is None else math.ceil(share * M)


def first_second_l1(mel: torch.Tensor, ref: torch.Tensor) -> float:
    """Mean |Δ log-mel| over the first second (:data:`FIRST_SECOND_FRAMES`): what a short first chunk changes."""
    return round(float((mel[:, :FIRST_SECOND_FRAMES] - ref[:, :FIRST_SECOND_FRAMES]).abs().mean()), 4)


# ----------------------------------------------------------------------------- judging


def _vocode(vocoder: Vocoder, mel: torch.Tensor) -> np.ndarray:
    return vocoder(mel).float().cpu().numpy()


def _judge(rows: list[dict], audio: list, system: str, prompt_embs: list, voices, cents, jobs) -> None:
    """WER, similarity to the prompt and the nearest voice of one system, into ``rows``.

    ``audio[i]`` is a waveform at 24 kHz, or ``None`` where synthesis failed (its reason is already
    in ``rows[i]["unscorable"]``): scored as an empty transcript and similarity 0.
    """
    silent = np.zeros(HOP, np.float32)  # the judges refuse it: it goes through their failure path
    res = intelligibility([silent if a is None else a for a in audio], [r["text"] for r in rows], SR, jobs=jobs)
    for r, w, h, ref in zip(rows, res["utterance_wer"], res["hypotheses"], res["references"]):
        r["wer"][system], r["hyp"][system], r["words"] = w, h, len(ref.split())
    for f in res["unscorable"]:
        rows[f["index"]]["unscorable"].setdefault(system, f["reason"])
    for r, a, pe in zip(rows, audio, prompt_embs):
        emb = None
        if a is not None and pe is not None:
            emb, reason = try_speaker_embedding(a, SR)
            if reason is not None:  # no voiced audio: as dissimilar as it gets, and said so
                r["unscorable"].setdefault(system, reason)
        r["sim"][system] = 0.0 if emb is None else round(float(np.dot(emb, pe)), 4)
        r["nearest"][system] = None if emb is None else nearest_voice(emb, voices, cents)[0]


def _corpus_wer(rows, system) -> float:
    # corpus WER = Σ errors / Σ words (an utterance's WER × its words = its errors)
    return sum(r["wer"][system] * r["words"] for r in rows) / max(1, sum(r["words"] for r in rows))


def summarise(rows: list[dict], systems) -> dict:
    """Corpus-level figures of a group of judged utterances, per system."""
    out = {"utterances": len(rows), "words": sum(r["words"] for r in rows), "systems": {}}
    copy = _corpus_wer(rows, "copy_synthesis")
    for s in systems:
        d = {"wer": round(_corpus_wer(rows, s), 4),
             "similarity": round(float(np.mean([r["sim"][s] for r in rows])), 4),
             "most_similar_rate": round(float(np.mean([r["nearest"][s] == r["voice"] for r in rows])), 4),
             "unscorable": sum(s in r["unscorable"] for r in rows)}
        if s not in BASELINES:
            for key in ("mel_l1", "mel_l1_first_s"):
                l1 = [r[key][s] for r in rows if r[key].get(s) is not None]
                d[key] = round(float(np.mean(l1)), 4) if l1 else None
        if s != "recording":
            d["wer_ratio"] = round(d["wer"] / copy, 3) if copy > 0 else None  # None: undefined, not 0
        out["systems"][s] = d
    return out


def goals(groups: dict, masks) -> dict:
    """The issue's targets, checked per group and mask (``None`` where a figure is undefined)."""
    out = {}
    for g, key, floor in (("train_voices", "similarity", GOALS["similarity_train_min"]),
                          ("held_out_voices", "most_similar_rate", GOALS["most_similar_held_out_min"])):
        s = groups.get(g)
        if not s:
            continue
        out[g] = {}
        for m in masks:
            d = s["systems"][m]
            out[g][m] = {"wer_ratio_ok": None if d["wer_ratio"] is None else d["wer_ratio"] <= GOALS["wer_ratio_max"],
                         f"{key}_ok": d[key] >= floor}
        if "non_causal" in masks and "chunk_M" in masks:
            nc, cm = s["systems"]["non_causal"]["wer"], s["systems"]["chunk_M"]["wer"]
            rel = None if nc == 0 else round((cm - nc) / nc, 4)
            out[g]["chunk_M_relative_wer"] = rel
            out[g]["chunk_M_ok"] = None if rel is None else rel <= GOALS["chunk_M_relative_wer_max"]
    return out


def evaluate_flow(flow: ChunkAwareFlow, vocoder: Vocoder, speaker: SpeakerEncoder, manifest=None,
                  split: str = "test", per_voice: int = 4, masks=DEFAULT_MASKS, seed: int = 0,
                  tokens: dict | None = None, tokenizer=None, voices=None, candidates=None, n_ref: int = 3,
                  n_steps: int = N_STEPS, guidance: float = GUIDANCE, jobs: int | None = 1, log=print) -> dict:
    """Synthesise every picked utterance under each mask and judge it beside its two baselines.

    Args:
        flow, vocoder, speaker: the models (default checkpoints are loaded by the CLI).
        manifest: a corpus folder or ``manifest.jsonl`` (default ``data/corpus``).
        masks: names from :data:`MASKS`.
        tokens: ``{id: ids}``; default the corpus token cache (missing ones are encoded).
        voices, candidates, n_ref, seed: see :func:`pick`.
        jobs: pocketsphinx processes.

    Returns:
        JSON-serialisable ``{"groups": {"train_voices", "held_out_voices", "all"}, "goals", "voices",
        "utterances", ...}``; each group has, per system, ``wer``, ``wer_ratio`` (to the copy
        synthesis), ``similarity`` (to the prompt), ``most_similar_rate``, ``mel_l1`` and ``unscorable``.
    """
    manifest = Path(manifest) if manifest is not None else DEFAULT_CORPUS_DIR
    bad = [m for m in masks if m not in MASKS]
    if bad or not masks:
        raise ValueError(f"unknown masks {bad}; choose from {list(MASKS)}.")
    if speaker.cfg.emb_dim != flow.cfg.spk_dim:
        raise ValueError(f"the speaker encoder gives {speaker.cfg.emb_dim}-d vectors, the flow expects "
                         f"{flow.cfg.spk_dim}: use the speaker encoder the flow was trained with.")
    t0 = time.time()
    items, refs = pick(manifest, split, per_voice, seed, voices, n_ref, candidates)
    toks = gather_tokens([x for it in items for x in it], manifest, tokens, tokenizer, log)
    top = max((int(t.max()) for t in toks.values() if t.numel()), default=-1)
    if top >= flow.cfg.vocab_size:
        raise ValueError(f"token ids reach {top} but the flow reads {flow.cfg.vocab_size} codes: the tokens come "
                         "from another speech tokenizer than the flow's (pass --tokenizer).")
    data = prepare(items, manifest_root(manifest), toks, speaker, flow.cfg.up)
    systems = list(BASELINES) + list(masks)
    rows = [{"id": d["utt"].id, "voice": d["utt"].voice, "held_out": d["utt"].voice in HELDOUT_VOICES,
             "text": d["utt"].text, "prompt": d["prompt"].id, "tokens": int(d["tokens"].numel()),
             "wer": {}, "hyp": {}, "sim": {}, "nearest": {}, "mel_l1": {}, "mel_l1_first_s": {}, "unscorable": {}}
            for d in data]
    audio = {"recording": [d["recording"] for d in data], "copy_synthesis": [_vocode(vocoder, d["mel"]) for d in data]}
    flow_seconds = {}
    for m in masks:
        t1, audio[m] = time.time(), []
        for r, d in zip(rows, data):
            try:
                mel = synthesize_mel(flow, d, m, n_steps, guidance)
                if mel.shape != d["mel"].shape or not bool(torch.isfinite(mel).all()):
                    raise ValueError(f"the flow returned mel of shape {tuple(mel.shape)} "
                                     f"(expected {tuple(d['mel'].shape)}) or non-finite values")
                r["mel_l1"][m] = round(float((mel - d["mel"]).abs().mean()), 4)  # mean |Δ log-mel|
                r["mel_l1_first_s"][m] = first_second_l1(mel, d["mel"])
                audio[m].append(_vocode(vocoder, mel))
            except (ValueError, RuntimeError) as exc:  # a broken synthesis is a result, not a crash
                r["mel_l1"][m] = None
                r["unscorable"][m] = f"synthesis failed: {exc}"
                audio[m].append(None)
        flow_seconds[m] = round(time.time() - t1, 2)
    log(f"synthesised {len(rows)} utterances × {len(masks)} masks in {time.time() - t0:.0f} s; judging")
    ref_embs = {v: [speaker_embedding(load_audio(u.audio_path(manifest_root(manifest)), JUDGE_SR), JUDGE_SR)
                    for u in us] for v, us in refs.items()}
    if not ref_embs:
        raise ValueError(f"{manifest}: no reference recordings for the candidate voices.")
    cand, cents = voice_centroids(ref_embs)
    prompt_embs = []
    for d in data:
        try:
            prompt_embs.append(speaker_embedding(d["prompt_wav"], JUDGE_SR))
        except ValueError:
            prompt_embs.append(None)
    for s in systems:
        _judge(rows, audio[s], s, prompt_embs, cand, cents, jobs)
        log(f"judged {s} ({time.time() - t0:.0f} s)")
    held = [r for r in rows if r["held_out"]]
    train = [r for r in rows if not r["held_out"]]
    groups = {"train_voices": summarise(train, systems) if train else None,
              "held_out_voices": summarise(held, systems) if held else None, "all": summarise(rows, systems)}
    meta = flow.meta or {}
    return {"split": split, "manifest": str(manifest), "per_voice": per_voice, "seed": seed, "masks": list(masks),
            "chunk_tokens": {m: (None if k is None else k * flow.cfg.chunk_tokens) for m, (_, k) in MASKS.items()
                             if m in masks},
            "first_chunk_tokens": {m: first_chunk(m, flow.cfg.chunk_tokens) for m in FIRST_CHUNK_SHARE if m in masks},
            "n_steps": n_steps, "guidance": guidance, "candidate_voices": cand, "n_ref": n_ref,
            "checkpoint": {"trained": meta.get("trained"), "untrained": bool(meta.get("untrained", False)),
                           "dtype": meta.get("dtype")},
            "groups": groups, "goals": goals(groups, masks),
            "voices": {v: summarise([r for r in rows if r["voice"] == v], systems)
                       for v in sorted({r["voice"] for r in rows})},
            "utterances": rows, "flow_seconds": flow_seconds, "seconds": round(time.time() - t0, 1)}


def eval_markdown(result: dict) -> str:
    """The docs/results.md table: one row per voice group and system."""
    names = {"recording": "recording", "copy_synthesis": "copy synthesis (vocoder ceiling)",
             **{m: f"flow, {m.replace('_', '-')}" for m in MASKS}}
    lines = ["| voices | system | WER | WER / copy | similarity to prompt | most similar | log-mel L1 |",
             "|---|---|---|---|---|---|---|"]
    for g, label in (("train_voices", "train"), ("held_out_voices", "held-out")):
        s = result["groups"].get(g)
        if not s:
            continue
        for key, d in s["systems"].items():
            ratio = "—" if key == "recording" else ("n/a" if d["wer_ratio"] is None else f"{d['wer_ratio']:.2f}")
            l1 = "—" if d.get("mel_l1") is None else f"{d['mel_l1']:.3f}"
            bad = f" ({d['unscorable']} unscorable)" if d["unscorable"] else ""
            lines.append(f"| {label} ({s['utterances']} utt.) | {names[key]}{bad} | {d['wer']:.3f} | {ratio} | "
                         f"{d['similarity']:.3f} | {100 * d['most_similar_rate']:.0f} % | {l1} |")
    for g, d in result["goals"].items():
        rel = d.get("chunk_M_relative_wer")
        if rel is not None:
            lines.append(f"\n{g}: chunk-M WER {100 * rel:+.1f} % relative to non-causal (goal ≤ +10 %)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- CLI


def _cmd_eval(args) -> int:
    torch.set_num_threads(args.threads)
    stem = Path(args.checkpoint)
    folder = stem if stem.is_dir() else stem.parent
    flow = ChunkAwareFlow.from_pretrained(stem, device=args.device)
    speaker = SpeakerEncoder.from_pretrained(args.speaker or folder / "speaker", device=args.device)
    vocoder = Vocoder.from_pretrained(args.vocoder or folder, device=args.device)
    masks = [m.strip() for m in args.masks.split(",") if m.strip()]
    result = evaluate_flow(flow, vocoder, speaker, args.corpus, args.split, args.per_voice, masks, args.seed,
                           tokenizer=args.tokenizer, voices=args.voices, candidates=args.candidates,
                           n_ref=args.n_ref, jobs=args.jobs, log=lambda s: print(s, flush=True))
    out = Path(args.out) if args.out else folder / "flow_eval.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, allow_nan=False) + "\n")
    print(eval_markdown(result))
    print(f"wrote {out}")
    return 0


def register_cli(groups) -> None:
    """``minicosy eval flow``."""
    p = groups["eval"].add_parser("flow", help="WER / similarity of the flow (ground-truth tokens, four masks) "
                                  "through the vocoder, beside copy synthesis")
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT / "flow"),
                   help="flow stem (default data/pretrained/tiny/flow); speaker encoder and vocoder default to "
                        "its folder")
    p.add_argument("--speaker", default=None, help="speaker encoder stem (default <checkpoint folder>/speaker)")
    p.add_argument("--vocoder", default=None, help="vocoder folder (default <checkpoint folder>)")
    p.add_argument("--tokenizer", default=None, help="speech tokenizer of the token cache (default: committed)")
    p.add_argument("--corpus", "--manifest", dest="corpus", default=str(DEFAULT_CORPUS_DIR),
                   help="corpus folder or manifest.jsonl (default data/corpus)")
    p.add_argument("--split", default="test", choices=["train", "valid", "test", "natural"])
    p.add_argument("--per-voice", type=int, default=4, help="utterances judged per voice")
    p.add_argument("--masks", default=",".join(DEFAULT_MASKS),
                   help=f"comma-separated, from {','.join(MASKS)} (default: the paper's four)")
    p.add_argument("--voices", nargs="+", default=None, help="only these voices (default: every base voice)")
    p.add_argument("--candidates", nargs="+", default=None,
                   help="voices of the most-similar test (default: every base voice of the corpus)")
    p.add_argument("--n-ref", type=int, default=3, help="reference recordings per candidate voice")
    p.add_argument("--seed", type=int, default=0, help="prompt choice")
    p.add_argument("--jobs", type=int, default=1, help="pocketsphinx processes")
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the CPU is shared)")
    p.add_argument("--out", default=None, help="JSON report (default <checkpoint folder>/flow_eval.json)")
    p.set_defaults(func=_cmd_eval)
