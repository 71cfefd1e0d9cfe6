"""Evaluation of the text-speech LM by **token CER**: do the generated tokens say the text?

Stage: text-speech LM, CosyVoice 2 §2.3 / §4 (the paper judges the whole system by ASR WER;
before the flow and vocoder exist, minicosy judges the LM alone). The speech tokenizer was
trained with an ASR head (CTC on characters), so it can *read* any token sequence:
:meth:`SpeechTokenizer.read_tokens` → text → CER against the normalised input text, always
beside the CER of the ground-truth tokens of the same utterances (the tokenizer's own error
floor). Also reported: the **termination rate** (the share of generations that ended with EOS
before the length cap), the **length ratio** (generated / ground-truth tokens, pooled) and the
share of utterances whose own ratio lies in 0.8–1.25.

Scenarios (each on up to ``n`` utterances of ``split``):

=========================  ==============================================================
``sft``                    speaker tag + text, train voices
``icl_same_voice``         prompt = another utterance of the same (train) voice
``icl_heldout_voice``      the same with a held-out voice (:data:`HELDOUT_VOICES`): zero-shot
``*_streaming``            the same three in the N:M streaming layout
``untagged_heldout_voice`` the held-out utterances with no tag and no prompt: what the LM says when
                           the prompt's transcript is withheld (the "flow prompt only" request, where
                           only the flow hears the prompt). ICL should beat it: if it does not, the
                           prompt derails the LM instead of helping it.
=========================  ==============================================================

The CER is :func:`minicosy.judges.cer` (jiwer on ``normalize_transcript`` text, spaces count).

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §2.3, §4.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

from minicosy.data.corpus import HELDOUT_VOICES
from minicosy.data.manifest import read_manifest
from minicosy.judges import cer
from minicosy.lm.generate import encode_icl, generate
from minicosy.lm.model import TextSpeechLM
from minicosy.lm.sampling import SamplingConfig
from minicosy.text.normalize import normalize_english
from minicosy.utils import DEFAULT_CORPUS_DIR

SCENARIOS = ("sft", "icl_same_voice", "icl_heldout_voice",
             "sft_streaming", "icl_same_voice_streaming", "icl_heldout_voice_streaming", "untagged_heldout_voice")


def _pick(corpus, split: str, tokens: dict, speakers: list[str], n: int, seed: int) -> dict[str, list]:
    """Utterances per scenario family, each with a prompt utterance of the same voice (ICL)."""
    everything = [u for u in read_manifest(corpus) if u.id in tokens and normalize_english(u.text).strip()]
    by_voice: dict[str, list] = {}
    for u in everything:
        by_voice.setdefault(u.voice, []).append(u)
    rng = random.Random(seed)
    pool = [u for u in everything if u.split == split]
    rng.shuffle(pool)

    def with_prompt(u):
        others = [o for o in by_voice[u.voice] if o.id != u.id]
        return (u, rng.choice(others)) if others else None

    train = [u for u in pool if u.voice in speakers]
    held = [u for u in pool if u.voice in HELDOUT_VOICES]
    return {"sft": [(u, None) for u in train[:n]],
            "icl_same_voice": [p for p in map(with_prompt, train) if p][:n],
            "icl_heldout_voice": (icl_held := [p for p in map(with_prompt, held) if p][:n]),
            "untagged_heldout_voice": [(u, None) for u, _ in icl_held]}


LENGTH_RANGE = (0.8, 1.25)  # per-utterance generated / ground-truth length counted as "right"


def length_share(gens, gts, lo: float = LENGTH_RANGE[0], hi: float = LENGTH_RANGE[1]) -> float:
    """Share of utterances whose generated / ground-truth token count lies in ``[lo, hi]``."""
    ok = [lo <= len(g) / max(1, len(t)) <= hi for g, t in zip(gens, gts)]
    return sum(ok) / max(1, len(ok))


def evaluate_lm(model: TextSpeechLM, corpus, speech_tokenizer, tokens: dict | None = None, n: int = 20,
                split: str = "test", seed: int = 0, sampling: SamplingConfig | None = None,
                scenarios=SCENARIOS) -> dict:
    """Token CER, ground-truth CER, termination rate and length ratio per scenario.

    Args:
        model: the LM with its text tokenizer attached (``model.meta['text_tokenizer']``).
        speech_tokenizer: the :class:`~minicosy.speech_tokenizer.model.SpeechTokenizer` that made
            the tokens (its CTC head reads them).
        tokens: ``{utt id: LongTensor}`` (default: the corpus's token cache).
    """
    if tokens is None:
        from minicosy.speech_tokenizer.corpus_tokens import load_token_cache
        tokens = load_token_cache(corpus)
    tok = model.text_tokenizer()
    picks = _pick(corpus, split, tokens, tok.speakers, n, seed)
    out = {"split": split, "n_per_scenario": n, "seed": seed, "scenarios": {}}
    for name in scenarios:
        family, streaming = name.removesuffix("_streaming"), name.endswith("_streaming")
        rows = picks[family]
        if not rows:
            out["scenarios"][name] = {"n": 0}
            continue
        refs, gens, gts, ended = [], [], [], []
        for k, (u, prompt) in enumerate(rows):
            g = torch.Generator().manual_seed(seed * 7919 + k)
            if prompt is None:  # SFT: the voice's tag; a held-out voice has none (untagged, no prompt)
                speaker = tok.speaker_id(u.voice) if u.voice in tok.speakers else None
                stream = generate(model, tok.encode(u.text), speaker_id=speaker, streaming=streaming,
                                  sampling=sampling, generator=g)
            else:
                ptext, text = encode_icl(tok, prompt.text, u.text)
                stream = generate(model, text, prompt_text_ids=ptext, prompt_speech_ids=tokens[prompt.id].tolist(),
                                  streaming=streaming, sampling=sampling, generator=g)
            gens.append(torch.tensor(stream.run(), dtype=torch.long))
            ended.append(stream.eos)
            gts.append(tokens[u.id].long())
            refs.append(normalize_english(u.text, lowercase=True))
        with torch.inference_mode():
            heard, heard_gt = speech_tokenizer.read_tokens(gens), speech_tokenizer.read_tokens(gts)
        out["scenarios"][name] = {
            "n": len(rows), "token_cer": round(cer(refs, heard), 4), "groundtruth_cer": round(cer(refs, heard_gt), 4),
            "termination_rate": round(sum(ended) / len(ended), 4),
            "length_ratio": round(sum(len(x) for x in gens) / max(1, sum(len(x) for x in gts)), 4),
            "length_ratio_in_range": round(length_share(gens, gts), 4),
            "example": {"text": refs[0], "heard": heard[0], "heard_groundtruth": heard_gt[0]}}
    return out


def _eval_cmd(args) -> int:
    from minicosy.speech_tokenizer.model import SpeechTokenizer

    torch.set_num_threads(args.threads)
    model = TextSpeechLM.from_pretrained(args.lm, device=args.device)
    st = SpeechTokenizer.from_pretrained(args.tokenizer, device=args.device)
    from minicosy.speech_tokenizer.corpus_tokens import load_token_cache
    tokens = load_token_cache(args.corpus, args.tokenizer)  # the cache of the tokenizer given, checked
    res = evaluate_lm(model, args.corpus, st, tokens=tokens, n=args.n, split=args.split, seed=args.seed)
    text = json.dumps(res, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0


def register_cli(groups) -> None:
    p = groups["eval"].add_parser("lm", help="token CER of the LM's generations, read back by the speech tokenizer")
    p.add_argument("--lm", default=None, help="LM checkpoint stem (default data/pretrained/tiny/lm)")
    p.add_argument("--tokenizer", default=None, help="speech tokenizer stem (default: the committed tiny FSQ)")
    p.add_argument("--corpus", default=str(DEFAULT_CORPUS_DIR))
    p.add_argument("--split", default="test")
    p.add_argument("--n", type=int, default=20, help="utterances per scenario")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="also write the JSON here")
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=_eval_cmd)
