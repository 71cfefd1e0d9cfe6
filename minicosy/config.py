"""Configuration: the public TTS config, the two mel front ends, and presets.

CosyVoice 2 (arXiv 2412.10117) runs at three rates (docs/paper_vs_code.md §1):

    text ──BPE──▶ LM ──25 Hz speech tokens──▶ flow ──50 Hz mel──▶ vocoder ──24 kHz wav

and it has two different mel front ends:

* the **flow / vocoder mel**: 24 kHz audio, n_fft 1920, hop 480 (→ 50 frames/s), 80 bins,
  0–8 kHz, natural log of the magnitude mel clamped at 1e-5 — the Matcha-TTS / HiFi-GAN
  convention the official code uses;
* the **speech-tokenizer features**: 16 kHz audio, hop 160 (→ 100 frames/s), which two
  stride-2 convolutions bring down to the 25 Hz token rate.

Everything is a plain ``@dataclass`` with named presets — no YAML object factories. Every stage
config (``LMConfig``, ``FlowConfig``, ``SpeakerConfig``, ``SpeechTokenizerConfig``,
``VocoderConfig``) derives from :class:`StageConfig` and means the same thing by the same name:

* the **bare constructor** ``XConfig()`` *is* ``XConfig.tiny()``: the CPU preset that the committed
  checkpoints in ``data/pretrained/tiny`` were trained with;
* ``XConfig.paper(**overrides)``: the published CosyVoice 2 sizes (built and costed; trainable on a GPU);
* ``XConfig.tiny(**overrides)``: the same as the bare constructor, with fields replaced.

:class:`TTSConfig` holds the rates every preset shares (the models shrink, the rates do not), so it
has no presets.

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §2 and Table 1.
    [2] Mehta et al., "Matcha-TTS", arXiv 2309.03199 (the mel convention used by CosyVoice).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import ClassVar


@dataclass(frozen=True)
class MelConfig:
    """Parameters of one log-mel front end.

    Frames: the signal is reflect-padded by ``(n_fft - hop_length) // 2`` on both sides and
    framed without centring, so a signal of ``T`` samples gives exactly ``T // hop_length``
    frames (the official CosyVoice / Matcha convention).
    """

    sample_rate: int = 24000  # Hz of the audio this front end expects
    n_fft: int = 1920  # 80 ms window at 24 kHz
    hop_length: int = 480  # 20 ms → 50 frames per second
    win_length: int = 1920
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float = 8000.0  # speech energy above 8 kHz is left to the vocoder to invent
    log_floor: float = 1e-5  # log(clamp(mel, 1e-5)): silence sits at log(1e-5) ≈ -11.5

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def pad(self) -> int:
        return (self.n_fft - self.hop_length) // 2

    def n_frames(self, n_samples: int) -> int:
        """Number of mel frames for a signal of ``n_samples`` samples."""
        return (n_samples + 2 * self.pad - self.n_fft) // self.hop_length + 1

    @classmethod
    def flow(cls) -> "MelConfig":
        """The 24 kHz, 50 Hz, 80-bin mel used by the flow and the vocoder (docs/paper_vs_code.md §1)."""
        return cls()

    @classmethod
    def tokenizer(cls) -> "MelConfig":
        """16 kHz, 100 Hz features for the speech tokenizer (two stride-2 convs → 25 Hz)."""
        return cls(sample_rate=16000, n_fft=400, hop_length=160, win_length=400, n_mels=80,
                   fmin=0.0, fmax=8000.0)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TTSConfig:
    """The public, top-level config: the rates shared by every stage and every preset.

    ``sample_rate`` is the output rate of the vocoder, ``frame_rate`` the mel frame rate of
    the flow; the speech-token rate is fixed by the architecture at half of it. There are no
    ``tiny()`` / ``paper()`` presets here: CosyVoice 2's rates (24 kHz, 80 bins, 50 Hz mel, 25 Hz
    tokens) are the same in both, only the stage models (:class:`StageConfig`) change size.
    """

    sample_rate: int = 24000
    n_mels: int = 80
    frame_rate: int = 50

    def __post_init__(self):
        for name in ("sample_rate", "n_mels", "frame_rate"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"TTSConfig.{name} must be a positive integer, got {v!r}.")
        if self.sample_rate % self.frame_rate:
            raise ValueError(f"sample_rate {self.sample_rate} is not a whole number of samples per mel frame at "
                             f"{self.frame_rate} Hz: choose rates whose ratio is an integer hop length.")
        if self.frame_rate % 2:
            raise ValueError(f"frame_rate must be even (2 mel frames per speech token), got {self.frame_rate}.")

    @property
    def hop_length(self) -> int:
        return self.sample_rate // self.frame_rate  # 480 samples per mel frame

    @property
    def token_rate(self) -> int:
        return self.frame_rate // 2  # 25 Hz: the flow upsamples tokens ×2   [CV2 §2.4]

    def mel(self) -> MelConfig:
        """The flow/vocoder mel front end that matches this config."""
        return MelConfig(sample_rate=self.sample_rate, n_fft=4 * self.hop_length,
                         hop_length=self.hop_length, win_length=4 * self.hop_length,
                         n_mels=self.n_mels)


def _jsonable(v):
    """Tuples (nested too) → lists, as JSON stores them."""
    return [_jsonable(x) for x in v] if isinstance(v, (list, tuple)) else v


def _parse_like(current, raw: str, where: str):
    """``raw`` parsed as the type of ``current`` (bool, int, float, str, or a list of those)."""
    try:
        if isinstance(current, bool):
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return raw.lower() in ("true", "1")
        if isinstance(current, int):
            return int(raw)
        if isinstance(current, float):
            return float(raw)
        if isinstance(current, list):
            return [_parse_like(current[0] if current else "", x, where) for x in raw.split(",") if x]
    except ValueError:
        raise ValueError(f"{where}: cannot read {raw!r} as {type(current).__name__}.") from None
    return raw


def _tuples(v):
    """Lists (nested too) → tuples: how a tuple-valued config field comes back from JSON."""
    return tuple(_tuples(x) for x in v) if isinstance(v, (list, tuple)) else v


class StageConfig:
    """Base of the stage configs (plain ``@dataclass`` subclasses): presets and the JSON round trip.

    A subclass sets ``what`` (its name in error messages), may override :meth:`paper`, and — if an
    older minicosy wrote its checkpoints with other bare-constructor defaults — :meth:`legacy_defaults`.
    """

    what: ClassVar[str] = "stage config"
    #: Fields added after ``minicosy-checkpoint-1`` → the value a saved config without them was trained with
    #: (:meth:`from_saved`); a subclass lists its own.
    added_fields: ClassVar[dict] = {}

    @classmethod
    def tiny(cls, **overrides):
        """The CPU preset, the committed checkpoints' sizes: the bare constructor, fields replaced."""
        return cls(**overrides)

    @classmethod
    def paper(cls, **overrides):
        """The published CosyVoice 2 sizes (each stage defines them)."""
        raise NotImplementedError(f"{cls.__name__} has no paper() preset.")

    @classmethod
    def legacy_defaults(cls) -> dict:
        """The fields' defaults when checkpoints of the pre-``minicosy-checkpoint-1`` formats were
        written: a field such a file lacks takes this value, not today's default. Empty: unchanged."""
        return {}

    def to_dict(self) -> dict:
        """Every field, JSON-ready (tuples as lists)."""
        return {k: _jsonable(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict):
        """The config of :meth:`to_dict`'s dict; fields it lacks take the bare constructor's defaults.

        Raises:
            ValueError: ``d`` is not a dict or names a field this version does not know.
        """
        if not isinstance(d, dict):
            raise ValueError(f"a {cls.what} must be a JSON object, got {type(d).__name__}.")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"unknown {cls.what} fields {unknown}: the checkpoint was written by another minicosy "
                             f"version (or a field is misspelt); known fields: {sorted(known)}.")
        tuple_fields = {n for n, f in known.items() if isinstance(f.default, tuple)}
        return cls(**{k: _tuples(v) if k in tuple_fields else v for k, v in d.items()})

    @classmethod
    def from_saved(cls, d: dict):
        """The config a checkpoint or a training run saved: :meth:`from_dict`, except that a field of
        :attr:`added_fields` the saved dict lacks takes the value it was trained with, not today's default."""
        if not isinstance(d, dict):
            return cls.from_dict(d)  # from_dict names the error
        return cls.from_dict({**cls.added_fields, **d})

    def with_overrides(self, pairs) -> "StageConfig":
        """A copy with ``["d_model=256", "enc1_layers=4"]`` applied (``minicosy train ... --set``).

        Each value is parsed as the field's current type (``true``/``false`` for booleans).

        Raises:
            ValueError: a pair without ``=``, an unknown field, or a value of the wrong type.
        """
        d = self.to_dict()
        for pair in pairs or ():
            key, eq, raw = str(pair).partition("=")
            key = key.strip().replace("-", "_")
            if not eq or key not in d:
                raise ValueError(f"--set {pair!r}: expected FIELD=VALUE with FIELD one of {sorted(d)}.")
            d[key] = _parse_like(d[key], raw.strip(), f"--set {pair!r}")
        return type(self).from_dict(d)
