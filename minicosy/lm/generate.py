"""LM inference: ICL and SFT, offline or streaming, and streaming text input (bistream).

Stage: text-speech LM inference, CosyVoice 2 §2.3 (Fig. 2) and §2.6 (the four scenarios) [1].
Every mode produces exactly the input sequence the LM was trained on
(:func:`minicosy.lm.sequence.build_sequence`) — the tests check that token for token:

* **ICL** (zero-shot): ``[SOS] prompt_text + text [TASK] prompt_speech`` then continue; the
  prompt's speech tokens set the voice and style; no speaker tag.
* **SFT**: ``[SOS] <speaker tag> text [TASK]`` then generate; the tag (a text token of the
  :class:`~minicosy.text.chars.CharTokenizer`) names a voice seen in training.
* **streaming** (either of the above): the N:M interleaved layout. Text is fed N tokens at a
  time; after each block of N, M speech tokens follow — prompt speech first (forced), then
  sampled ones — and the FILL the model would predict after the M-th is *forced* by the fixed
  schedule instead of being sampled. When the text has run out: the leftover text, TASK, the
  rest of the prompt speech, then free generation up to EOS.
* **bistream**: streaming with the text itself arriving as an iterator of strings (an LLM
  writing the reply). Words are tokenised once complete (a piece ending mid-word waits for the
  next), and EOS stays masked until the iterator is exhausted.

Every mode is a generator: speech tokens come out as soon as they are sampled.

**A voice's prefix, computed once** (:class:`LMPrefix`, :func:`lm_prefix`). The part of the input
that does not depend on the text can be run through the model once per voice and its KV cache
reused: offline ``[SOS] prompt_text`` (the ICL input is ``[SOS] prompt_text + text [TASK]
prompt_speech``: the text comes before the prompt's speech, so nothing after the transcript is
shareable); streaming ``[SOS]`` and every full N:M block made of transcript and prompt speech only
(``k = min(⌊|prompt text|/N⌋, ⌊|prompt speech|/M⌋)`` blocks: the forced prompt speech does not
depend on the text either). A request *forks* the cache (a deep copy: requests never share a
mutable cache) and feeds only what follows. The official code stores a registered voice's tokens
and embeddings (``add_zero_shot_spk``) but re-runs the whole prefix through the LM every request [2].

Two bugs of the official code [2] that minicosy does not copy: (1) the token hop length is an
attribute shared by all requests, which streaming mutates, so concurrent requests interfere —
here every piece of state lives in the :class:`LMStream` object of one request; (2) at
bistream finalisation the embedding of the last speech token is concatenated again in front of
the remaining text although the cache already holds it — here the inputs are queued once and
flushed once, and :attr:`LMStream.fed` records what the cache holds (a test compares it with
the training layout).

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §2.3, §2.6.
    [2] FunAudioLLM/CosyVoice, ``cosyvoice/llm/llm.py`` (``Qwen2LM.inference``,
        ``inference_bistream``), ``cosyvoice/cli/model.py`` (``token_hop_len``),
        ``cosyvoice/cli/frontend.py`` (``frontend_zero_shot`` with ``zero_shot_spk_id``).
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch

from minicosy.lm.model import TextSpeechLM
from minicosy.lm.sampling import SamplingConfig, length_limits, mask_logits, ras_sample
from minicosy.lm.sequence import KINDS


@dataclass(frozen=True)
class LMPrefix:
    """The KV cache of a text-independent prefix of one voice's requests (module docstring).

    Attributes:
        model: the LM it was computed with (a prefix only fits its own model).
        items: the ``(kind, id)`` inputs the cache holds, in order.
        cache: their ``DynamicCache`` — never extended: :meth:`fork` copies it for each request.
        logits: ``(C + 3,)`` the model's output after the last item.
    """

    model: TextSpeechLM
    items: tuple
    cache: object
    logits: torch.Tensor

    def fork(self):
        """A private copy of the cache for one request (deep: the request extends its copy only)."""
        return copy.deepcopy(self.cache)


def prefix_items(ptext, pspeech, streaming: bool, n: int, m: int) -> list[tuple[str, int | None]]:
    """The inputs every request of one ICL voice begins with (module docstring): offline ``[SOS]
    prompt_text``; streaming ``[SOS]`` and the ``k`` full N:M blocks of transcript and prompt speech."""
    items = [("sos", None)]
    if not streaming:
        return items + [("text", int(t)) for t in ptext]
    for b in range(min(len(ptext) // n, len(pspeech) // m)):
        items += [("text", int(t)) for t in ptext[b * n:(b + 1) * n]]
        items += [("speech", int(s)) for s in pspeech[b * m:(b + 1) * m]]
    return items


def lm_prefix(model: TextSpeechLM, prompt_text_ids, prompt_speech_ids, streaming: bool) -> LMPrefix:
    """Run the shareable prefix of an ICL voice through the LM once (:class:`LMPrefix`).

    Pass it to :func:`generate` / :func:`generate_bistream` (``prefix=``) with the same prompt and
    mode: the request then starts from a fork of this cache.
    """
    _, ptext, pspeech = _validate(model, [], prompt_text_ids, prompt_speech_ids)
    dec = _Decoder(model)
    dec.push(prefix_items(ptext, pspeech, streaming, model.cfg.mix_n, model.cfg.mix_m))
    logits = dec.logits()
    return LMPrefix(model, tuple(dec.fed), dec.cache, logits)


def _check_prefix(model: TextSpeechLM, prefix: LMPrefix | None) -> None:
    if prefix is not None and (not isinstance(prefix, LMPrefix) or prefix.model is not model):
        raise ValueError("prefix must be an LMPrefix computed with this model: lm_prefix(model, prompt_text_ids, "
                         "prompt_speech_ids, streaming).")


class _Decoder:
    """Queues ``(kind, id)`` inputs and runs them through the model (with a KV cache) on demand.

    Started from an :class:`LMPrefix`, it holds a fork of the prefix's cache; pushed inputs that
    match the prefix are taken as already fed. Should the request leave the prefix (other inputs,
    or logits asked for inside it) the fork is dropped and everything is fed afresh — a prefix never
    changes *what* a request computes, only how much of it is recomputed.
    """

    def __init__(self, model: TextSpeechLM, prefix: LMPrefix | None = None):
        _check_prefix(model, prefix)
        self.model = model
        self.cache = model.new_cache() if prefix is None else prefix.fork()
        self.ahead = deque(() if prefix is None else prefix.items)  # in the cache, not yet pushed by the request
        self.fed: list[tuple[str, int | None]] = []  # what the cache holds, in order
        self.pending: list[tuple[str, int | None]] = []
        self.last_logits: torch.Tensor | None = None if prefix is None else prefix.logits

    def push(self, items) -> None:
        for it in items:
            if self.ahead and it == self.ahead[0]:
                self.fed.append(self.ahead.popleft())
                continue
            if self.ahead:
                self._leave_prefix()
            self.pending.append(it)

    def _leave_prefix(self) -> None:
        self.cache, self.ahead, self.last_logits = self.model.new_cache(), deque(), None
        self.pending, self.fed = self.fed + self.pending, []

    def logits(self) -> torch.Tensor:
        """Logits ``(C + 3,)`` after everything pushed so far (one forward pass for the queue)."""
        if self.ahead:  # asked inside the prefix: the fork holds more than was pushed
            self._leave_prefix()
        if self.pending:
            n = len(self.fed) + len(self.pending)
            if n > self.model.cfg.max_len:
                raise ValueError(f"the sequence reached {n} positions, more than the model's context "
                                 f"max_len={self.model.cfg.max_len}; synthesise shorter text (split it with "
                                 "minicosy.text.normalize.split_sentences) or use a shorter prompt.")
            dev = self.model.device
            kinds = torch.tensor([[KINDS[k] for k, _ in self.pending]], device=dev)
            ids = torch.tensor([[0 if i is None else i for _, i in self.pending]], device=dev)
            with torch.inference_mode():
                self.last_logits = self.model(kinds, ids, cache=self.cache)[0, -1].float()
            self.fed += self.pending
            self.pending = []
        return self.last_logits


class LMStream:
    """One synthesis request: iterate it for speech tokens (ints in ``[0, C)``).

    After the iteration: ``tokens`` (everything generated), ``eos`` (True if the model ended
    with EOS, False if the length cap or the context stopped it), ``fed`` (the ``(kind, id)``
    inputs the KV cache holds).
    """

    def __init__(self, model: TextSpeechLM, steps: Iterator[int]):
        self.model, self._steps = model, steps
        self.tokens: list[int] = []
        self.eos = False
        self.fed: list = []

    def __iter__(self) -> Iterator[int]:
        for tok in self._steps:
            self.tokens.append(tok)
            yield tok

    def run(self) -> list[int]:
        """Consume the stream; return all tokens."""
        for _ in self:
            pass
        return self.tokens

    def close(self) -> None:
        """End the request now: the step generator (its KV cache, the text iterator it reads) is
        closed at once instead of waiting for the cyclic garbage collector (it and this object
        refer to each other)."""
        self._steps.close()


def _validate(model: TextSpeechLM, text_ids, prompt_text_ids, prompt_speech_ids) -> tuple[list, list, list]:
    cfg = model.cfg
    text, ptext, pspeech = ([int(t) for t in x] for x in (text_ids, prompt_text_ids, prompt_speech_ids))
    for name, ids in (("text", text), ("prompt text", ptext)):
        bad = [t for t in ids if not 0 <= t < cfg.text_vocab_size]
        if bad:
            raise ValueError(f"{name} ids {bad[:5]} are outside [0, {cfg.text_vocab_size}): encode the text with "
                             "the tokenizer this model was trained with (model.text_tokenizer()).")
    bad = [t for t in pspeech if not 0 <= t < cfg.codebook_size]
    if bad:
        raise ValueError(f"prompt speech tokens {bad[:5]} are outside [0, {cfg.codebook_size}): encode the prompt "
                         "audio with the speech tokenizer this LM was trained on.")
    if bool(ptext) != bool(pspeech):
        raise ValueError("ICL needs both the prompt's text and its speech tokens; give both, or neither (SFT).")
    # the prefix, plus room for the shortest speech the length rule allows
    prefix = 2 + len(ptext) + len(text) + len(pspeech) + max(1, int(cfg.min_token_text_ratio * len(text)))
    if prefix > cfg.max_len:
        raise ValueError(f"prompt + text need {prefix} positions but the model's context is max_len={cfg.max_len}: "
                         "use a shorter prompt (a 3 s clip is plenty) and split long text with "
                         "minicosy.text.normalize.split_sentences.")
    return text, ptext, pspeech


def _free_run(stream: LMStream, dec: _Decoder, cfg: SamplingConfig, gen, n_text: int,
              generated: list[int]) -> Iterator[int]:
    """After TASK: sample until EOS, the cap, or a full context."""
    model = stream.model
    min_r = model.cfg.min_token_text_ratio if cfg.min_ratio is None else cfg.min_ratio
    max_r = model.cfg.max_token_text_ratio if cfg.max_ratio is None else cfg.max_ratio
    min_len, cap = length_limits(n_text, min_r, max_r)
    cap = min(cap, len(generated) + model.cfg.max_len - len(dec.fed) - len(dec.pending))
    C = model.cfg.codebook_size
    while len(generated) < cap:
        logits = mask_logits(dec.logits(), C, allow_eos=len(generated) >= min(min_len, cap - 1))
        tok = ras_sample(logits, generated, cfg, gen)
        if tok == C:
            stream.eos = True
            break
        generated.append(tok)
        yield tok
        dec.push([("speech", tok)])
    stream.fed = dec.fed


def generate(model: TextSpeechLM, text_ids, *, prompt_text_ids=(), prompt_speech_ids=(), speaker_id: int | None = None,
             streaming: bool = False, sampling: SamplingConfig | None = None,
             generator: torch.Generator | None = None, prefix: LMPrefix | None = None) -> LMStream:
    """Synthesise speech tokens for ``text_ids`` (ICL with a prompt, SFT with a speaker tag).

    Args:
        model: the LM (eval mode).
        text_ids: text to speak, ids of the model's text tokenizer (L,).
        prompt_text_ids, prompt_speech_ids: the ICL prompt (its transcript's ids and its speech
            tokens); both or neither.
        speaker_id: SFT speaker-tag id (``tokenizer.speaker_id(name)``), prepended to the text.
        streaming: the N:M interleaved layout (``model.cfg.mix_n : mix_m``).
        sampling: decoding settings (default :class:`SamplingConfig`).
        generator: a seeded ``torch.Generator`` (CPU) for repeatable draws.
        prefix: :func:`lm_prefix` of this prompt and mode: the request forks its KV cache instead
            of running the prefix again (one of another prompt is detected and simply recomputed).

    Returns:
        an :class:`LMStream`; iterate it for tokens.

    Raises:
        ValueError: empty text, ids out of range, prompt + text longer than the context.
    """
    text = [int(t) for t in text_ids]
    if not text:
        raise ValueError("text is empty: give at least one word to speak.")
    if speaker_id is not None:
        if prompt_speech_ids is not None and len(prompt_speech_ids):
            raise ValueError("give a speaker tag (SFT) or a prompt (ICL), not both.")
        text = [int(speaker_id)] + text
    text, ptext, pspeech = _validate(model, text, prompt_text_ids, prompt_speech_ids)
    _check_prefix(model, prefix)
    n_text = len(text) - (speaker_id is not None)
    if streaming:
        return _interleaved(model, ptext, iter([text]), pspeech, sampling, generator, n_tag=len(text) - n_text,
                            prefix=prefix)
    stream = LMStream(model, iter(()))
    stream._steps = _offline(stream, text, ptext, pspeech, sampling or SamplingConfig(), generator, n_text, prefix)
    return stream


def _offline(stream, text, ptext, pspeech, cfg, gen, n_text, prefix=None) -> Iterator[int]:
    dec = _Decoder(stream.model, prefix)
    dec.push([("sos", None)] + [("text", t) for t in ptext + text] + [("task", None)]
             + [("speech", s) for s in pspeech])
    yield from _free_run(stream, dec, cfg, gen, n_text, [])


def _interleaved(model, ptext: list[int], chunks: Iterator[list[int]], pspeech: list[int],
                 sampling: SamplingConfig | None, gen, n_tag: int = 0, prefix: LMPrefix | None = None) -> LMStream:
    """Streaming layout; ``chunks`` yields lists of text ids as the text arrives."""
    stream = LMStream(model, iter(()))
    cfg = sampling or SamplingConfig()
    N, M, C = model.cfg.mix_n, model.cfg.mix_m, model.cfg.codebook_size

    def steps() -> Iterator[int]:
        dec = _Decoder(model, prefix)
        dec.push([("sos", None)])
        buf, prompt, generated = list(ptext), deque(pspeech), []
        n_new, ended = 0, False
        while True:
            while len(buf) < N and not ended:  # wait for a full block of text (bistream: pull more)
                try:
                    chunk = [int(t) for t in next(chunks)]
                except StopIteration:
                    ended = True
                    break
                bad = [t for t in chunk if not 0 <= t < model.cfg.text_vocab_size]
                if bad:
                    raise ValueError(f"text ids {bad[:5]} are outside [0, {model.cfg.text_vocab_size}).")
                buf += chunk
                n_new += len(chunk)
            if len(buf) < N:
                break
            dec.push([("text", t) for t in buf[:N]])
            del buf[:N]
            for _ in range(M):  # the block's M speech tokens; FILL after them is forced by the schedule
                if prompt:
                    dec.push([("speech", prompt.popleft())])
                    continue
                tok = ras_sample(mask_logits(dec.logits(), C, allow_eos=False), generated, cfg, gen)
                generated.append(tok)
                yield tok
                dec.push([("speech", tok)])
        if n_new - n_tag <= 0:
            raise ValueError("the text stream was empty: give at least one word to speak.")
        dec.push([("text", t) for t in buf] + [("task", None)] + [("speech", s) for s in prompt])
        yield from _free_run(stream, dec, cfg, gen, n_new - n_tag, generated)

    stream._steps = steps()
    return stream


def encode_icl(tokenizer, prompt_text: str, text: str) -> tuple[list[int], list[int]]:
    """Ids of an ICL prompt transcript and of the text to speak, with a space between the two
    (the LM reads ``prompt_text + " " + text`` as one text)."""
    return tokenizer.encode(prompt_text), tokenizer.encode(" " + text.lstrip())


def _complete_words(pieces: Iterable[str]) -> Iterator[str]:
    """Re-cut a text stream at whitespace: each output holds only complete words, and every
    output after the first starts with the space that separated it from the previous one."""
    buf = ""
    for piece in pieces:
        if not isinstance(piece, str):
            raise ValueError(f"the text stream must yield str pieces, got {type(piece).__name__}.")
        buf += piece
        cut = max(buf.rfind(" "), buf.rfind("\n"), buf.rfind("\t"))
        if cut > 0 and buf[:cut].strip():
            yield buf[:cut]
            buf = buf[cut:]
    if buf.strip():
        yield buf


def generate_bistream(model: TextSpeechLM, text_pieces: Iterable[str], tokenizer, *, prompt_text: str = "",
                      prompt_speech_ids=(), speaker: str | None = None, sampling: SamplingConfig | None = None,
                      generator: torch.Generator | None = None, prefix: LMPrefix | None = None) -> LMStream:
    """Streaming text in, streaming speech tokens out (the paper's bistream mode).

    Args:
        text_pieces: an iterable of strings (e.g. an LLM's output as it is written).
        tokenizer: the text tokenizer (``encode(str) -> list[int]``; ``speaker_id(name)`` for SFT).
        prompt_text, prompt_speech_ids: the ICL prompt (both or neither).
        speaker: an SFT speaker name (its tag is fed before the text).
        prefix: :func:`lm_prefix` of this prompt, streaming (as for :func:`generate`).

    Returns:
        an :class:`LMStream`. Text is consumed lazily, only when a new block of ``mix_n`` text
        tokens is needed; EOS is masked until ``text_pieces`` is exhausted.
    """
    ptext = tokenizer.encode(prompt_text) if prompt_text else []
    if speaker is not None and len(prompt_speech_ids):
        raise ValueError("give a speaker (SFT) or a prompt (ICL), not both.")
    _, ptext, pspeech = _validate(model, [], ptext, prompt_speech_ids)
    _check_prefix(model, prefix)
    tag = [tokenizer.speaker_id(speaker)] if speaker is not None else []

    def chunks() -> Iterator[list[int]]:
        if tag:
            yield tag
        for k, words in enumerate(_complete_words(text_pieces)):
            if k == 0 and ptext:  # a space between the prompt's transcript and the new text
                words = " " + words.lstrip()
            ids = tokenizer.encode(words)
            if ids:
                yield ids

    return _interleaved(model, ptext, chunks(), pspeech, sampling, generator, n_tag=len(tag), prefix=prefix)
