"""The front end: what a request brings (text, a voice), checked, and the voice prompt processed once.

Stage: system layer, the input side of :class:`~minicosy.system.model.MiniCosy` — the official
``cosyvoice/cli/frontend.py`` [2] without its global state: CosyVoice 2 §2.6 (the inference
scenarios) [1]. One :class:`FrontEnd` per model holds the frozen speech tokenizer and speaker
encoder; each voice becomes a :class:`Prompt` once (:meth:`FrontEnd.prompt`), which a request may
pass again instead of the recording (``synthesize(text, voice=prompt)``), or which is registered
under a name (:meth:`FrontEnd.register`, then ``voice="name"``; the official ``add_zero_shot_spk``).

**Registered voices** (:meth:`FrontEnd.register`) hold everything that does not depend on the
text: the prompt's tokens, mel and speaker vector, and the LM's KV cache of the shareable prefix
(:func:`~minicosy.lm.generate.lm_prefix`, offline and streaming) — each request forks it.
``Prompt.flow_state`` holds the flow's prompt block (:meth:`ChunkAwareFlow.prompt_state`), forked per
stream: with a ``prompt_lookahead="clip"`` flow the block (encoder + every ODE step over the prompt) is
computed at registration and a stream starts after it; a ``"cross"`` flow's block needs the first
generated tokens, so its state keeps the checked inputs only and each stream computes the block itself,
exactly as an unregistered voice would. The registration rules:

* a name is a non-empty ``str`` that is not an SFT voice (``model.speakers``) — ``speaker=`` and
  ``voice=`` would otherwise mean two voices by one name;
* a registered voice is a *snapshot*: its fingerprint is the SHA-256 of the audio samples, the
  sample rate and the transcript. Registering a taken name again is a no-op for the same
  fingerprint and refused for another (``remove`` it first);
* passing the registered :class:`VoiceReference` object itself (``voice=ref``) uses the snapshot —
  after checking the fingerprint: an object changed in place since it was registered is refused
  (register the new recording under another name, or remove and register again). A *different*
  object is always processed afresh, even with the same content.

Bad input raises ``ValueError`` saying what to do, before any model runs:

* **text** — :func:`speakable` (characters the model cannot read are removed with a warning; text
  without a letter is refused); a ``str`` is split into sentences (:func:`split_sentences`,
  ≤ :data:`MAX_WORDS` words), a text stream is cut on the fly (:func:`stream_sentences`).
* **audio** — :class:`VoiceReference`: mono float audio of 1–20 s, ≥ 8 kHz, not silent, with a
  transcript whose length fits its duration.
* **SFT voices** — their flow speaker vector is the centroid stored in ``speaker.json`` at export
  (``"centroids"``: each train voice's normalised mean vector); a voice without one is refused.
* **the LM's context** — a sentence is accepted only if the LM can finish it inside its context
  in the worst case its length rule allows (:meth:`FrontEnd.positions`): the prefix (SOS, prompt
  transcript, speaker tag, text, TASK, prompt tokens) plus ``⌊max_token_text_ratio · |text|⌋``
  speech tokens — or, streaming, the speech its N:M blocks force, if more. So neither mode ever
  meets the end of the context: offline never truncates, streaming never fails mid-stream, and
  both accept the same requests. A sentence too long for that is cut at word boundaries into
  pieces that fit (as ``MAX_WORDS`` cuts); what cannot fit even one word — a voice prompt that
  fills the context — is refused up front. (A text *stream* is cut the same way as its words
  arrive; only a single word too long for the context can fail after audio has gone out.)

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §2.6.
    [2] FunAudioLLM/CosyVoice, ``cosyvoice/cli/frontend.py`` (``frontend_zero_shot``,
        ``frontend_sft``, ``add_zero_shot_spk``).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from minicosy.audio import check_waveform
from minicosy.text.chars import UNK_ID
from minicosy.text.normalize import MAX_CHARS, normalize_english, split_sentences

SAMPLE_RATE = 24000  # the flow's mel and the vocoder's output
MIN_PROMPT_S, MAX_PROMPT_S = 1.0, 20.0  # 3–10 s is the sweet spot; 20 s fills most of the tiny LM's context
MIN_PROMPT_RATE = 8000  # Hz; the speech tokenizer refuses less
MIN_CPS, MAX_CPS = 4.0, 40.0  # plausible transcript characters per second (the corpus reads 12–26)
SILENCE_PEAK = 1e-3  # −60 dBFS: a prompt quieter than this everywhere is silence
MAX_WORDS = 30  # words per sentence piece (split_sentences); the context rule may cut shorter

# ----------------------------------------------------------------------------- text


def strip_unreadable(text: str, tokenizer) -> tuple[str, list[str]]:
    """Replace by spaces the non-ASCII characters the tokenizer cannot read; returns ``(text, removed)``."""
    ok: dict[str, bool] = {}
    out, removed = [], []
    for c in text:
        if c.isascii():
            out.append(c)
            continue
        if c not in ok:
            ids = tokenizer.encode(c)
            # spaces, punctuation and combining accents are the normaliser's business; the rest must
            # become ids the tokenizer knows (é → e, ½ → one half, Ａ → a)
            ok[c] = unicodedata.category(c)[0] in "ZPM" or (bool(ids) and UNK_ID not in ids)
        out.append(c if ok[c] else " ")
        if not ok[c] and c not in removed:
            removed.append(c)
    return "".join(out), removed


def speakable(text: str, tokenizer) -> str:
    """Check text and remove the characters the model cannot read, with a warning naming them.

    Policy: a non-ASCII character stays if the normaliser turns it into something the tokenizer
    knows (``é`` → ``e``, ``½``, full-width letters, curly quotes, dashes); letters of other
    scripts (Cyrillic, CJK ...) and symbols the normaliser would drop (emoji) are replaced by a
    space and listed in a ``UserWarning``. Text left without a single letter is refused.

    Raises:
        ValueError: not a string, empty or whitespace, or nothing speakable left.
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}.")
    if not text.strip():
        raise ValueError("text is empty (or only whitespace); give at least one word to speak.")
    clean, removed = strip_unreadable(text, tokenizer)
    if not any(c.isascii() and c.isalpha() for c in normalize_english(clean)):
        raise ValueError(f"nothing speakable in the text {text[:40]!r}: this model reads English letters only. "
                         "Transliterate other scripts and spell symbols out in words.")
    if removed:
        warnings.warn(f"removed characters this model cannot read: {''.join(removed[:20])!r} (it reads English; "
                      "transliterate other scripts)", UserWarning, stacklevel=3)
    return clean


