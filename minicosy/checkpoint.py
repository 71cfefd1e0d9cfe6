"""One checkpoint contract for every stage: a JSON config beside a safetensors file, one mixin.

Stage: all of them (docs/paper_vs_code.md §1). Hugging Face's ``PretrainedConfig`` / ``save_pretrained`` [1] is
the model: a model is its config plus its weights, both written by one method and read back by one
class method, so ``TextSpeechLM``, ``ChunkAwareFlow``, ``SpeakerEncoder``, ``SpeechTokenizer`` and
``Vocoder`` all save and load through :class:`CheckpointMixin`::

    model.save_pretrained("runs/x")          # → runs/x.json + runs/x.safetensors  (a stem)
    model.save_pretrained("some/folder/")    # an existing folder → some/folder/<stage>.json + .safetensors
    Flow.from_pretrained()                   # default: DEFAULT_CHECKPOINT/<stage>  (data/pretrained/tiny)

``<stem>.safetensors`` holds the tensors (fp16 or fp32, as the stage chooses); ``<stem>.json``::

    {"format": "minicosy-checkpoint-1",   # this contract, versioned
     "stage": "flow",                     # which class reads it: lm | flow | speaker | speech_tokenizer | vocoder
     "config": {...},                     # every field of the stage's @dataclass config
     "dtype": "float16",                  # how the floating tensors are stored (loading casts to fp32)
     ...}                                 # stage extras (the LM's text tokenizer, the speaker voices)
                                          # and training notes ("trained", "curve", ...), free-form

A checkpoint folder (``DEFAULT_CHECKPOINT``) holds one such pair per stage — ``speech_tokenizer``,
``lm``, ``flow``, ``speaker``, ``vocoder`` — plus ``text_tokenizer.json``, the BPE of the paper
preset in Hugging Face ``tokenizers``' own format (:class:`minicosy.text.tokenizer.TextTokenizer`; the
tiny LM's character tokenizer travels inside ``lm.json``).

Older files still load (they are never written): the LM's ``"model": "minicosy.TextSpeechLM"``, the
``"format": "minicosy-flow-1"`` / ``-speaker-1`` / ``-speech-tokenizer-1`` of three stages, and the
vocoder's untagged ``vocoder.json``. A field missing from such a file takes the default its
config had when the file was written (:meth:`~minicosy.config.StageConfig.legacy_defaults`).

References:
    [1] Hugging Face ``transformers``: ``PretrainedConfig``, ``PreTrainedModel.save_pretrained`` /
        ``from_pretrained`` (https://huggingface.co/docs/transformers/main_classes/model).
    [2] ``safetensors`` (https://huggingface.co/docs/safetensors): tensors without pickle.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch

from minicosy.utils import (
    DEFAULT_CHECKPOINT,
    check_state_matches,
    checkpoint_stem,
    pick_device,
    read_checkpoint,
    write_checkpoint,
)

#: The ``"format"`` of every checkpoint JSON minicosy writes.
FORMAT = "minicosy-checkpoint-1"
#: Keys of the JSON that the mixin writes itself; an ``extra`` with these names is ignored.
RESERVED = ("format", "stage", "config", "dtype")
#: Formats of earlier minicosy versions → the stage that wrote them (read, never written).
LEGACY_FORMATS = {"minicosy-flow-1": "flow", "minicosy-speaker-1": "speaker",
                  "minicosy-speech-tokenizer-1": "speech_tokenizer"}
LEGACY_MODELS = {"minicosy.TextSpeechLM": "lm"}  # the LM's old ``"model"`` key
_DTYPES = {"fp16": "float16", "fp32": "float32"}  # the old flow spelling


def upgrade_meta(meta, where) -> tuple[dict, bool]:
    """A checkpoint JSON of any minicosy version in this format, and whether it was an older one.

    Args:
        meta: the parsed ``<stem>.json``.
        where: the file, for error messages.

    Raises:
        ValueError: not a minicosy checkpoint (no ``config`` object) or a format this version does not know.
    """
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise ValueError(f"{where} is not a minicosy checkpoint (no 'config' object). Pass the .json written "
                         "beside the .safetensors by save_pretrained.")
    fmt = meta.get("format")
    if fmt == FORMAT:
        return meta, False
    if fmt in LEGACY_FORMATS:
        stage = LEGACY_FORMATS[fmt]
    elif "model" in meta:
        stage = LEGACY_MODELS.get(meta["model"])
        if stage is None:
            raise ValueError(f"{where}: unknown model {meta['model']!r}; not a minicosy checkpoint.")
    elif fmt is None:
        stage = "vocoder"  # the vocoder's own save() wrote no format key
    else:
        raise ValueError(f"{where}: unknown checkpoint format {fmt!r} (this version reads {FORMAT!r} and "
                         f"{sorted(LEGACY_FORMATS)}); it was written by another minicosy version.")
    rest = {k: v for k, v in meta.items() if k not in ("format", "model", "stage", "config", "dtype")}
    dtype = meta.get("dtype")
    return {"format": FORMAT, "stage": stage, "config": meta["config"], "dtype": _DTYPES.get(dtype, dtype),
            **rest}, True


class CheckpointMixin:
    """``save_pretrained`` / ``from_pretrained`` for a stage model (an ``nn.Module`` with a ``cfg``).

    A stage sets the class attributes and, where it differs from the default, a hook:

    * ``stage`` — the file name inside a folder and the JSON's ``"stage"``;
    * ``config_class`` — its :class:`~minicosy.config.StageConfig` dataclass;
    * ``save_dtype`` — how floating tensors are stored by default; ``keep_fp32`` — tensors always
      stored in fp32 (normalisation statistics);
    * ``train_hint`` — the command that makes a checkpoint, for the missing-file error;
    * :meth:`checkpoint_module` — the module whose ``state_dict`` is stored (default: the model);
    * :meth:`checkpoint_extra` — stage keys stored beside the config (the speaker voices);
    * :meth:`from_config` — build the model from its config and the JSON (default ``cls(cfg)``).

    A loaded model keeps the whole JSON in ``model.meta`` (training notes included).
    """

    stage: ClassVar[str]
    config_class: ClassVar[type]
    save_dtype: ClassVar[torch.dtype] = torch.float32
    keep_fp32: ClassVar[tuple[str, ...]] = ()
    train_hint: ClassVar[str] = ""

    def checkpoint_module(self) -> torch.nn.Module:
        return self

    def checkpoint_extra(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, cfg, meta: dict):
        return cls(cfg)

    def save_pretrained(self, path: str | Path, extra: dict | None = None, *, dtype: torch.dtype | None = None) -> Path:
        """Write ``<stem>.safetensors`` and ``<stem>.json``; returns the stem.

        Args:
            path: a stem (``runs/x`` → ``runs/x.json``), one of the two files, or an existing folder
                (→ ``<folder>/<stage>``).
            extra: JSON-ready notes stored in the JSON (training history ...); keys of :data:`RESERVED`
                and of :meth:`checkpoint_extra` are the mixin's and win.
            dtype: storage of the floating tensors (default ``save_dtype``); integer tensors and
                ``keep_fp32`` ones are stored as they are / in fp32.
        """
        dtype = dtype or self.save_dtype
        state = {k: (v.float() if k in self.keep_fp32 else v.to(dtype)) if v.is_floating_point() else v
                 for k, v in self.checkpoint_module().state_dict().items()}
        meta = {"format": FORMAT, "stage": self.stage, "config": self.cfg.to_dict(),
                "dtype": str(dtype).replace("torch.", ""), **self.checkpoint_extra()}
        meta.update({k: v for k, v in (extra or {}).items() if k not in meta and k not in RESERVED})
        return write_checkpoint(checkpoint_stem(path, self.stage), state, meta)

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, device=None):
        """Load what :meth:`save_pretrained` wrote (or an older minicosy format), in eval mode.

        Args:
            path: ``None`` → ``DEFAULT_CHECKPOINT/<stage>`` (the committed tiny checkpoint); a folder →
                ``<folder>/<stage>``; otherwise a stem or its ``.json`` / ``.safetensors`` file.
            device: as for :func:`minicosy.utils.pick_device` (default: CUDA if available).

        Raises:
            ValueError: a file missing, truncated or unreadable, a checkpoint of another stage, a config
                this version does not know, or tensors that do not fit the config.
        """
        stem = checkpoint_stem(DEFAULT_CHECKPOINT if path is None else path, cls.stage)
        what = cls.config_class.what.replace(" config", "")
        meta, state = read_checkpoint(stem, f"{what} checkpoint", cls.train_hint)
        meta, legacy = upgrade_meta(meta, f"{stem}.json")
        if meta.get("stage") != cls.stage:
            raise ValueError(f"{stem}.json is a {meta.get('stage')} checkpoint, not a {cls.stage} one: load it with "
                             f"that stage's class, or pass the {cls.stage} files.")
        config = {**cls.config_class.legacy_defaults(), **meta["config"]} if legacy else meta["config"]
        model = cls.from_config(cls.config_class.from_saved(config), meta)
        target = model.checkpoint_module()
        expected = target.state_dict()
        check_state_matches(expected, state, f"{stem}.safetensors")
        target.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
        model.meta = meta
        return model.to(pick_device(device)).eval()
