"""The text-speech LM: a Qwen2 backbone that reads text and speech embeddings, predicts speech.

Stage: text-speech LM, CosyVoice 2 §2.3, Fig. 2 [1]. The paper takes the pre-trained
Qwen2.5-0.5B [2] as its backbone and drops everything CosyVoice 1 had around it: no speaker
embedding (it leaked speaker information into the LM and hurt cross-lingual prosody), no text
encoder (the LLM is strong enough to align text and speech by itself). What is left:

* the backbone: ``transformers.Qwen2Model`` fed with ``inputs_embeds`` — its own token embedding
  *is* the text embedding (as in the official ``Qwen2LM`` [3]);
* a speech input embedding (C codes) and two input-only embeddings, SOS and TASK;
* a speech head: C codes + EOS + an unused slot + FILL (layout in :mod:`minicosy.lm.sequence`).

Two presets of the same recipe: ``tiny()`` (4 × 256, ≈ 4 M parameters, character text: trains on
two CPU cores, docs/paper_vs_code.md §5) and ``paper()`` (Qwen2.5-0.5B sizes: built on the ``meta`` device
and costed only, or loaded with ``init_from=<local Qwen2 folder>``).

# simplification: dropout 0.2 on the input embeddings and before the head in the tiny preset —
# the docs/paper_vs_code.md §5 probe overfit a few hours of speech in ten minutes without it.

Checkpoint: the one contract of :mod:`minicosy.checkpoint` — ``<stem>.safetensors`` (weights, fp16 or
fp32) + ``<stem>.json`` (``config``, ``dtype``, the ``text_tokenizer`` it was trained with, training notes).

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §2.3.
    [2] Qwen Team, "Qwen2.5 Technical Report", arXiv 2412.15115 (0.5B: 24 layers, 896 wide,
        14 query / 2 key-value heads, FFN 4864, RoPE θ = 10⁶).
    [3] FunAudioLLM/CosyVoice, ``cosyvoice/llm/llm.py`` (``Qwen2LM``, ``Qwen2Encoder``).
    [4] Hugging Face ``transformers`` ``Qwen2Model``, ``DynamicCache`` (keyword ``cache=``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from minicosy.checkpoint import CheckpointMixin
from minicosy.config import StageConfig
from minicosy.lm.sequence import IGNORE, KINDS, M_SPEECH, N_TEXT, eos_id, fill_id, head_size


@dataclass
class LMConfig(StageConfig):
    """Sizes of the LM. The bare constructor is :meth:`tiny` (the committed checkpoint's preset);
    :meth:`paper` gives Qwen2.5-0.5B's."""

    what = "LM config"
    codebook_size: int = 243  # speech codes C (the committed tiny FSQ: 3^5)
    text_vocab_size: int = 290  # CharTokenizer().vocab_size: pad, unk, 32 characters + 256 speaker-tag slots
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int = 2  # grouped-query attention, as Qwen2.5
    d_ff: int = 1024
    max_len: int = 1024  # positions the LM accepts (prefix + generated)
    rope_theta: float = 10000.0
    dropout: float = 0.2  # on input embeddings and before the head
    attn_dropout: float = 0.0
    mix_n: int = 15  # streaming block: text tokens ...
    mix_m: int = 15  # ... then speech tokens (chars: ≈1.4 tokens a character, so N:M = 1:1 streams)
    min_token_text_ratio: float = 0.5  # EOS masked until this many tokens per text token
    max_token_text_ratio: float = 5.0  # hard cap on generated tokens per text token
    text_unit: str = "chars"  # "chars" (CharTokenizer) or "bpe" (TextTokenizer)

    @classmethod
    def tiny(cls, **overrides) -> "LMConfig":
        """4 × 256 Qwen2 (≈ 4 M parameters), characters: ≈ 0.9 s a step of 16 × 160 tokens on 2 cores.
        The bare constructor; ``overrides`` replace fields."""
        return cls(**overrides)

    @classmethod
    def paper(cls, **overrides) -> "LMConfig":
        """Qwen2.5-0.5B sizes, BPE text, the official 6561 FSQ codes and 5:15 mix ratio."""
        return cls(**{"codebook_size": 6561, "text_vocab_size": 151936, "d_model": 896, "n_layers": 24, "n_heads": 14,
                      "n_kv_heads": 2, "d_ff": 4864, "max_len": 32768, "rope_theta": 1e6, "dropout": 0.0,
                      "mix_n": N_TEXT, "mix_m": M_SPEECH, "min_token_text_ratio": 2.0, "max_token_text_ratio": 20.0,
                      "text_unit": "bpe", **overrides})

    def qwen2(self):
        from transformers import Qwen2Config

        return Qwen2Config(vocab_size=self.text_vocab_size, hidden_size=self.d_model,
                           intermediate_size=self.d_ff, num_hidden_layers=self.n_layers,
                           num_attention_heads=self.n_heads, num_key_value_heads=self.n_kv_heads,
                           max_position_embeddings=self.max_len, rope_theta=self.rope_theta,
                           attention_dropout=self.attn_dropout, use_cache=True, tie_word_embeddings=False)


class TextSpeechLM(CheckpointMixin, nn.Module):
    """Qwen2 backbone + speech embedding + SOS/TASK embeddings + speech head.

    ``TextSpeechLM.from_pretrained()`` loads ``DEFAULT_CHECKPOINT/lm`` (:class:`~minicosy.checkpoint.CheckpointMixin`).

    Args:
        cfg: the sizes (default: ``LMConfig()``, the tiny preset).
        init_from: a local folder holding a ``transformers`` Qwen2 checkpoint (``config.json`` +
            weights; a ``Qwen2ForCausalLM`` folder works too). Its weights become the backbone and
            its sizes overwrite the backbone fields of ``cfg`` (``d_model``, ``n_layers`` ...,
            ``text_vocab_size``), so the text ids must come from that model's tokenizer.
    """

    stage, config_class, save_dtype = "lm", LMConfig, torch.float16
    train_hint = "Train one with `minicosy train lm --preset tiny` or pass the path of an existing one."

    def __init__(self, cfg: LMConfig | None = None, init_from: str | Path | None = None):
        super().__init__()
        cfg = cfg or LMConfig()
        import transformers
        from transformers import Qwen2Model

        if int(transformers.__version__.split(".")[0]) < 5:  # older versions silently ignore `cache=`
            raise ValueError(f"minicosy's LM needs transformers >= 5 (found {transformers.__version__}): "
                             "pip install 'transformers>=5'.")

        if init_from is not None:
            path = Path(init_from)
            if not (path / "config.json").is_file():
                raise ValueError(f"init_from={path}: no config.json there; give a local folder written by "
                                 "transformers' save_pretrained (e.g. a downloaded Qwen2.5-0.5B).")
            self.backbone = Qwen2Model.from_pretrained(path, dtype=torch.float32)
            qc = self.backbone.config
            cfg = LMConfig(**{**cfg.to_dict(), "text_vocab_size": qc.vocab_size, "d_model": qc.hidden_size,
                              "d_ff": qc.intermediate_size, "n_layers": qc.num_hidden_layers,
                              "n_heads": qc.num_attention_heads, "n_kv_heads": qc.num_key_value_heads,
                              "max_len": qc.max_position_embeddings,
                              "rope_theta": float((getattr(qc, "rope_parameters", None) or {}).get(
                                  "rope_theta", getattr(qc, "rope_theta", cfg.rope_theta)))})
        else:
            self.backbone = Qwen2Model(cfg.qwen2())
        self.cfg = cfg
        d, C = cfg.d_model, cfg.codebook_size
        self.special_embedding = nn.Embedding(2, d)  # 0 = SOS, 1 = TASK (input only)
        self.speech_embedding = nn.Embedding(C, d)  # speech codes only: EOS and FILL are never inputs
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(d, head_size(C))  # codes, EOS, (unused), FILL
        for emb in (self.special_embedding, self.speech_embedding):
            nn.init.normal_(emb.weight, std=0.02)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)
        self.meta: dict = {}

    # ------------------------------------------------------------------ pieces

    @property
    def text_embedding(self) -> nn.Embedding:
        return self.backbone.embed_tokens

    @property
    def eos(self) -> int:
        return eos_id(self.cfg.codebook_size)

    @property
    def fill(self) -> int:
        return fill_id(self.cfg.codebook_size)

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def embed(self, kinds: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Input embeddings.  ``kinds, ids: (B, T)`` (codes of :data:`KINDS`) → ``(B, T, d)``."""
        x = torch.zeros(*kinds.shape, self.cfg.d_model, device=kinds.device, dtype=self.head.weight.dtype)
        text, speech = kinds == KINDS["text"], kinds == KINDS["speech"]
        x[text] = self.text_embedding(ids[text]).to(x.dtype)
        x[speech] = self.speech_embedding(ids[speech]).to(x.dtype)
        for name, row in (("sos", 0), ("task", 1)):
            m = kinds == KINDS[name]
            if m.any():
                x[m] = self.special_embedding.weight[row].to(x.dtype)
        return x

    def new_cache(self):
        """An empty KV cache (``transformers.DynamicCache``) for incremental decoding."""
        from transformers import DynamicCache

        return DynamicCache(config=self.backbone.config)

    def forward(self, kinds: torch.Tensor, ids: torch.Tensor, cache=None) -> torch.Tensor:
        """Logits over the speech head.

        Args:
            kinds, ids: ``(B, T)`` inputs (see :func:`minicosy.lm.sequence.to_tensors`).
            cache: ``None`` (a full, causal pass) or a cache from :meth:`new_cache`, which this call
                extends by ``T`` positions (positions continue from its length).

        Returns:
            logits ``(B, T, C + 3)``.
        """
        x = self.dropout(self.embed(kinds, ids))
        h = self.backbone(inputs_embeds=x, cache=cache, use_cache=cache is not None).last_hidden_state
        return self.head(self.dropout(h))

    def loss(self, batch: dict) -> dict:
        """Cross-entropy on the targets of a :func:`~minicosy.lm.sequence.to_tensors` batch.

        Returns:
            ``loss`` (mean over target positions), ``acc`` (top-1 accuracy there), ``n`` (count).
        """
        dev = self.device
        logits = self(batch["kinds"].to(dev), batch["ids"].to(dev))
        tgt = batch["targets"].to(dev)
        loss = F.cross_entropy(logits.float().flatten(0, 1), tgt.flatten(), ignore_index=IGNORE)
        mask = tgt != IGNORE
        acc = (logits.argmax(-1) == tgt)[mask].float().mean()
        return {"loss": loss, "acc": acc, "n": int(mask.sum())}

    # ------------------------------------------------------------------ save / load

    def save_pretrained(self, stem: str | Path, text_tokenizer: dict | None = None, extra: dict | None = None,
                        dtype: torch.dtype = torch.float16) -> Path:
        """Write ``<stem>.safetensors`` (weights in ``dtype``) and ``<stem>.json`` with the ``text_tokenizer``
        dict it reads (:meth:`~minicosy.text.chars.CharTokenizer.to_dict`); returns the stem. Loading:
        :meth:`~minicosy.checkpoint.CheckpointMixin.from_pretrained`, weights in fp32, eval mode."""
        return super().save_pretrained(stem, {"text_tokenizer": text_tokenizer, **(extra or {})}, dtype=dtype)

    def text_tokenizer(self):
        """The text tokenizer saved with the checkpoint (a :class:`~minicosy.text.chars.CharTokenizer`)."""
        from minicosy.text.chars import CharTokenizer

        d = self.meta.get("text_tokenizer")
        if d is None:
            raise ValueError("this LM has no text tokenizer attached (random init or a BPE model); "
                             "encode the text yourself and pass ids.")
        return CharTokenizer.from_dict(d)