_WORD = re.compile(r"\s*\S+(?=\s)")  # a complete word: the text after it has started
_SENTENCE_END = re.compile(r"[.?!][\"')\]]*$")


def stream_words(pieces: Iterable[str]) -> Iterator[str]:
    """Re-cut a text stream into complete words, each with the whitespace before it."""
    buf = ""
    for piece in pieces:
        if not isinstance(piece, str):
            raise ValueError(f"the text stream must yield str pieces, got {type(piece).__name__}.")
        buf += piece
        pos = 0
        for m in _WORD.finditer(buf):
            yield m.group()
            pos = m.end()
        buf = buf[pos:]
    if buf.strip():
        yield buf


def stream_sentences(pieces: Iterable[str], max_words: int = MAX_WORDS,
                     fits: Callable[[str], bool] | None = None) -> Iterator[Iterator[str]]:
    """A text stream → a stream of sentences, each an iterator of words (consume each before the next).

    A sentence ends at a word ending in ``. ? !``, after ``max_words`` words, or before a word
    with which ``fits(sentence so far)`` would be false — a simpler rule than
    :func:`~minicosy.text.normalize.split_sentences` (no abbreviation list), since a stream
    cannot look ahead.

    Raises:
        ValueError: (while iterating) a single word for which ``fits`` is false.
    """
    words, held = stream_words(pieces), []  # held: the word that ended the previous sentence unread

    def next_word():
        return held.pop() if held else next(words, None)

    def sentence(w: str) -> Iterator[str]:
        text, n = "", 0
        while w is not None:
            w = w.lstrip() if n == 0 else w
            if fits is not None and not fits(text + w):
                if n == 0:
                    raise ValueError(f"the word {w.strip()[:40]!r} does not fit the LM's context with this voice "
                                     "prompt: use a shorter prompt (3–10 s works best).")
                held.append(w)
                return
            text, n = text + w, n + 1
            yield w
            if _SENTENCE_END.search(w) or n >= max_words:
                return
            w = next_word()

    while (first := next_word()) is not None:
        yield sentence(first)


