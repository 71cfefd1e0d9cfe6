"""The LM's training sequences: non-streaming and streaming (N text : M speech) layouts.

Stage: text-speech LM, CosyVoice 2 §2.3 and Fig. 2 [1]. The LM reads one sequence of
embeddings and predicts, at every position, the next speech token — or a control token. One
model is trained on two layouts mixed together (the paper's *unified* streaming/non-streaming
LM):

* **non-streaming**: ``[SOS] t1 .. tL [TASK] s1 .. sT`` → targets
  ``–  –  ..  –  s1  s2 .. sT EOS`` (the output at TASK predicts s1, the output at sT predicts
  EOS; no loss on SOS or the text);
* **streaming** (N text : M speech): for every *full* block of N text tokens, the N text inputs
  then the block's M speech inputs; the last text input of a block predicts the block's first
  speech token and the last speech input predicts **FILL** ("give me more text"). Then the
  0..N−1 leftover text tokens, TASK, the remaining speech, EOS — as in the non-streaming tail.
  FILL is a target only: it is never fed back as an input.

The official code builds these in ``CosyVoice2LM.prepare_lm_input_target`` [2]; this module
returns them as readable ``(kind, id)`` lists (known-answer tests compare whole lists) and
:func:`to_tensors` turns a batch of them into padded tensors.

**The mix ratio has no default.** N:M is a property of a trained model (``LMConfig.mix_n``,
``mix_m``: 15:15 in the tiny character preset, the paper's 5:15 in ``LMConfig.paper()``), and a
sequence built with another ratio is a layout that model never saw. So :func:`can_stream` and
:func:`use_streaming` require ``n, m``, and :func:`build_sequence` requires them for the
streaming layout (the non-streaming one does not depend on them) and raises a ``ValueError``
naming ``model.cfg.mix_n, model.cfg.mix_m`` when they are missing. ``N_TEXT, M_SPEECH`` are the
paper's values, for the paper preset and for comparisons — never an implicit fallback.

Token-id layout of the LM's output (the speech head), after the official one [2]:

==================  ============================================================
``0 .. C-1``        speech codes (C = the speech tokenizer's codebook size)
``C``               EOS
``C + 1``           unused (the official ``task_id`` slot); always masked
``C + 2``           FILL
==================  ============================================================

SOS and TASK are input-only embeddings; the speech *input* embedding has only the C codes.

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §2.3 (unified streaming LM, Fig. 2).
    [2] FunAudioLLM/CosyVoice, ``cosyvoice/llm/llm.py`` (``Qwen2LM``: sos/task embeddings,
        ``mix_ratio = [5, 15]``, ``fill_token = speech_token_size + 2``).
"""

from __future__ import annotations

import random

import torch

#: Input kinds, as codes for the tensor form (0 is padding).
KINDS = {"pad": 0, "sos": 1, "text": 2, "task": 3, "speech": 4}
#: The paper's mix ratio: 5 text tokens then 15 speech tokens per streaming block [CV2 §2.3].
#: ``LMConfig.paper()`` uses it; no function here falls back to it (see the module docstring).
N_TEXT, M_SPEECH = 5, 15
IGNORE = -100  # the cross-entropy ignore index


def eos_id(codebook_size: int) -> int:
    return codebook_size


def fill_id(codebook_size: int) -> int:
    return codebook_size + 2


def head_size(codebook_size: int) -> int:
    """Outputs of the speech head: C codes, EOS, the unused slot, FILL."""
    return codebook_size + 3


def _check_ratio(fn: str, n, m) -> None:
    """A missing or non-positive N:M is an error, never a silent fallback to the paper's 5:15."""
    if n is None or m is None:
        raise ValueError(f"{fn}: the streaming layout needs the mix ratio of the model it is for: pass "
                         "n=model.cfg.mix_n, m=model.cfg.mix_m (there is no default: the tiny preset is 15:15, "
                         "the paper's 5:15 is minicosy.lm.sequence.N_TEXT, M_SPEECH).")
    if int(n) < 1 or int(m) < 1:
        raise ValueError(f"{fn}: the mix ratio must be positive, got n={n}, m={m}.")


def _check(text_ids, speech_ids, n, m, streaming: bool) -> tuple[list[int], list[int]]:
    text_ids, speech_ids = [int(t) for t in text_ids], [int(s) for s in speech_ids]
    if not text_ids:
        raise ValueError("build_sequence: text_ids is empty; every utterance needs at least one text token.")
    if not speech_ids:
        raise ValueError("build_sequence: speech_ids is empty; the utterance has no speech tokens.")
    if streaming or n is not None or m is not None:
        _check_ratio("build_sequence", n, m)
    return text_ids, speech_ids


def _tail(text: list[int], speech: list[int]) -> tuple[list, list]:
    """``text [TASK] speech`` with targets ``None.. s1 .. sT EOS`` (the non-streaming tail)."""
    inputs = [("text", t) for t in text] + [("task", None)] + [("speech", s) for s in speech]
    targets = [None] * len(text) + [("speech", s) for s in speech] + [("eos", None)]
    return inputs, targets


