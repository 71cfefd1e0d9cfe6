"""The whole system: text (+ a voice) → 24 kHz speech, offline or streaming. ``MiniCosy``.

Stage: system layer — CosyVoice 2 §2.3–2.6 (the unified streaming / non-streaming model, its
inference scenarios, Fig. 2) and §2.5 (first-packet latency of the streaming mode) [1]; the
official ``cosyvoice/cli/model.py`` [2] without its shared state. It composes the stages::

    text ─▶ front end: normalise, split into sentences ─▶ LM (+ prompt text & tokens | speaker tag) ─▶ 25 Hz tokens
    prompt wav ─▶ front end, once: speech tokenizer (16 kHz) · log-mel (24 kHz) · speaker encoder ─┐
    tokens ─▶ chunk-aware flow (+ prompt tokens, prompt mel, speaker vector) ─▶ 50 Hz mel ─▶ vocoder ─▶ wav

Four scenarios, chosen by the arguments of :meth:`MiniCosy.synthesize` / :meth:`MiniCosy.stream`:

* **zero-shot ICL** — ``voice`` with a transcript: the LM reads ``[SOS] prompt text + text [TASK]
  prompt tokens`` and continues; the flow gets the prompt tokens, the prompt mel and the prompt's
  speaker vector.
* **flow prompt only** (the paper's cross-lingual mode) — ``voice`` without a transcript: the LM
  has no prompt (so the prosody is the model's own), the flow still imitates the timbre.
* **SFT** — ``speaker=NAME`` of a training voice: the LM reads its speaker tag, the flow gets that
  voice's stored centroid. The default with neither.
* **streaming** — :meth:`MiniCosy.stream`: the LM in its N:M interleaved layout, then every ``M``
  tokens (once ``P`` lookahead tokens exist) a cached step of the flow, then the streaming
  vocoder. The text itself may arrive as an iterator of strings (bistream).

The voice is processed by the front end (:mod:`minicosy.system.frontend`: prompt, SFT vectors, the
text and context policy); ``voice`` may also be a :class:`~minicosy.system.frontend.Prompt` made
once (``model.frontend.prompt(voice)``) or a registered name. Streamed audio equals the offline
path run with the flow's chunk mask (``tokens_to_audio(..., mask="chunk")``) up to the vocoder's
cross-fades; sentences are synthesised one after another and the vocoder runs as *one* stream
across them, so the joins have neither gaps nor clicks. Every request keeps its own state (LM
cache, flow caches, vocoder caches, :class:`~minicosy.system.timing.Timing`) — unlike the official
runtime, whose token hop length is an attribute one streaming request changes for all others [2].

**Registered voices** (:meth:`MiniCosy.register_voice`, the official ``add_zero_shot_spk``): the
prompt processed once — tokens, mel, speaker vector and the LM's KV cache of the text-independent
prefix (:func:`~minicosy.lm.generate.lm_prefix`), forked per request; ``voice="name"`` then skips
all of it. Fresh voices take the same path (their prefix is computed first, then forked), so a
registered voice gives exactly the audio of the recording it was registered from.

**The LM runs ahead** when ``stream`` has two or more intra-op threads (``lm_ahead``,
:mod:`minicosy.system.streaming`): its own thread with one, the flow and the vocoder with the
rest, a bounded queue between them.

# simplification: one request at a time per call (no batching of requests, no fp16/TensorRT flow).

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §2.5 (latency), §2.6 (scenarios), §3.
    [2] FunAudioLLM/CosyVoice, ``cosyvoice/cli/cosyvoice.py`` (``inference_zero_shot``,
        ``inference_cross_lingual``, ``inference_sft``), ``cosyvoice/cli/model.py`` (``tts``,
        ``token_hop_len``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from minicosy.flow.model import ChunkAwareFlow
from minicosy.flow.speaker import SpeakerEncoder
from minicosy.flow.streaming import positive_int
from minicosy.lm.generate import generate, generate_bistream
from minicosy.lm.model import TextSpeechLM
from minicosy.speech_tokenizer.model import SpeechTokenizer
from minicosy.system.frontend import SAMPLE_RATE, FrontEnd, Prompt, VoiceReference, strip_unreadable
from minicosy.system.streaming import stream_audio
from minicosy.system.timing import Timing, timed_tokens
from minicosy.utils import DEFAULT_CHECKPOINT, pick_device
from minicosy.vocoder.hift import Vocoder

STAGES = ("speech_tokenizer", "lm", "flow", "speaker", "vocoder")  # <stage>.json + .safetensors each
LOADERS = {"speech_tokenizer": SpeechTokenizer, "lm": TextSpeechLM, "flow": ChunkAwareFlow,
           "speaker": SpeakerEncoder, "vocoder": Vocoder}


def load_stages(root: Path, device) -> dict:
    """The five stages of one checkpoint folder, each through its own ``from_pretrained``."""
    stages = {}
    for name, klass in LOADERS.items():
        try:  # every stage reads <root>/<stage>.json + .safetensors (minicosy.checkpoint)
            stages[name] = klass.from_pretrained(root / name, device=device)
        except ValueError as exc:
            raise ValueError(f"{name} checkpoint in {root}: {exc}") from exc
        except Exception as exc:  # safetensors / json / torch errors: a damaged or foreign file
            raise ValueError(f"cannot load the {name} checkpoint from {root} ({type(exc).__name__}: {exc}). "
                             "The file is truncated or was written by another version; re-export it.") from exc
    return stages


def check_compatible(tokenizer, lm, flow, speaker, vocoder, text_tokenizer) -> None:
    """Stages that do not fit together (another preset, codebook or tokenizer) → ``ValueError``."""
    C, lc, fc = tokenizer.codebook_size, lm.cfg, flow.cfg
    bad = []
    if lc.codebook_size != C:
        bad.append(f"the LM predicts {lc.codebook_size} speech codes, the speech tokenizer has {C}")
    if fc.vocab_size != C:
        bad.append(f"the flow reads {fc.vocab_size} speech codes, the speech tokenizer has {C}")
    if fc.spk_dim != speaker.cfg.emb_dim:
        bad.append(f"the flow expects {fc.spk_dim}-d speaker vectors, the speaker encoder gives {speaker.cfg.emb_dim}")
    if fc.n_mels != vocoder.cfg.n_mels or vocoder.cfg.sample_rate != SAMPLE_RATE:
        bad.append(f"the vocoder reads {vocoder.cfg.n_mels} mel bins at {vocoder.cfg.sample_rate} Hz, "
                   f"the flow writes {fc.n_mels} (minicosy: 80 at 24000)")
    if text_tokenizer.vocab_size > lc.text_vocab_size:
        bad.append(f"the LM's text tokenizer has {text_tokenizer.vocab_size} ids, its embedding {lc.text_vocab_size}")
    if bad:
        raise ValueError("these checkpoints do not belong together (another preset or tokenizer?): "
                         + "; ".join(bad) + ". Train every stage on the same speech tokenizer.")


class MiniCosy:
    """CosyVoice 2 end to end. ``MiniCosy.from_pretrained().synthesize("Hello.", voice)``.

    Attributes:
        tokenizer, lm, flow, speaker, vocoder: the five stages (eval mode, frozen).
        text_tokenizer: the LM's :class:`~minicosy.text.chars.CharTokenizer` (with speaker tags).
        frontend: the :class:`~minicosy.system.frontend.FrontEnd` (prompts, SFT vectors, text policy).
        last_timing: the :class:`~minicosy.system.timing.Timing` of the most recent request.
    """

    def __init__(self, tokenizer: SpeechTokenizer, lm: TextSpeechLM, flow: ChunkAwareFlow, speaker: SpeakerEncoder,
                 vocoder: Vocoder):
        self.tokenizer, self.lm, self.flow, self.speaker, self.vocoder = tokenizer, lm, flow, speaker, vocoder
        self.text_tokenizer = lm.text_tokenizer()
        check_compatible(tokenizer, lm, flow, speaker, vocoder, self.text_tokenizer)
        self.frontend = FrontEnd(tokenizer, speaker, self.text_tokenizer, lm.cfg, flow.cfg.up, lm=lm, flow=flow)
        self.last_timing: Timing | None = None

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, device=None) -> "MiniCosy":
        """Load the five stages from one folder (default ``data/pretrained/tiny/``).

        Raises:
            ValueError: no such folder, a stage missing, truncated or unreadable, stages that do not
                fit together (another preset or codebook), or ``device="cuda"`` without CUDA.
        """
        dev = pick_device(device)
        root = DEFAULT_CHECKPOINT if path is None else Path(path)
        if not root.is_dir():
            raise ValueError(f"checkpoint folder not found: {root}. Pass the folder holding "
                             f"{', '.join(s + '.*' for s in STAGES)} (default data/pretrained/tiny).")
        missing = [s for s in STAGES if not ((root / f"{s}.json").is_file() and (root / f"{s}.safetensors").is_file())]
        if missing:
            raise ValueError(f"{root} lacks the stage(s) {missing} (<stage>.json + <stage>.safetensors each). Train "
                             "them (`minicosy train tokenizer|lm|flow|speaker|vocoder`) or pass another folder.")
        s = load_stages(root, dev)
        return cls(s["speech_tokenizer"], s["lm"], s["flow"], s["speaker"], s["vocoder"])

    @property
    def device(self) -> torch.device:
        return self.flow.device

    @property
    def speakers(self) -> list[str]:
        """The SFT voices (speaker tags the LM was trained with)."""
        return list(self.text_tokenizer.speakers)

    def speech_tokens(self, audio, sample_rate: int) -> torch.LongTensor:
        """Audio ``(T,)`` at any rate ≥ 8 kHz → 25 Hz speech tokens (:meth:`FrontEnd.speech_tokens`)."""
        return self.frontend.speech_tokens(audio, sample_rate)

    def speaker_vector(self, name: str) -> torch.Tensor:
        """An SFT voice's flow speaker vector ``(spk_dim,)`` (:meth:`FrontEnd.speaker_vector`)."""
        return self.frontend.speaker_vector(name)

    def register_voice(self, name: str, voice: VoiceReference) -> Prompt:
        """Process ``voice`` once and keep it as ``name``: then ``synthesize(text, voice=name)``, ``stream(...)``.

        The rules (SFT names refused, a taken name refused for another recording, a registered
        object changed in place refused): :mod:`minicosy.system.frontend`.
        """
        return self.frontend.register(name, voice)

    def remove_voice(self, name: str) -> None:
        """Forget a registered voice (:meth:`register_voice`); an unknown name is a ``ValueError``."""
        self.frontend.remove(name)

    @property
    def voices(self) -> list[str]:
        """The registered zero-shot voices, by name."""
        return sorted(self.frontend.voices)

    def _lm_stream(self, p: Prompt, sentence, streaming: bool, gen: torch.Generator):
        """The LM request for one sentence (a str, or an iterator of str pieces for bistream)."""
        tok, prefix = self.text_tokenizer, self.frontend.lm_prefix(p, streaming)
        if not isinstance(sentence, str):
            pieces = (strip_unreadable(w, tok)[0] for w in sentence)
            return generate_bistream(self.lm, pieces, tok, prompt_text=p.lm_text, prompt_speech_ids=p.lm_tokens,
                                     speaker=p.speaker_tag, generator=gen, prefix=prefix)
        ptext, text = self.frontend.lm_text_ids(p, sentence)
        sid = tok.speaker_id(p.speaker_tag) if p.speaker_tag else None
        return generate(self.lm, text, prompt_text_ids=ptext, prompt_speech_ids=p.lm_tokens, speaker_id=sid,
                        streaming=streaming, generator=gen, prefix=prefix)

    # ------------------------------------------------------------------ offline

    def zero_shot_voice(self, voice: VoiceReference, text: str, seed: int = 0) -> torch.LongTensor:
        """The 25 Hz semantic tokens the LM generates for ``text`` in ``voice`` (offline layout), ``(T,)``."""
        if voice is None:
            raise ValueError("zero_shot_voice needs a voice: VoiceReference.from_file(path, transcript).")
        p = self.frontend.prompt(voice)
        gen = torch.Generator().manual_seed(int(seed))
        toks = [t for s in self.frontend.sentences(text, p) for t in self._lm_stream(p, s, False, gen)]
        return torch.tensor(toks, dtype=torch.long)

    @torch.inference_mode()
    def tokens_to_audio(self, tokens, voice: VoiceReference | None = None, speaker: str | None = None,
                        mask: str = "non_causal", chunk_tokens: int | None = None,
                        first_chunk_tokens: int | None = None) -> tuple[np.ndarray, int]:
        """Flow + vocoder (the official ``token2wav``) on given tokens: ``(T,)`` or a list of per-sentence ``(T_i,)``.

        ``mask="chunk"`` with the ``chunk_tokens`` (and ``first_chunk_tokens``, the first sentence's first
        block) of a stream reproduces that stream's audio.
        """
        p = self.frontend.prompt(voice, speaker)
        flat = isinstance(tokens, torch.Tensor) and tokens.dim() == 1 or (
            isinstance(tokens, (list, tuple)) and len(tokens) and isinstance(tokens[0], (int, np.integer)))
        seqs = [tokens] if flat else list(tokens)
        return self._token2wav(p, seqs, mask, chunk_tokens, Timing("offline"), first_chunk_tokens), SAMPLE_RATE

    def _token2wav(self, p: Prompt, seqs, mask, chunk_tokens, timing: Timing, first_chunk_tokens=None) -> np.ndarray:
        mels = []
        for k, toks in enumerate(seqs):
            if len(toks) == 0:
                continue
            t0 = time.perf_counter()
            first = None if k else first_chunk_tokens  # a short first block: the first sentence's only
            mels.append(self.flow.inference(torch.as_tensor(toks), p.flow_tokens, p.flow_mel, p.spk, mask=mask,
                                            chunk_tokens=chunk_tokens, first_chunk_tokens=first))
            timing.flow_chunk_s.append(time.perf_counter() - t0)
            timing.flow_s += timing.flow_chunk_s[-1]
        if not mels:
            raise ValueError("the LM produced no speech tokens for this text; give a longer text.")
        t0 = time.perf_counter()
        wav = self.vocoder(torch.cat(mels, dim=1)).float().cpu().numpy()  # one pass: no joins between sentences
        timing.vocoder_chunk_s.append(time.perf_counter() - t0)
        return wav

    @torch.inference_mode()
    def synthesize(self, text: str, voice: VoiceReference | None = None, speaker: str | None = None,
                   seed: int = 0) -> tuple[np.ndarray, int]:
        """Offline synthesis: ``(wav (T,) float32 in [-1, 1], 24000)``.

        Args:
            text: up to :data:`~minicosy.text.normalize.MAX_CHARS` characters (longer: :meth:`stream`).
            voice: a recording to clone (ICL with a transcript, flow-prompt-only without), a ``Prompt``, or
                a registered name.
            speaker: an SFT voice (:attr:`speakers`); the first one if neither is given.
            seed: the LM's sampling seed (everything else is deterministic): same seed, same audio.
        """
        t_start = time.perf_counter()
        timing = self.last_timing = Timing("offline")
        p = self.frontend.prompt(voice, speaker)
        sentences = self.frontend.sentences(text, p)  # each fits the LM's context: checked before any LM work
        self.frontend.lm_prefix(p, False)  # a fresh voice's LM prefix: part of its prompt processing
        timing.prompt_s = time.perf_counter() - t_start
        gen = torch.Generator().manual_seed(int(seed))
        for s in sentences:
            timing.tokens.append(list(timed_tokens(self._lm_stream(p, s, False, gen), timing)))
        wav = self._token2wav(p, timing.tokens, "non_causal", None, timing)
        timing.total_s = timing.first_packet_s = time.perf_counter() - t_start
        timing.audio_s = len(wav) / SAMPLE_RATE
        return wav, SAMPLE_RATE

    # ------------------------------------------------------------------ streaming

    def stream(self, text: str | Iterable[str], voice: VoiceReference | None = None, speaker: str | None = None,
               seed: int = 0, chunk_tokens: int | None = None, timing: Timing | None = None,
               lm_ahead: bool | None = None, first_chunk_tokens: int | None = None) -> Iterator[np.ndarray]:
        """Streaming synthesis: a generator of float32 audio chunks at 24 kHz.

        Prompt and text are checked here, before the first chunk (a ``str`` whole, each sentence
        against the LM's context). Any length: a ``str`` is split into sentences, an iterator of
        strings (an LLM writing) is read lazily and cut at sentence ends (bistream). ``close()``
        the generator to stop early: the request's states are released.

        Args:
            chunk_tokens: the flow's chunk ``M`` (default ``flow.cfg.chunk_tokens``); audio starts after
                ``M + P`` tokens.
            timing: a :class:`~minicosy.system.timing.Timing` to fill (default: a new one, also :attr:`last_timing`).
            lm_ahead: run the LM in its own thread ahead of the flow (default: when
                ``torch.get_num_threads() ≥ 2``); the same tokens either way.
            first_chunk_tokens: ``F``, a short first flow block (audio after ``F + P`` tokens, then
                blocks of ``M``); default ``None``: ``M``. Equals the offline mask with the same schedule.
        """
        t_start = time.perf_counter()
        timing = timing if timing is not None else Timing("stream")
        self.last_timing = timing
        M = int(chunk_tokens or self.flow.cfg.chunk_tokens)
        if M < 1:
            raise ValueError(f"chunk_tokens must be ≥ 1, got {chunk_tokens}.")
        if first_chunk_tokens is not None:  # checked here, before the generator's first step
            first_chunk_tokens = positive_int(first_chunk_tokens, "first_chunk_tokens")
        p = self.frontend.prompt(voice, speaker)
        sentences = self.frontend.stream_text(text, p)
        self.frontend.lm_prefix(p, True)
        timing.prompt_s = time.perf_counter() - t_start
        ahead = torch.get_num_threads() >= 2 if lm_ahead is None else bool(lm_ahead)
        return stream_audio(self, p, sentences, int(seed), M, timing, t_start, ahead, first_chunk_tokens)