# ----------------------------------------------------------------------------- audio and the voice prompt


def as_mono(audio, name: str) -> np.ndarray:
    """Audio policy: float32 ``(T,)``; any float dtype is cast; ``(C, T)`` / ``(T, C)`` with ``C ≤ 8`` is
    downmixed (the mean of the channels); integers, NaN/Inf, empty audio are refused."""
    a = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else audio
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{name} must be a NumPy array or a torch tensor, got {type(a).__name__}.")
    if a.ndim == 2 and min(a.shape) <= 8 and np.issubdtype(a.dtype, np.floating):
        a = a.mean(axis=0 if a.shape[0] <= a.shape[1] else 1)
    check_waveform(a, name=name)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected mono (T,) or a few channels, got shape {a.shape}.")
    return np.ascontiguousarray(a, dtype=np.float32)


@dataclass
class VoiceReference:
    """A reference recording (and optionally its transcript) to clone a voice from.

    Input policy (each refused case raises ``ValueError`` saying what to do):

    * ``audio``: ``(T,)`` float; float64 (or any float) is cast to float32; two-dimensional audio
      with one side of at most 8 is taken as channels and **downmixed** (the mean); integer PCM,
      NaN/Inf and empty audio are refused.
    * ``sample_rate`` ≥ 8 kHz, any rate: resampled to 16 kHz (tokenizer) and 24 kHz (mel). Below
      16 kHz the prompt has no content above half its rate and the clone sounds muffled: a warning.
    * duration 1–20 s (3–10 s is best); a prompt silent everywhere (peak < −60 dBFS) is refused.
    * ``transcript``: ``None`` (flow-prompt-only mode) or the words spoken, at 4–40 normalised
      characters per second of audio — outside that it cannot be the transcript of this clip.
    """

    audio: np.ndarray
    sample_rate: int
    transcript: str | None = None

    def __post_init__(self):
        self.audio = as_mono(self.audio, "voice audio")
        if not isinstance(self.sample_rate, (int, np.integer)) or self.sample_rate < MIN_PROMPT_RATE:
            raise ValueError(f"voice sample_rate must be an integer ≥ {MIN_PROMPT_RATE} Hz, got {self.sample_rate!r}.")
        self.sample_rate = int(self.sample_rate)
        s = self.duration_ms / 1000
        if not MIN_PROMPT_S <= s <= MAX_PROMPT_S:
            raise ValueError(f"the voice prompt lasts {s:.2f} s; give a clip of {MIN_PROMPT_S:g}–{MAX_PROMPT_S:g} s "
                             "(3–10 s of clean speech works best): trim or record another.")
        if float(np.abs(self.audio).max()) < SILENCE_PEAK:
            raise ValueError("the voice prompt is silent (peak below −60 dBFS): record the speaker again or check "
                             "the file (a muted input, or integer PCM read as tiny floats).")
        if self.sample_rate < 16000:
            warnings.warn(
                f"the voice prompt is {self.sample_rate} Hz: it is resampled, but it holds nothing above "
                f"{self.sample_rate // 2} Hz, so the cloned voice will sound muffled.",
                UserWarning,
                stacklevel=3,
            )
        if self.transcript is not None:
            self._check_transcript(s)

    def _check_transcript(self, s: float) -> None:
        if not isinstance(self.transcript, str) or not self.transcript.strip():
            raise ValueError("the voice transcript is empty: give the words spoken in the clip, or "
                             "transcript=None (the flow then imitates the voice, the LM reads without a prompt).")
        n = len(normalize_english(self.transcript, lowercase=True))
        cps = n / s
        if not MIN_CPS <= cps <= MAX_CPS:
            raise ValueError(f"the transcript has {n} characters for {s:.2f} s of audio ({cps:.1f} characters/s, "
                             f"plausible: {MIN_CPS:g}–{MAX_CPS:g}); it cannot be what the clip says. Give the "
                             "exact words of this clip, or transcript=None.")

    @classmethod
    def from_file(cls, path: str | Path, transcript: str | None = None) -> "VoiceReference":
        """Read a WAV/FLAC/OGG at its own rate (several channels are averaged)."""
        import soundfile as sf

        from minicosy.audio import load_audio

        path = Path(path)
        if not path.is_file():
            raise ValueError(f"voice prompt file not found: {path}")
        try:
            rate = sf.info(str(path)).samplerate
        except Exception as exc:  # libsndfile's own error types
            raise ValueError(f"cannot read the voice prompt {path}: {exc}. Give a WAV/FLAC/OGG recording.") from exc
        return cls(load_audio(path, rate), rate, transcript)

    @property
    def duration_ms(self) -> float:
        return 1000.0 * self.audio.shape[0] / self.sample_rate