def build_sequence(text_ids, speech_ids, streaming: bool, n: int | None = None,
                   m: int | None = None) -> tuple[list, list]:
    """One training sequence and its targets.

    Args:
        text_ids: the utterance's text ids (L,), speaker tag included if any.
        speech_ids: its speech tokens (T,).
        streaming: the N:M interleaved layout (else ``[SOS] text [TASK] speech``).
        n, m: the mix ratio (text tokens, speech tokens per block) of the model the sequence is
            for, ``model.cfg.mix_n, model.cfg.mix_m``. Required when ``streaming``; the
            non-streaming layout ignores them (checked if given).

    Returns:
        ``(inputs, targets)``, lists of the same length. ``inputs[i]`` is ``(kind, id)`` with
        kind in ``sos text task speech`` (id ``None`` for sos/task); ``targets[i]`` is ``None``
        (no loss) or ``(kind, id)`` with kind in ``speech eos fill``.

    Raises:
        ValueError: empty text or speech; ``streaming`` without ``n, m``; in streaming, speech
            too short to fill every full block (fewer than ``(L // n) · m`` tokens) — train that
            utterance non-streaming.

    Example (n = 2, m = 3; text a b c, speech 1..7)::

        inputs : SOS  a  b      1  2  3     c  TASK  4  5  6  7
        targets: –    –  1      2  3  FILL  –  4     5  6  7  EOS

    One full block (a b | 1 2 3): b predicts 1, 3 predicts FILL; then the leftover text c,
    TASK (predicts 4), and the rest. With speech 1..3 only, TASK would predict EOS directly.
    """
    text, speech = _check(text_ids, speech_ids, n, m, streaming)
    if not streaming:
        inputs, targets = _tail(text, speech)
        return [("sos", None)] + inputs, [None] + targets
    n, m = int(n), int(m)
    n_blocks = len(text) // n
    if len(speech) < n_blocks * m:
        raise ValueError(f"build_sequence: {len(speech)} speech tokens cannot fill {n_blocks} streaming "
                         f"blocks of {m} (text of {len(text)} tokens, n={n}); train this utterance "
                         "non-streaming (see use_streaming).")
    inputs, targets = [("sos", None)], [None]
    for b in range(n_blocks):
        block_text, block_speech = text[b * n:(b + 1) * n], speech[b * m:(b + 1) * m]
        inputs += [("text", t) for t in block_text] + [("speech", s) for s in block_speech]
        # the last text input predicts the block's first speech token; the last speech, FILL
        targets += [None] * (n - 1) + [("speech", s) for s in block_speech] + [("fill", None)]
    tail_in, tail_tgt = _tail(text[n_blocks * n:], speech[n_blocks * m:])
    return inputs + tail_in, targets + tail_tgt


def can_stream(text_len: int, speech_len: int, n: int, m: int) -> bool:
    """The paper's rule: an utterance may use the streaming layout when ``T / L > M / N``.

    ``n, m``: the model's mix ratio (``model.cfg.mix_n, model.cfg.mix_m``), required.
    """
    _check_ratio("can_stream", n, m)
    # T / L > M / N  ⇔  T·N > M·L   (integers, no rounding)   [CV2 §2.3]
    return text_len > 0 and speech_len * n > m * text_len


def use_streaming(text_len: int, speech_len: int, rng: random.Random, p: float = 0.5, *,
                  n: int, m: int) -> bool:
    """Draw the layout of one training example: streaming with probability ``p`` where allowed.

    ``n, m`` (keyword-only, required): the model's mix ratio, as for :func:`can_stream`.
    """
    return can_stream(text_len, speech_len, n, m) and rng.random() < p


def target_ids(targets: list, codebook_size: int) -> list[int]:
    """Targets → head indices (``IGNORE`` for ``None``): speech id, EOS = C, FILL = C + 2."""
    out = []
    for t in targets:
        if t is None:
            out.append(IGNORE)
        elif t[0] == "speech":
            out.append(int(t[1]))
        elif t[0] == "eos":
            out.append(eos_id(codebook_size))
        elif t[0] == "fill":
            out.append(fill_id(codebook_size))
        else:
            raise ValueError(f"unknown target kind {t[0]!r}.")
    return out


def to_tensors(batch: list[tuple[list, list]], codebook_size: int) -> dict[str, torch.Tensor]:
    """Pad a batch of ``(inputs, targets)`` on the right.

    Returns:
        ``kinds (B, T)`` (``KINDS`` codes, 0 = pad), ``ids (B, T)`` (text or speech id, else 0),
        ``targets (B, T)`` (head index or ``IGNORE``), ``lengths (B,)``. Right padding needs no
        attention mask: causal attention never lets a real position see a pad after it.
    """
    T = max(len(inp) for inp, _ in batch)
    kinds = torch.zeros(len(batch), T, dtype=torch.long)
    ids = torch.zeros(len(batch), T, dtype=torch.long)
    tgt = torch.full((len(batch), T), IGNORE, dtype=torch.long)
    for b, (inp, targets) in enumerate(batch):
        kinds[b, :len(inp)] = torch.tensor([KINDS[k] for k, _ in inp])
        ids[b, :len(inp)] = torch.tensor([0 if i is None else int(i) for _, i in inp])
        tgt[b, :len(inp)] = torch.tensor(target_ids(targets, codebook_size))
    return {"kinds": kinds, "ids": ids, "targets": tgt,
            "lengths": torch.tensor([len(inp) for inp, _ in batch])}
