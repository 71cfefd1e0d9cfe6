"""minicosy — a compact, documented reference implementation of CosyVoice 2.

The public API is loaded lazily: ``import minicosy`` imports no torch; touching a name such as
``minicosy.SpeechTokenizer`` imports the stage that defines it (PEP 562 module ``__getattr__``).

Stages, one folder each, in pipeline order (each matches a notebook):

    data/              corpus build, loaders, manifest                     notebook 00
    text/              normalisation, the BPE text tokenizer              notebook 00
    speech_tokenizer/  16 kHz speech → 25 Hz FSQ tokens                   notebook 01
    lm/                text (+ prompt tokens) → 25 Hz speech tokens       notebook 02
    flow/              speech tokens + prompt mel + speaker → 50 Hz mel   notebooks 03, 04
    vocoder/           80-bin log-mel (50 Hz) → 24 kHz waveform           notebook 05
    system/            MiniCosy: front end, synthesis and streaming, CLI  notebooks 06, 07
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: public name → the module that defines it
_PUBLIC = {
    "TTSConfig": "minicosy.config",
    "MelConfig": "minicosy.config",
    "load_audio": "minicosy.audio",
    "save_audio": "minicosy.audio",
    "log_mel": "minicosy.audio",
    "seed_everything": "minicosy.utils",
    "pick_device": "minicosy.utils",
    "TextTokenizer": "minicosy.text.tokenizer",
    "FSQ": "minicosy.speech_tokenizer.fsq",
    "SpeechTokenizer": "minicosy.speech_tokenizer.model",
    "Vocoder": "minicosy.vocoder.hift",
    "griffin_lim": "minicosy.vocoder.griffinlim",
    "CharTokenizer": "minicosy.text.chars",
    "build_sequence": "minicosy.lm.sequence",
    "LMConfig": "minicosy.lm.model",
    "TextSpeechLM": "minicosy.lm.model",
    "attention_mask": "minicosy.flow.masks",
    "conditional_flow": "minicosy.flow.matching",
    "FlowConfig": "minicosy.flow.model",
    "ChunkAwareFlow": "minicosy.flow.model",
    "SpeakerEncoder": "minicosy.flow.speaker",
    "MiniCosy": "minicosy.system.model",
    "VoiceReference": "minicosy.system.frontend",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value  # cache: the next access is a plain attribute
        return value
    raise AttributeError(f"module 'minicosy' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_PUBLIC))