@dataclass
class Prompt:
    """What a request conditions on, computed once per voice: the LM prompt and the flow prompt.

    ICL: ``lm_text`` + ``lm_tokens`` and the flow prompt; flow-prompt-only: the flow prompt alone;
    SFT: ``speaker_tag`` and the voice's stored ``spk``.
    """

    lm_text: str = ""  # ICL transcript ("" = no LM prompt)
    lm_tokens: list = field(default_factory=list)  # the prompt's speech tokens, as the LM reads them
    speaker_tag: str | None = None  # SFT
    flow_tokens: torch.Tensor | None = None  # (T_p,)
    flow_mel: torch.Tensor | None = None  # (80, up·T_p)
    spk: torch.Tensor | None = None  # (spk_dim,)
    lm_prefix: dict = field(default_factory=dict)  # {"offline"|"stream": LMPrefix}: KV caches, forked per request
    flow_state: object | None = None  # FlowPromptState, forked per stream (registered voices); None: made per stream
    name: str | None = None  # the registered name, if any
    fingerprint: str | None = None  # of the recording it was made from (fingerprint())


def fingerprint(voice: VoiceReference) -> str:
    """SHA-256 of a recording's samples, sample rate and transcript: what registration snapshots."""
    h = hashlib.sha256(np.ascontiguousarray(voice.audio).tobytes())
    h.update(f"|{voice.sample_rate}|{voice.transcript!r}".encode())
    return h.hexdigest()


# ----------------------------------------------------------------------------- the front end


