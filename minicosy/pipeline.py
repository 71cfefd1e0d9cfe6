"""The whole system: text (+ a voice) → 24 kHz speech, offline or streaming. ``MiniCosy``.

Stage: top layer — CosyVoice 2 §2.3–2.6 (the unified streaming / non-streaming model, its inference
scenarios, Fig. 2) and §2.5 (first-packet latency of the streaming mode) [1]. It composes the stages::

    text ─▶ normalise, split into sentences ─▶ LM (+ prompt text & tokens | speaker tag) ─▶ 25 Hz tokens
    prompt wav ─▶ speech tokenizer (16 kHz) · log-mel (24 kHz) · speaker encoder ─┐
    tokens ─▶ chunk-aware flow (+ prompt tokens, prompt mel, speaker vector) ─▶ 50 Hz mel ─▶ vocoder ─▶ wav

Four scenarios, chosen by the arguments of :meth:`MiniCosy.synthesize` / :meth:`MiniCosy.stream`:

* **zero-shot ICL** — ``voice`` with a transcript: the LM reads ``[SOS] prompt text + text [TASK]
  prompt tokens`` and continues; the flow gets the prompt tokens, the prompt mel and the prompt's
  speaker vector.
* **flow prompt only** (the paper's cross-lingual mode) — ``voice`` without a transcript: the LM
  has no prompt (so the prosody is the model's own), the flow still imitates the timbre.
* **SFT** — ``speaker=NAME`` of a training voice: the LM reads its speaker tag, the flow gets that
  voice's stored speaker vector (see :meth:`MiniCosy.speaker_vector`). The default with neither.
* **streaming** — :meth:`MiniCosy.stream`: the LM in its N:M interleaved layout, then every ``M``
  tokens (once ``P`` lookahead tokens exist) a cached step of the flow, then the streaming
  vocoder. The text itself may arrive as an iterator of strings (bistream).

Streamed audio equals the offline path run with the flow's chunk mask (``tokens_to_audio(...,
mask="chunk")``) up to the vocoder's cross-fades; sentences are synthesised one after another
and the vocoder runs as *one* stream across them, so the joins have neither gaps nor clicks.
Every request keeps its own state (LM cache, flow caches, vocoder caches, timing): nothing is
shared between requests except the frozen models — unlike the official runtime, whose token hop
length is an attribute that one streaming request changes for all the others [2].

Bad input raises ``ValueError`` saying what to do (never a deep traceback): the text policy is in
:func:`speakable`, the prompt policy in :class:`VoiceReference`, the checkpoint checks in
:meth:`MiniCosy.from_pretrained`.

# simplification: one request at a time per call (no batching of requests, no fp16/TensorRT
# flow, no thread pool for LM and flow as the official ``CosyVoice2Model`` has).

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §2.5 (latency), §2.6 (scenarios), §3.
    [2] FunAudioLLM/CosyVoice, ``cosyvoice/cli/cosyvoice.py`` (``inference_zero_shot``,
        ``inference_cross_lingual``, ``inference_sft``), ``cosyvoice/cli/model.py`` (``tts``,
        ``token_hop_len``), ``cosyvoice/cli/frontend.py`` (prompt processing).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from minicosy.audio import log_mel
from minicosy.flow.model import ChunkAwareFlow, align_tokens_and_frames
from minicosy.flow.speaker import SpeakerEncoder
from minicosy.lm.generate import encode_icl, generate, generate_bistream
from minicosy.lm.model import TextSpeechLM
from minicosy.speech_tokenizer.model import SpeechTokenizer
from minicosy.text.normalize import MAX_CHARS, split_sentences
from minicosy.utils import FIXTURES_DIR, REPO_ROOT, pick_device
from minicosy.vocoder.hift import Vocoder
from minicosy.voice import MAX_WORDS, VoiceReference, as_mono, speakable, stream_sentences, strip_unreadable

DEFAULT_DIR = REPO_ROOT / "data" / "pretrained" / "tiny"
SAMPLE_RATE = 24000
STAGES = ("speech_tokenizer", "lm", "flow", "speaker", "vocoder")  # <stage>.json + .safetensors each


@dataclass
class _Prompt:
    """What a request conditions on: LM prompt (text, tokens) and flow prompt (tokens, mel, speaker)."""

    lm_text: str = ""  # ICL transcript ("" = no LM prompt)
    lm_tokens: list = field(default_factory=list)
    speaker_tag: str | None = None  # SFT
    flow_tokens: torch.Tensor | None = None  # (T_p,)
    flow_mel: torch.Tensor | None = None  # (80, 2·T_p)
    spk: torch.Tensor | None = None  # (spk_dim,)


# ----------------------------------------------------------------------------- timing


@dataclass
class Timing:
    """What one request cost, stage by stage (seconds). ``MiniCosy.last_timing`` holds the latest.

    ``lm_first_token_s`` has one entry per sentence (the prefill and the first draw),
    ``lm_token_s`` one per later token, ``flow_chunk_s`` one per flow block (a sentence offline),
    ``vocoder_chunk_s`` one per audio chunk. ``tokens`` are the LM's tokens, one list per sentence.
    """

    mode: str  # "offline" or "stream"
    prompt_s: float = 0.0
    first_packet_s: float | None = None  # call → first audio (offline: the whole synthesis)
    total_s: float = 0.0
    audio_s: float = 0.0
    lm_s: float = 0.0  # totals per stage
    flow_s: float = 0.0
    lm_first_token_s: list = field(default_factory=list)
    lm_token_s: list = field(default_factory=list)
    flow_chunk_s: list = field(default_factory=list)
    vocoder_chunk_s: list = field(default_factory=list)
    tokens: list = field(default_factory=list)

    def summary(self) -> dict:
        """Rounded figures (medians per chunk/token) for printing or JSON."""
        def med(x):
            return round(statistics.median(x), 5) if x else None

        return {"mode": self.mode, "first_packet_s": None if self.first_packet_s is None else round(self.first_packet_s, 4),
                "total_s": round(self.total_s, 4), "audio_s": round(self.audio_s, 3),
                "rtf": round(self.total_s / self.audio_s, 4) if self.audio_s else None,
                "prompt_s": round(self.prompt_s, 4), "lm_prefill_s": med(self.lm_first_token_s),
                "lm_per_token_s": med(self.lm_token_s), "flow_per_chunk_s": med(self.flow_chunk_s),
                "vocoder_per_chunk_s": med(self.vocoder_chunk_s), "n_sentences": len(self.tokens),
                "n_tokens": sum(len(t) for t in self.tokens), "n_flow_chunks": len(self.flow_chunk_s),
                "n_audio_chunks": len(self.vocoder_chunk_s), "lm_total_s": round(self.lm_s, 4),
                "flow_total_s": round(self.flow_s, 4), "vocoder_total_s": round(sum(self.vocoder_chunk_s), 4)}


def _timed_tokens(lm_stream, timing: Timing) -> Iterator[int]:
    """Iterate an LM stream, timing each draw."""
    it, first = iter(lm_stream), True
    try:
        while True:
            t0 = time.perf_counter()
            tok = next(it, None)
            dt = time.perf_counter() - t0
            (timing.lm_first_token_s if first else timing.lm_token_s).append(dt)
            timing.lm_s += dt
            if tok is None:
                return
            first = False
            yield tok
    finally:
        lm_stream.close()  # ends the request now, not at the next cyclic GC


# ----------------------------------------------------------------------------- the system


class MiniCosy:
    """CosyVoice 2 end to end. ``MiniCosy.from_pretrained().synthesize("Hello.", voice)``.

    Attributes:
        tokenizer, lm, flow, speaker, vocoder: the five stages (eval mode, frozen).
        text_tokenizer: the LM's :class:`~minicosy.text.chars.CharTokenizer` (with speaker tags).
        last_timing: the :class:`Timing` of the most recent request.
    """

    def __init__(self, tokenizer: SpeechTokenizer, lm: TextSpeechLM, flow: ChunkAwareFlow, speaker: SpeakerEncoder,
                 vocoder: Vocoder):
        self.tokenizer, self.lm, self.flow, self.speaker, self.vocoder = tokenizer, lm, flow, speaker, vocoder
        self.text_tokenizer = lm.text_tokenizer()
        self.last_timing: Timing | None = None
        self._centroids: dict[str, torch.Tensor] = {}  # SFT speaker vectors read from fixtures (constants)
        self._check_compatible()

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, device=None) -> "MiniCosy":
        """Load the five stages from one folder (default ``data/pretrained/tiny/``).

        Raises:
            ValueError: no such folder, a stage missing, truncated or unreadable, stages that do not
                fit together (another preset or codebook), or ``device="cuda"`` without CUDA.
        """
        dev = pick_device(device)
        root = DEFAULT_DIR if path is None else Path(path)
        if not root.is_dir():
            raise ValueError(f"checkpoint folder not found: {root}. Pass the folder holding "
                             f"{', '.join(s + '.*' for s in STAGES)} (default data/pretrained/tiny).")
        missing = [s for s in STAGES if not ((root / f"{s}.json").is_file() and (root / f"{s}.safetensors").is_file())]
        if missing:
            raise ValueError(f"{root} lacks the stage(s) {missing} (<stage>.json + <stage>.safetensors each). Train "
                             "them (`minicosy train tokenizer|lm|flow|speaker|vocoder`) or pass another folder.")
        loaders = {"speech_tokenizer": SpeechTokenizer, "lm": TextSpeechLM, "flow": ChunkAwareFlow,
                   "speaker": SpeakerEncoder, "vocoder": Vocoder}
        stages = {}
        for name, klass in loaders.items():
            arg = root if name == "vocoder" else root / name
            try:
                stages[name] = klass.from_pretrained(arg, device=dev)
            except ValueError as exc:
                raise ValueError(f"{name} checkpoint in {root}: {exc}") from exc
            except Exception as exc:  # safetensors / json / torch errors: a damaged or foreign file
                raise ValueError(f"cannot load the {name} checkpoint from {root} ({type(exc).__name__}: {exc}). "
                                 "The file is truncated or was written by another version; re-export it.") from exc
        return cls(stages["speech_tokenizer"], stages["lm"], stages["flow"], stages["speaker"], stages["vocoder"])

    def _check_compatible(self) -> None:
        C, lm, fl = self.tokenizer.codebook_size, self.lm.cfg, self.flow.cfg
        bad = []
        if lm.codebook_size != C:
            bad.append(f"the LM predicts {lm.codebook_size} speech codes, the speech tokenizer has {C}")
        if fl.vocab_size != C:
            bad.append(f"the flow reads {fl.vocab_size} speech codes, the speech tokenizer has {C}")
        if fl.spk_dim != self.speaker.cfg.emb_dim:
            bad.append(f"the flow expects {fl.spk_dim}-d speaker vectors, the speaker encoder gives "
                       f"{self.speaker.cfg.emb_dim}")
        if fl.n_mels != self.vocoder.cfg.n_mels or self.vocoder.cfg.sample_rate != SAMPLE_RATE:
            bad.append(f"the vocoder reads {self.vocoder.cfg.n_mels} mel bins at {self.vocoder.cfg.sample_rate} Hz, "
                       f"the flow writes {fl.n_mels} (minicosy: 80 at 24000)")
        if self.text_tokenizer.vocab_size > lm.text_vocab_size:
            bad.append(f"the LM's text tokenizer has {self.text_tokenizer.vocab_size} ids, its embedding {lm.text_vocab_size}")
        if bad:
            raise ValueError("these checkpoints do not belong together (another preset or tokenizer?): "
                             + "; ".join(bad) + ". Train every stage on the same speech tokenizer.")

    @property
    def device(self) -> torch.device:
        return self.flow.device

    @property
    def speakers(self) -> list[str]:
        """The SFT voices (speaker tags the LM was trained with)."""
        return list(self.text_tokenizer.speakers)

    # ------------------------------------------------------------------ front end

    def speech_tokens(self, audio, sample_rate: int) -> torch.LongTensor:
        """Audio ``(T,)`` at any rate ≥ 8 kHz → 25 Hz speech tokens ``(T // 640 at 16 kHz,)``."""
        return self.tokenizer.encode(as_mono(audio, "audio"), sample_rate)

    def speaker_vector(self, name: str) -> torch.Tensor:
        """The flow's speaker vector ``(spk_dim,)`` for an SFT voice.

        Design: the mean speaker-encoder vector of the voice's recordings, normalised (its centroid,
        :func:`minicosy.flow.speaker.centroids`). Looked up in ``speaker.json`` under ``"centroids"``
        (``{voice: [floats]}``, written at export by the speaker trainer); if absent, computed once
        from the voice's clips in ``data/fixtures`` (one per v2 voice).

        Raises:
            ValueError: a voice the LM has no tag for, or one with neither a stored centroid nor a clip.
        """
        self.text_tokenizer.speaker_id(name)  # unknown names: a message listing the known ones
        stored = (self.speaker.meta or {}).get("centroids") or {}
        if name in stored:
            return torch.nn.functional.normalize(torch.tensor(stored[name], dtype=torch.float32), dim=0)
        if name not in self._centroids:
            from minicosy.audio import load_audio
            from minicosy.data.manifest import manifest_root, read_manifest

            manifest = FIXTURES_DIR / "manifest.jsonl"
            rows = [u for u in read_manifest(manifest) if u.voice == name] if manifest.is_file() else []
            if not rows:
                raise ValueError(f"no speaker vector for SFT voice {name!r}: speaker.json has no 'centroids' entry for it "
                                 "and data/fixtures has no clip of it. Pass a recording instead (voice=...).")
            mels = [log_mel(load_audio(u.audio_path(manifest_root(manifest)), SAMPLE_RATE)) for u in rows]
            vecs = torch.stack([self.speaker.embed(m).float().cpu() for m in mels])
            self._centroids[name] = torch.nn.functional.normalize(vecs.mean(0), dim=0)
        return self._centroids[name]

    def _prompt(self, voice: VoiceReference | None, speaker: str | None) -> _Prompt:
        """Resolve the scenario (ICL, flow-prompt-only, SFT) and process the prompt."""
        if voice is not None and speaker is not None:
            raise ValueError("give a voice recording (zero-shot) or a speaker name (SFT), not both.")
        if voice is None:
            if speaker is None:
                if not self.speakers:
                    raise ValueError("this model has no SFT voices: pass voice=VoiceReference(...) to clone one.")
                speaker = self.speakers[0]
            return _Prompt(speaker_tag=speaker, spk=self.speaker_vector(speaker))
        if not isinstance(voice, VoiceReference):
            raise ValueError(f"voice must be a VoiceReference, got {type(voice).__name__}.")
        import librosa

        wav24 = voice.audio if voice.sample_rate == SAMPLE_RATE else librosa.resample(
            voice.audio, orig_sr=voice.sample_rate, target_sr=SAMPLE_RATE)
        mel = log_mel(torch.from_numpy(np.ascontiguousarray(wav24, dtype=np.float32)).to(self.device))  # (80, F)
        tokens = self.speech_tokens(voice.audio, voice.sample_rate)
        # the LM and the flow see the same prompt tokens: 2 frames each   [official frontend]
        tokens, mel = align_tokens_and_frames(tokens, mel, self.flow.cfg.up)
        p = _Prompt(flow_tokens=tokens, flow_mel=mel, spk=self.speaker.embed(mel))
        if voice.transcript is not None:
            p.lm_text, p.lm_tokens = speakable(voice.transcript, self.text_tokenizer), tokens.tolist()
        return p

    def _sentences(self, text, max_chars: float) -> list[str]:
        text = speakable(text, self.text_tokenizer)
        if len(text.strip()) > max_chars:
            raise ValueError(f"text is {len(text.strip())} characters; synthesize() keeps the whole waveform and stops at "
                             f"{MAX_CHARS}. Use MiniCosy.stream(text) (or `minicosy stream`), which reads it sentence "
                             "by sentence.")
        return [s for s in split_sentences(text, MAX_WORDS) if any(c.isalnum() for c in s)]

    def _lm_stream(self, p: _Prompt, sentence, streaming: bool, gen: torch.Generator):
        """The LM request for one sentence (a str, or an iterator of str pieces for bistream)."""
        tok = self.text_tokenizer
        if not isinstance(sentence, str):
            pieces = (strip_unreadable(w, tok)[0] for w in sentence)
            return generate_bistream(self.lm, pieces, tok, prompt_text=p.lm_text, prompt_speech_ids=p.lm_tokens,
                                     speaker=p.speaker_tag, generator=gen)
        if p.lm_text:
            ptext, text = encode_icl(tok, p.lm_text, sentence)
        else:
            ptext, text = [], tok.encode(sentence)
        sid = tok.speaker_id(p.speaker_tag) if p.speaker_tag else None
        return generate(self.lm, text, prompt_text_ids=ptext, prompt_speech_ids=p.lm_tokens, speaker_id=sid,
                        streaming=streaming, generator=gen)

    # ------------------------------------------------------------------ offline

    def zero_shot_voice(self, voice: VoiceReference, text: str, seed: int = 0) -> torch.LongTensor:
        """The 25 Hz semantic tokens the LM generates for ``text`` in ``voice`` (offline layout), ``(T,)``."""
        if voice is None:
            raise ValueError("zero_shot_voice needs a voice: VoiceReference.from_file(path, transcript).")
        p = self._prompt(voice, None)
        gen = torch.Generator().manual_seed(int(seed))
        toks = [t for s in self._sentences(text, MAX_CHARS) for t in self._lm_stream(p, s, False, gen)]
        return torch.tensor(toks, dtype=torch.long)

    @torch.inference_mode()
    def tokens_to_audio(self, tokens, voice: VoiceReference | None = None, speaker: str | None = None,
                        mask: str = "non_causal", chunk_tokens: int | None = None) -> tuple[np.ndarray, int]:
        """Flow + vocoder (the official ``token2wav``) on given tokens: ``(T,)`` or a list of per-sentence ``(T_i,)``.

        ``mask="chunk"`` with the ``chunk_tokens`` of a stream reproduces that stream's audio.
        """
        p = self._prompt(voice, speaker)
        flat = isinstance(tokens, torch.Tensor) and tokens.dim() == 1 or (
            isinstance(tokens, (list, tuple)) and len(tokens) and isinstance(tokens[0], (int, np.integer)))
        seqs = [tokens] if flat else list(tokens)
        return self._token2wav(p, seqs, mask, chunk_tokens, Timing("offline")), SAMPLE_RATE

    def _token2wav(self, p: _Prompt, seqs, mask, chunk_tokens, timing: Timing) -> np.ndarray:
        mels = []
        for toks in seqs:
            if len(toks) == 0:
                continue
            t0 = time.perf_counter()
            mels.append(self.flow.inference(torch.as_tensor(toks), p.flow_tokens, p.flow_mel, p.spk, mask=mask,
                                            chunk_tokens=chunk_tokens))
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
            voice: a recording to clone (ICL with a transcript, flow-prompt-only without).
            speaker: an SFT voice (:attr:`speakers`); the first one if neither is given.
            seed: the LM's sampling seed (everything else is deterministic): same seed, same audio.
        """
        t_start = time.perf_counter()
        timing = self.last_timing = Timing("offline")
        sentences = self._sentences(text, MAX_CHARS)
        p = self._prompt(voice, speaker)
        timing.prompt_s = time.perf_counter() - t_start
        gen = torch.Generator().manual_seed(int(seed))
        for s in sentences:
            timing.tokens.append(list(_timed_tokens(self._lm_stream(p, s, False, gen), timing)))
        wav = self._token2wav(p, timing.tokens, "non_causal", None, timing)
        timing.total_s = timing.first_packet_s = time.perf_counter() - t_start
        timing.audio_s = len(wav) / SAMPLE_RATE
        return wav, SAMPLE_RATE

    # ------------------------------------------------------------------ streaming

    def stream(self, text: str | Iterable[str], voice: VoiceReference | None = None, speaker: str | None = None,
               seed: int = 0, chunk_tokens: int | None = None, timing: Timing | None = None) -> Iterator[np.ndarray]:
        """Streaming synthesis: a generator of float32 audio chunks at 24 kHz.

        The prompt and the text are checked here, before the first chunk is asked for. Any length
        of text; a ``str`` is split into sentences, an iterator of strings (an LLM writing) is read
        lazily and cut at sentence ends (bistream). ``close()`` the generator to stop early: the
        LM, flow and vocoder states of the request are released.

        Args:
            chunk_tokens: the flow's chunk ``M`` (default ``flow.cfg.chunk_tokens``); audio starts after
                ``M + P`` tokens.
            timing: a :class:`Timing` to fill (default: a new one, also in :attr:`last_timing`).
        """
        t_start = time.perf_counter()
        timing = timing if timing is not None else Timing("stream")
        self.last_timing = timing
        if isinstance(text, str):
            sentences: Iterable = split_sentences(speakable(text, self.text_tokenizer), MAX_WORDS)
        elif isinstance(text, Iterable):
            sentences = stream_sentences(text)
        else:
            raise ValueError(f"text must be a str or an iterable of str, got {type(text).__name__}.")
        M = int(chunk_tokens or self.flow.cfg.chunk_tokens)
        if M < 1:
            raise ValueError(f"chunk_tokens must be ≥ 1, got {chunk_tokens}.")
        p = self._prompt(voice, speaker)
        timing.prompt_s = time.perf_counter() - t_start
        return self._stream(p, sentences, int(seed), M, timing, t_start)

    def _mel_chunks(self, p: _Prompt, sentences, gen, M: int, timing: Timing) -> Iterator[torch.Tensor]:
        """Sentence by sentence: LM tokens → the cached streaming flow → final mel pieces ``(80, k)``."""
        seen = False
        for sentence in sentences:
            if isinstance(sentence, str) and not any(c.isalnum() for c in sentence):
                continue
            seen = True
            with torch.inference_mode():
                fs = self.flow.stream(p.flow_tokens, p.flow_mel, p.spk, chunk_tokens=M)
            toks = []
            timing.tokens.append(toks)
            for tok in _timed_tokens(self._lm_stream(p, sentence, True, gen), timing):
                toks.append(tok)
                mel = self._flow_step(fs, timing, [tok])  # frames once M tokens and P more have arrived
                if mel.shape[1]:
                    yield mel
            mel = self._flow_step(fs, timing, None)
            if mel.shape[1]:
                yield mel
        if not seen:
            raise ValueError("the text stream was empty: give at least one word to speak.")

    @staticmethod
    def _flow_step(fs, timing: Timing, tokens) -> torch.Tensor:
        """``fs.push(tokens)`` (``fs.flush()`` for ``None``), timed; records the cost of each block of M tokens."""
        n, t0 = len(fs.chunk_times), time.perf_counter()
        mel = fs.flush() if tokens is None else fs.push(tokens)
        timing.flow_s += time.perf_counter() - t0
        timing.flow_chunk_s += fs.chunk_times[n:]
        return mel

    def _stream(self, p, sentences, seed, M, timing, t_start) -> Iterator[np.ndarray]:
        gen = torch.Generator().manual_seed(seed)
        mel_chunks = self._mel_chunks(p, sentences, gen, M, timing)
        audio = self.vocoder.stream(mel_chunks)  # one vocoder stream across sentences: continuous joins
        try:
            while True:
                t0, upstream = time.perf_counter(), timing.lm_s + timing.flow_s
                wav = next(audio, None)  # pulls LM tokens and flow chunks as it needs them
                if wav is None:
                    break
                # the vocoder's share: this wait minus what the LM and the flow took inside it
                timing.vocoder_chunk_s.append(max(0.0, time.perf_counter() - t0 - (timing.lm_s + timing.flow_s - upstream)))
                out = wav.float().cpu().numpy()
                if timing.first_packet_s is None:
                    timing.first_packet_s = time.perf_counter() - t_start
                timing.audio_s += len(out) / SAMPLE_RATE
                timing.total_s = time.perf_counter() - t_start
                yield out
        finally:  # also on close(): drop every cache of this request now
            audio.close()
            mel_chunks.close()
            timing.total_s = time.perf_counter() - t_start


# ----------------------------------------------------------------------------- untrained checkpoints


def write_untrained_checkpoint(out: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """A complete checkpoint folder with random-init LM, flow and speaker encoder (tests, benchmarks,
    trying the pipeline before training) beside links to the committed speech tokenizer and vocoder.

    ``size="tiny"`` uses the stages' ``tiny()`` presets (the cost of the real thing); ``"micro"``
    the smallest models that run (a 1-layer LM), for fast tests. The LM knows the corpus's train
    voices as SFT speakers; their speaker vectors come from ``data/fixtures``.
    """
    from minicosy.data.corpus import TRAIN_VOICES
    from minicosy.flow.model import FlowConfig
    from minicosy.flow.speaker import SpeakerConfig
    from minicosy.lm.model import LMConfig
    from minicosy.text.chars import CharTokenizer

    if size not in ("tiny", "micro"):
        raise ValueError(f"size must be 'tiny' or 'micro', got {size!r}.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stage in ("speech_tokenizer", "vocoder"):
        for ext in (".json", ".safetensors"):
            link = out / f"{stage}{ext}"
            if not link.exists():
                link.symlink_to((DEFAULT_DIR / f"{stage}{ext}").resolve())
    C = SpeechTokenizer.from_pretrained(out / "speech_tokenizer", device="cpu").codebook_size
    tok = CharTokenizer(TRAIN_VOICES)
    micro = size == "micro"
    lm_cfg = LMConfig(codebook_size=C, text_vocab_size=tok.vocab_size, dropout=0.0,
                      **(dict(d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, d_ff=64) if micro else {}))
    flow_cfg = FlowConfig.tiny(vocab_size=C, dropout=0.0, **(dict(
        d_enc=32, enc_heads=2, enc_pre_layers=1, enc_post_layers=1, d_est=32, est_heads=2, est_layers=1,
        time_dim=16, spk_dim=16) if micro else {}))
    spk_cfg = SpeakerConfig.tiny(dropout=0.0, **(dict(channels=16, dilations=(1,), emb_dim=16) if micro else {}))
    torch.manual_seed(seed)
    TextSpeechLM(lm_cfg).save_pretrained(out / "lm", text_tokenizer=tok.to_dict(), dtype=torch.float32,
                                         extra={"untrained": True})
    flow = ChunkAwareFlow(flow_cfg)
    flow.mel_mean.fill_(-6.0)  # about the corpus's mean log-mel, so the vocoder gets plausible levels
    flow.mel_std.fill_(2.0)
    flow.save_pretrained(out / "flow", half=False, extra={"untrained": True})
    SpeakerEncoder(spk_cfg).save_pretrained(out / "speaker", extra={"untrained": True})
    return out


# ----------------------------------------------------------------------------- CLI


def add_synth_args(parser, stream_flag: bool = True) -> None:
    """The options of ``minicosy synth`` / ``minicosy stream``."""
    parser.add_argument("--text", required=True, help="text to speak ('-': read standard input)")
    parser.add_argument("--prompt-wav", default=None, help="a 1–20 s recording of the voice to clone")
    parser.add_argument("--prompt-text", default=None, help="what the prompt says (zero-shot ICL); "
                        "without it only the flow imitates the voice")
    parser.add_argument("--speaker", default=None, help="an SFT voice the model was trained on")
    parser.add_argument("--out", required=True, help="output .wav or .flac (its folder must exist)")
    if stream_flag:
        parser.add_argument("--stream", action="store_true", help="synthesise through the streaming path")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed of the LM (same seed, same audio)")
    parser.add_argument("--chunk-tokens", type=int, default=None, help="streaming: flow chunk M in tokens")
    parser.add_argument("--checkpoint", default=None, help="checkpoint folder (default data/pretrained/tiny)")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda[:N]")


def _cli_request(args):
    """Check the arguments (before any model loads); returns ``(out, partial file, model, voice, text)``."""
    out = Path(args.out)
    if out.suffix.lower() not in (".wav", ".flac"):
        raise ValueError(f"--out {out}: give a .wav or .flac file name.")
    if not out.parent.is_dir():
        raise ValueError(f"--out {out}: the folder {out.parent} does not exist; create it first.")
    if args.prompt_text is not None and args.prompt_wav is None:
        raise ValueError("--prompt-text needs --prompt-wav (the recording it transcribes).")
    if args.speaker is not None and args.prompt_wav is not None:
        raise ValueError("give --prompt-wav (zero-shot) or --speaker (SFT), not both.")
    model = MiniCosy.from_pretrained(args.checkpoint, args.device)
    voice = VoiceReference.from_file(args.prompt_wav, args.prompt_text) if args.prompt_wav else None
    partial = out.with_name(f".{out.stem}.partial{out.suffix}")  # same folder: the final rename is atomic
    return out, partial, model, voice, args.text


def cli_synth(args) -> int:
    """``minicosy synth``: the whole file, written to a temporary name, then renamed (never half written)."""
    import soundfile as sf

    out, partial, model, voice, text = _cli_request(args)
    text = sys.stdin.read() if text == "-" else text
    if getattr(args, "stream", False):
        wav = np.concatenate(list(model.stream(text, voice, args.speaker, args.seed, args.chunk_tokens)))
    else:
        wav, _ = model.synthesize(text, voice, args.speaker, args.seed)
    try:
        sf.write(str(partial), np.clip(wav, -1, 1), SAMPLE_RATE, subtype="PCM_16")
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    t = model.last_timing.summary()
    print(f"wrote {out}: {t['audio_s']:.2f} s of audio in {t['total_s']:.2f} s (RTF {t['rtf']}, "
          f"first packet {t['first_packet_s']} s)")
    return 0


def cli_stream(args) -> int:
    """``minicosy stream``: chunks are written as they come (``--text -``: lines of standard input)."""
    import soundfile as sf

    out, partial, model, voice, text = _cli_request(args)
    chunks = model.stream(iter(sys.stdin) if text == "-" else text, voice, args.speaker, args.seed, args.chunk_tokens)
    try:
        with sf.SoundFile(str(partial), "w", SAMPLE_RATE, 1, subtype="PCM_16") as f:
            for k, chunk in enumerate(chunks):
                f.write(np.clip(chunk, -1, 1))
                if k == 0:
                    print(f"first packet after {model.last_timing.first_packet_s:.3f} s", flush=True)
        os.replace(partial, out)
    finally:
        chunks.close()
        partial.unlink(missing_ok=True)
    t = model.last_timing.summary()
    print(f"wrote {out}: {t['audio_s']:.2f} s of audio in {t['total_s']:.2f} s (RTF {t['rtf']}); LM "
          f"{t['lm_per_token_s']} s/token, flow {t['flow_per_chunk_s']} s/chunk, vocoder {t['vocoder_per_chunk_s']} s/chunk")
    return 0


def register_cli(groups) -> None:
    """``minicosy synth`` and ``minicosy stream`` (top-level commands)."""
    top = groups["top"]
    p = top.add_parser("synth", help="text (+ a voice prompt or an SFT speaker) → a speech file")
    add_synth_args(p)
    p.set_defaults(func=cli_synth)
    p = top.add_parser("stream", help="streaming synthesis: writes chunks as they come, prints latency")
    add_synth_args(p, stream_flag=False)
    p.set_defaults(func=cli_stream)