class FrontEnd:
    """Prompt processing and the text policy of one model (``MiniCosy.frontend``).

    Args:
        tokenizer: the speech tokenizer (16 kHz audio → 25 Hz tokens).
        speaker: the speaker encoder; its ``speaker.json`` holds the SFT voices' centroids.
        text_tokenizer: the LM's text tokenizer (with the SFT speaker tags).
        lm_cfg: the LM's config (context ``max_len``, length rule, N:M blocks).
        up: flow frames per token (2: 25 → 50 Hz).
        lm: the LM itself, for the prefix caches of registered voices (None: no prefix caches).
        flow: the flow, for the prompt-block state of registered voices (None: no flow state).
    """

    def __init__(self, tokenizer, speaker, text_tokenizer, lm_cfg, up: int = 2, lm=None, flow=None):
        self.tokenizer, self.speaker, self.text_tokenizer, self.lm_cfg, self.up, self.lm, self.flow = (
            tokenizer, speaker, text_tokenizer, lm_cfg, up, lm, flow)
        self.voices: dict[str, Prompt] = {}  # registered zero-shot voices
        self._refs: dict[int, tuple[weakref.ref, str]] = {}  # id(VoiceReference) → (the object, its name)

    # ------------------------------------------------------------------ voices

    def speech_tokens(self, audio, sample_rate: int) -> torch.LongTensor:
        """Audio ``(T,)`` at any rate ≥ 8 kHz → 25 Hz speech tokens ``(T // 640 at 16 kHz,)``."""
        return self.tokenizer.encode(as_mono(audio, "audio"), sample_rate)

    def speaker_vector(self, name: str) -> torch.Tensor:
        """The flow's speaker vector ``(spk_dim,)`` of an SFT voice: its centroid in ``speaker.json``.

        The speaker trainer stores each train voice's centroid at export (``"centroids"``:
        ``{voice: [floats]}``, the normalised mean of the voice's vectors,
        :func:`minicosy.flow.speaker.centroids`); nothing else is read at run time.

        Raises:
            ValueError: a voice the LM has no tag for, or one whose centroid the export lacks.
        """
        self.text_tokenizer.speaker_id(name)  # unknown names: a message listing the known ones
        stored = (getattr(self.speaker, "meta", None) or {}).get("centroids") or {}
        if name not in stored:
            raise ValueError(f"no speaker vector for SFT voice {name!r}: speaker.json stores no centroid for it "
                             f"({len(stored)} stored). Re-export the speaker encoder with `minicosy train speaker` "
                             "(it stores every train voice's centroid), or pass a recording instead (voice=...).")
        return torch.nn.functional.normalize(torch.tensor(stored[name], dtype=torch.float32), dim=0)

    def register(self, name: str, voice: VoiceReference) -> Prompt:
        """Process a recording once and keep it under ``name`` (the rules: module docstring).

        Returns:
            the registered :class:`Prompt`, its LM prefix caches and flow prompt state computed.

        Raises:
            ValueError: not a ``VoiceReference``; an empty or non-``str`` name; the name of an SFT
                voice; a name registered with another recording.
        """
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a registered voice needs a non-empty name, got {name!r}.")
        if name in self.text_tokenizer.speakers:
            raise ValueError(f"{name!r} is a training (SFT) voice of this model: use speaker={name!r} for it, or "
                             "register the recording under another name.")
        if not isinstance(voice, VoiceReference):
            raise ValueError(f"register a VoiceReference (VoiceReference.from_file(path, transcript)), "
                             f"got {type(voice).__name__}.")
        fp = fingerprint(voice)
        old = self.voices.get(name)
        if old is not None and old.fingerprint != fp:
            raise ValueError(f"a voice {name!r} is already registered with another recording; "
                             f"remove_voice({name!r}) first to replace it, or choose another name.")
        if old is None:
            p = self._process(voice)
            p.name, p.fingerprint = name, fp
            for streaming in (False, True):
                self.lm_prefix(p, streaming)
            if self.flow is not None:
                with torch.inference_mode():
                    p.flow_state = self.flow.prompt_state(p.flow_tokens, p.flow_mel, p.spk)
            self.voices[name] = old = p
        self._refs[id(voice)] = (weakref.ref(voice), name)
        return old

    def remove(self, name: str) -> None:
        """Forget a registered voice (its caches are freed with the last request that uses them)."""
        if name not in self.voices:
            raise ValueError(f"no registered voice {name!r} (registered: {sorted(self.voices)}).")
        del self.voices[name]
        self._refs = {k: (r, n) for k, (r, n) in self._refs.items() if n != name and r() is not None}

    def _registered(self, voice: VoiceReference) -> Prompt | None:
        """The snapshot of a registered ``VoiceReference`` object, checked unchanged; None if not registered."""
        ref, name = self._refs.get(id(voice), (None, None))
        if ref is None or ref() is not voice or name not in self.voices:
            return None
        if fingerprint(voice) != self.voices[name].fingerprint:
            raise ValueError(f"this VoiceReference was registered as {name!r} and its audio or transcript has changed "
                             f"since: register the new recording under another name, or remove_voice({name!r}) and "
                             "register it again (a registered voice is a snapshot).")
        return self.voices[name]

    def lm_prefix(self, p: Prompt, streaming: bool):
        """The LM prefix cache of an ICL prompt for one mode (computed once, kept in ``p``); None without one."""
        if self.lm is None or not p.lm_text:
            return None
        mode = "stream" if streaming else "offline"
        if mode not in p.lm_prefix:
            from minicosy.lm.generate import lm_prefix

            p.lm_prefix[mode] = lm_prefix(self.lm, self.text_tokenizer.encode(p.lm_text), p.lm_tokens, streaming)
        return p.lm_prefix[mode]

    def prompt(self, voice=None, speaker: str | None = None) -> Prompt:
        """Resolve the scenario and process the voice: ICL (a recording with its transcript),
        flow-prompt-only (without), SFT (``speaker``, or the first SFT voice when neither is given).

        ``voice`` is a :class:`VoiceReference`, a :class:`Prompt` (returned as it is), or the name
        of a voice :meth:`register` ed (the registered object itself also finds its snapshot).
        """
        if voice is not None and speaker is not None:
            raise ValueError("give a voice recording (zero-shot) or a speaker name (SFT), not both.")
        if voice is None:
            if speaker is None:
                if not self.text_tokenizer.speakers:
                    raise ValueError("this model has no SFT voices: pass voice=VoiceReference(...) to clone one.")
                speaker = self.text_tokenizer.speakers[0]
            return Prompt(speaker_tag=speaker, spk=self.speaker_vector(speaker))
        if isinstance(voice, Prompt):
            return voice
        if isinstance(voice, str):
            if voice not in self.voices:
                hint = (
                    f" ({voice!r} is an SFT voice: speaker={voice!r})" if voice in self.text_tokenizer.speakers else ""
                )
                raise ValueError(f"no registered voice {voice!r}{hint} (registered: {sorted(self.voices)}); "
                                 "model.register_voice(name, VoiceReference(...)) first.")
            return self.voices[voice]
        if not isinstance(voice, VoiceReference):
            raise ValueError(f"voice must be a VoiceReference, got {type(voice).__name__}.")
        return self._registered(voice) or self._process(voice)

    def _process(self, voice: VoiceReference) -> Prompt:
        """Resample to 24 kHz, log-mel, 25 Hz tokens, ``up`` frames per token, speaker vector."""
        import librosa

        from minicosy.audio import log_mel
        from minicosy.flow.model import align_tokens_and_frames

        wav24 = voice.audio if voice.sample_rate == SAMPLE_RATE else librosa.resample(
            voice.audio, orig_sr=voice.sample_rate, target_sr=SAMPLE_RATE)
        mel = log_mel(torch.from_numpy(np.ascontiguousarray(wav24, dtype=np.float32)).to(self.speaker.device))
        tokens = self.speech_tokens(voice.audio, voice.sample_rate)
        # the LM and the flow see the same prompt tokens: `up` frames each   [official frontend]
        tokens, mel = align_tokens_and_frames(tokens, mel, self.up)
        p = Prompt(flow_tokens=tokens, flow_mel=mel, spk=self.speaker.embed(mel))
        if voice.transcript is not None:
            p.lm_text, p.lm_tokens = speakable(voice.transcript, self.text_tokenizer), tokens.tolist()
        return p

    # ------------------------------------------------------------------ text

    def lm_text_ids(self, p: Prompt, sentence: str) -> tuple[list[int], list[int]]:
        """``(prompt transcript ids, text ids)`` the LM reads for one sentence (ICL: ``" " + text``)."""
        tok = self.text_tokenizer
        if p.lm_text:
            return tok.encode(p.lm_text), tok.encode(" " + sentence.lstrip())
        return [], tok.encode(sentence)

    def positions(self, p: Prompt, sentence: str) -> int:
        """The most LM positions one sentence can take (the context rule of the module docstring).

        ``prefix = 2 + |prompt text| + |tag| + |text| + |prompt tokens|`` (SOS and TASK); the speech
        after it is at most ``max(1, ⌊max_token_text_ratio·|text|⌋)`` tokens — or, streaming, the
        ``k·M − |prompt tokens|`` tokens forced by the ``k = ⌊(|prompt text| + |tag| + |text|)/N⌋``
        full N:M blocks, if more.
        """
        cfg = self.lm_cfg
        ptext, text = self.lm_text_ids(p, sentence)
        n_tag = 1 if p.speaker_tag else 0
        prefix = 2 + len(ptext) + n_tag + len(text) + len(p.lm_tokens)
        cap = max(1, int(cfg.max_token_text_ratio * len(text)))
        forced = (len(ptext) + n_tag + len(text)) // cfg.mix_n * cfg.mix_m - len(p.lm_tokens)
        return prefix + max(cap, forced)

    def fits(self, p: Prompt, sentence: str) -> bool:
        return self.positions(p, sentence) <= self.lm_cfg.max_len

    def _cut_to_fit(self, p: Prompt, sentence: str) -> list[str]:
        """``[sentence]`` if it fits the context, else its words in the longest pieces that do."""
        if self.fits(p, sentence):
            return [sentence]
        pieces, cur = [], ""
        for w in sentence.split():
            if cur and self.fits(p, f"{cur} {w}"):
                cur = f"{cur} {w}"
                continue
            if not self.fits(p, w):
                raise self._no_room(p, w)
            if cur:
                pieces.append(cur)
            cur = w
        return pieces + [cur]

    def _no_room(self, p: Prompt, word: str) -> ValueError:
        return ValueError(f"the word {word[:40]!r} does not fit the LM's context with this voice prompt: one request "
                          f"would need {self.positions(p, word)} positions and the context holds "
                          f"{self.lm_cfg.max_len} (the prompt alone takes {len(p.lm_tokens)} speech tokens and its "
                          "transcript). Use a shorter voice prompt (3–10 s works best) or shorter words.")

    def sentences(self, text: str, p: Prompt, max_chars: float = MAX_CHARS) -> list[str]:
        """A ``str`` → its speakable sentences, each cut to fit the LM's context (checked here, up front).

        Raises:
            ValueError: no speakable text, more than ``max_chars`` characters (``synthesize``), or a
                voice prompt that leaves no room for a word.
        """
        text = speakable(text, self.text_tokenizer)
        if len(text.strip()) > max_chars:
            raise ValueError(
                f"text is {len(text.strip())} characters; synthesize() keeps the whole waveform and stops at "
                f"{MAX_CHARS}. Use MiniCosy.stream(text) (or `minicosy stream`), which reads it sentence "
                "by sentence."
            )
        return [piece for s in split_sentences(text, MAX_WORDS) if any(c.isalnum() for c in s)
                for piece in self._cut_to_fit(p, s)]

    def stream_text(self, text, p: Prompt) -> Iterable:
        """What ``stream`` reads: the sentences of a ``str`` (as :meth:`sentences`, any length), or a
        text stream cut into sentences as it arrives (:func:`stream_sentences`, cut to fit)."""
        if isinstance(text, str):
            return self.sentences(text, p, max_chars=float("inf"))
        if not isinstance(text, Iterable):
            raise ValueError(f"text must be a str or an iterable of str, got {type(text).__name__}.")
        if not self.fits(p, "a"):
            raise self._no_room(p, "a")  # checked up front: the prompt alone fills the context
        return stream_sentences(
            text, MAX_WORDS, fits=lambda s: self.fits(p, strip_unreadable(s, self.text_tokenizer)[0])
        )
