"""The supervised semantic speech tokenizer of CosyVoice 2: 16 kHz speech → 25 Hz FSQ tokens.

Stage: speech tokenizer (docs/paper_vs_code.md §1–2), CosyVoice 2 §2.2, Fig. 1(a).

::

    wav 16 kHz ─▶ log-mel 80 × 100 Hz ─▶ Encoder1 ─▶ FSQ ─▶ Encoder2 ─▶ CTC head ─▶ characters
                                         │ 2 stride-2 convs (100 → 25 Hz)
                                         │ + transformer blocks (rotary positions)
                                         └─ tokens = FSQ indices at 25 Hz (what the LM predicts)

The paper inserts FSQ into the encoder of an ASR model (SenseVoice-Large) and trains the whole
thing with the ASR loss only, so the tokens keep what is needed to recognise the words (content)
and drop what is not (much of the speaker and channel). No training code was released; minicosy's
is in :mod:`minicosy.speech_tokenizer.train`. The tokenizer used downstream is
``Encoder1 + FSQ``; Encoder2 and the ASR head only exist to train it (and to measure its CER).

Length rule: the 100 Hz features are cropped to a multiple of 4 frames, then each stride-2
convolution halves them, so a clip of ``n`` samples at 16 kHz gives exactly
``n // 640`` tokens (640 samples = 40 ms = one token); shorter than 640 samples is an error.
Audio at other rates is resampled to 16 kHz first, so ``T_tokens = round_down(n_16k / 640)``.

Simplifications (each marked in the code):
* CTC over characters (blank, space, apostrophe, a–z) of the normalised transcript instead of
  SenseVoice's multilingual BPE targets; the head emits ``ctc_upsample`` (2) CTC slots per 25 Hz
  frame, so fast speech (up to 50 characters/s) always fits CTC's length constraint.
* Encoder2 is a few transformer blocks, not the rest of a 700M-parameter ASR model.
* Input normalisation: per-mel-bin mean/std measured on the training features (stored as buffers).

The VQ baseline (``quantizer="vq"``) swaps FSQ for :class:`minicosy.speech_tokenizer.fsq.VectorQuantizer` with the
same encoder, the same codebook size and the same training; ``vq_restart=False`` is the plain
VQ-VAE quantizer (it collapses onto a handful of codes). Measured figures (codebook
use, CER, speaker probe): ``data/pretrained/tiny/speech_tokenizer_eval.json``, produced by
``minicosy eval tokenizer`` (:func:`minicosy.speech_tokenizer.evaluate.evaluate_tokenizer`).

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §2.2 (Encoder1 = two stride-2 convs + 6
        transformer blocks with rotary positions; FSQ D = 8, K = 1; ASR loss).
    [2] An et al., "FunAudioLLM" (SenseVoice), arXiv 2407.04051.
    [3] Graves et al., "Connectionist Temporal Classification", ICML 2006.
    [4] Su et al., "RoFormer: Rotary Position Embedding", arXiv 2104.09864.
    [5] Park et al., "SpecAugment", arXiv 1904.08779 (used in training).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from minicosy.audio import check_waveform, tokenizer_features
from minicosy.checkpoint import CheckpointMixin
from minicosy.config import StageConfig
from minicosy.nn import Block
from minicosy.speech_tokenizer.fsq import FSQ, VectorQuantizer
from minicosy.text.normalize import normalize_transcript

SAMPLE_RATE = 16000
SAMPLES_PER_TOKEN = 640  # 4 feature frames of 160 samples: 25 tokens per second
TOKEN_RATE = SAMPLE_RATE // SAMPLES_PER_TOKEN
#: CTC alphabet: index 0 is the blank, then space, apostrophe, a–z.
ALPHABET = "_ 'abcdefghijklmnopqrstuvwxyz"

# ----------------------------------------------------------------------------- text


def text_to_ids(text: str) -> list[int]:
    return [ALPHABET.index(c) for c in normalize_transcript(text)]


def ids_to_text(ids) -> str:
    return "".join(ALPHABET[i] for i in ids if 0 < i < len(ALPHABET))


def ctc_greedy_decode(logits: torch.Tensor, lengths: torch.Tensor) -> list[str]:
    """Best path: argmax per slot, merge repeats, drop blanks.  ``logits: (B, S, V)``."""
    best = logits.argmax(-1).cpu()
    out = []
    for b in range(best.shape[0]):
        path = best[b, : int(lengths[b])].tolist()
        out.append(ids_to_text([p for i, p in enumerate(path) if p != 0 and (i == 0 or p != path[i - 1])]))
    return out


# ----------------------------------------------------------------------------- config


@dataclass
class SpeechTokenizerConfig(StageConfig):
    """Sizes of the speech tokenizer. The bare constructor is :meth:`tiny` (the committed checkpoints'
    preset, 243 FSQ codes); :meth:`paper` gives the published sizes (6561 codes)."""

    what = "speech tokenizer config"

    n_mels: int = 80  # 16 kHz log-mel, 100 Hz (minicosy.audio.tokenizer_features)
    d_model: int = 144  # paper: 1280, the SenseVoice-Large / Whisper-large width
    n_heads: int = 4  # paper: 20
    enc1_layers: int = 3  # Encoder1: blocks after the convs (paper: 6   [CV2 §2.2])
    enc2_layers: int = 2  # simplification: the paper's Encoder2 is the rest of SenseVoice-Large (paper preset: 6)
    ff_mult: int = 4
    dropout: float = 0.1
    quantizer: str = "fsq"  # "fsq" (the paper) or "vq" (the baseline it replaced)
    fsq_dims: int = 5  # D (paper: 8)
    fsq_K: int = 1  # codes in [-K, K]: (2K+1)^D = 243 tokens (paper: 3^8 = 6561)
    vq_codebook_size: int = 243  # the VQ baseline gets as many codes as FSQ (paper preset: 4096, CosyVoice 1's VQ)
    vq_restart: bool = True  # VQ baseline: restart dead codes (False = plain VQ-VAE, which collapsed in our runs)
    ctc_upsample: int = 2  # CTC slots per 25 Hz frame
    utterance_cmn: bool = True  # also subtract each clip's own per-bin mean (cepstral mean normalisation)
    vocab_size: int = len(ALPHABET)

    def __post_init__(self):
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ValueError(f"d_model ({self.d_model}) must split into n_heads ({self.n_heads}) heads of an even "
                             "width (rotary position embeddings rotate pairs of dimensions); e.g. 144/4 or 256/4.")

    @classmethod
    def tiny(cls, **overrides) -> "SpeechTokenizerConfig":
        """Trains on one CPU thread in about an hour and a half; the bare constructor. FSQ D = 5, K = 1
        → 243 codes: the paper's 3 levels per dim, fewer dims because a tiny model trained for minutes
        spreads its tokens over a few hundred codes, not thousands, and 243 codes at 25 Hz still carry
        198 bit/s, several times the ~60 bit/s of the transcript. The tiny LM's output layer stays
        small too. The VQ baseline gets the same 243 codes. Per-utterance CMN is on."""
        return cls(**overrides)

    @classmethod
    def paper(cls, **overrides) -> "SpeechTokenizerConfig":
        """Published sizes: Encoder1 = 2 convs + 6 blocks of width 1280; FSQ 8 × 3 levels; no CMN."""
        return cls(**{"d_model": 1280, "n_heads": 20, "enc1_layers": 6, "enc2_layers": 6, "fsq_dims": 8, "fsq_K": 1,
                      "vq_codebook_size": 4096, "utterance_cmn": False, **overrides})

    @classmethod
    def legacy_defaults(cls) -> dict:
        """Until ``minicosy-checkpoint-1`` the bare ``SpeechTokenizerConfig()`` was the paper size."""
        return cls.paper().to_dict()

    @property
    def codebook_size(self) -> int:
        return (2 * self.fsq_K + 1) ** self.fsq_dims if self.quantizer == "fsq" else self.vq_codebook_size

    @property
    def label(self) -> str:
        """``fsq``, ``vq`` (with dead-code restarts) or ``vq-plain``."""
        return self.quantizer if self.quantizer == "fsq" or self.vq_restart else "vq-plain"


# ----------------------------------------------------------------------------- blocks


class Subsample(nn.Module):
    """Two stride-2 convolutions: 100 Hz features → 25 Hz frames  [CV2 §2.2]."""

    def __init__(self, n_mels: int, d: int):
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, d, 3, stride=2, padding=1)
        self.conv2 = nn.Conv1d(d, d, 3, stride=2, padding=1)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """feats: (B, n_mels, F) with F a multiple of 4 → (B, F/4, d); padding is zeroed between
        the convs so a batched clip gives the same frames as the clip alone."""
        x = F.gelu(self.conv1(feats))  # (B, d, F/2)
        keep = torch.arange(x.shape[-1], device=x.device)[None] < (lengths // 2)[:, None]
        x = F.gelu(self.conv2(x * keep[:, None]))  # (B, d, F/4)
        return x.transpose(1, 2)


# ----------------------------------------------------------------------------- the tokenizer


class SpeechTokenizer(CheckpointMixin, nn.Module):
    """Encoder1 → FSQ (or VQ) → Encoder2 → CTC head. ``encode`` gives the 25 Hz token ids.

    ``SpeechTokenizer.from_pretrained()`` loads the committed FSQ tokenizer ``DEFAULT_CHECKPOINT/speech_tokenizer``;
    ``from_pretrained(DEFAULT_CHECKPOINT / "vq_tokenizer")`` the VQ baseline (:mod:`minicosy.checkpoint`).
    """

    # fp32, never fp16: the tokens are discrete, and fp16 weights flip some of them (an argmin/round
    # near a boundary); the LM and the flow are trained on exactly these tokens.
    stage, config_class, save_dtype = "speech_tokenizer", SpeechTokenizerConfig, torch.float32
    train_hint = "Train one with `minicosy train tokenizer --preset tiny` or pass the path of an existing one."

    def __init__(self, cfg: SpeechTokenizerConfig | None = None):
        super().__init__()
        cfg = cfg or SpeechTokenizerConfig()
        if cfg.quantizer not in ("fsq", "vq"):
            raise ValueError(f"quantizer must be 'fsq' or 'vq', got {cfg.quantizer!r}.")
        self.cfg = cfg
        d = cfg.d_model
        self.register_buffer("feat_mean", torch.zeros(cfg.n_mels))  # set from training data
        self.register_buffer("feat_std", torch.ones(cfg.n_mels))
        self.subsample = Subsample(cfg.n_mels, d)
        self.enc1 = nn.ModuleList(Block(d, cfg.n_heads, cfg.ff_mult, cfg.dropout) for _ in range(cfg.enc1_layers))
        self.ln1 = nn.LayerNorm(d)
        self.quantizer = (FSQ(d, cfg.fsq_dims, cfg.fsq_K) if cfg.quantizer == "fsq"
                          else VectorQuantizer(d, cfg.vq_codebook_size, dead_threshold=0.1 if cfg.vq_restart else 0.0))
        self.enc2 = nn.ModuleList(Block(d, cfg.n_heads, cfg.ff_mult, cfg.dropout) for _ in range(cfg.enc2_layers))
        self.ln2 = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.ctc_upsample * cfg.vocab_size)

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    # -- features ------------------------------------------------------------------------

    def prepare(self, wavs, sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveforms → normalised, padded features ``(B, n_mels, F)`` and frame counts ``(B,)``.

        ``F`` is cropped per clip to a multiple of 4 (the length rule); padding is 0, which after
        normalisation is what the convolutions' own zero padding sees.
        """
        if not isinstance(sample_rate, (int, np.integer)) or sample_rate < 8000:
            raise ValueError(f"sample_rate must be an integer number of Hz >= 8000 (16000 is native), "
                             f"got {sample_rate!r}.")
        feats = []
        for i, w in enumerate(wavs):
            check_waveform(w, name=f"audio[{i}]")
            if w.ndim != 1:
                raise ValueError(f"audio[{i}]: expected a mono waveform (T,), got shape {tuple(w.shape)}.")
            if sample_rate != SAMPLE_RATE:  # resample on the CPU with librosa (soxr)
                import librosa

                w = w.detach().cpu().numpy() if isinstance(w, torch.Tensor) else w
                w = librosa.resample(np.asarray(w, dtype=np.float32), orig_sr=int(sample_rate), target_sr=SAMPLE_RATE)
            if w.shape[-1] < SAMPLES_PER_TOKEN:
                raise ValueError(f"audio[{i}] is too short: {w.shape[-1]} samples at 16 kHz, need at least "
                                 f"{SAMPLES_PER_TOKEN} (40 ms, one token).")
            x = torch.as_tensor(w, dtype=torch.float32).to(self.device)
            f = tokenizer_features(x)  # (80, n // 160)
            feats.append(f[:, : f.shape[1] // 4 * 4])
        return self.pad_features(feats)

    def pad_features(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """List of raw log-mels ``(n_mels, F_i)`` (F_i multiple of 4) → ``(B, n_mels, F_max)``, ``(B,)``."""
        lengths = torch.tensor([f.shape[1] for f in feats], device=self.device)
        out = torch.zeros(len(feats), self.cfg.n_mels, int(lengths.max()), device=self.device)
        for i, f in enumerate(feats):
            g = (f.to(self.device).float() - self.feat_mean[:, None]) / self.feat_std[:, None]
            if self.cfg.utterance_cmn:  # removes a fixed spectral tilt per clip: part of the speaker/channel
                g = g - g.mean(dim=1, keepdim=True)
            out[i, :, : f.shape[1]] = g
        return out, lengths

    # -- the network ----------------------------------------------------------------------

    def encoder1(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, n_mels, F)`` → ``H (B, F/4, d)`` and the token mask ``(B, F/4)`` (True = real)."""
        x = self.subsample(feats, lengths)
        mask = torch.arange(x.shape[1], device=x.device)[None] < (lengths // 4)[:, None]
        for blk in self.enc1:
            x = blk(x, mask)
        return self.ln1(x), mask

    def quantize(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(self.quantizer, VectorQuantizer):
            return self.quantizer(h, mask)
        return self.quantizer(h)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> dict:
        """Training/eval pass.

        Returns a dict: ``logits (B, S, V)`` CTC log-probabilities with ``S = ctc_upsample · T``,
        ``logit_lengths (B,)``, ``indices (B, T)``, ``mask (B, T)``, ``aux`` (VQ commitment loss).
        """
        h, mask = self.encoder1(feats, lengths)
        h_hat, indices = self.quantize(h, mask)  # Ĥ = ProjUp(ROUND(ProjDown(H)))   [CV2 Eq. 1]
        logits, logit_lengths = self.asr_head(h_hat, mask)
        return {"logits": logits, "logit_lengths": logit_lengths,
                "indices": indices, "mask": mask, "aux": self.quantizer.aux_loss()}

    def asr_head(self, h_hat: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder2 + CTC head: ``Ĥ (B, T, d)``, ``mask (B, T)`` → log-probs ``(B, S, V)``, ``(B,)``."""
        x = h_hat
        for blk in self.enc2:
            x = blk(x, mask)
        B, T, _ = x.shape
        # simplification: each 25 Hz frame emits ctc_upsample character slots
        logits = self.head(self.ln2(x)).view(B, T * self.cfg.ctc_upsample, self.cfg.vocab_size)
        return logits.float().log_softmax(-1), mask.sum(1) * self.cfg.ctc_upsample

    def ctc_loss(self, out: dict, targets: list[list[int]]) -> torch.Tensor:
        """CTC loss of ``forward``'s output against character-id targets, averaged per target char."""
        dev = out["logits"].device
        tgt = torch.tensor([i for t in targets for i in t], dtype=torch.long, device=dev)
        tgt_len = torch.tensor([len(t) for t in targets], dtype=torch.long, device=dev)
        return F.ctc_loss(out["logits"].transpose(0, 1), tgt, out["logit_lengths"], tgt_len,
                          blank=0, reduction="mean", zero_infinity=True)

    # -- public API -------------------------------------------------------------------------

    @torch.inference_mode()
    def encode_batch(self, wavs, sample_rate: int = SAMPLE_RATE) -> list[torch.Tensor]:
        """Several clips at once → a list of ``LongTensor (n_i // 640,)`` (at 16 kHz), on CPU.

        Deterministic: the model runs in eval mode; padding is masked so each clip gets the
        tokens it gets alone.
        """
        if isinstance(wavs, (torch.Tensor, np.ndarray)) and wavs.ndim == 2:
            wavs = list(wavs)
        if len(wavs) == 0:
            raise ValueError("encode_batch: no audio given.")
        was_training = self.training
        self.eval()
        try:
            feats, lengths = self.prepare(wavs, sample_rate)
            h, mask = self.encoder1(feats, lengths)
            _, indices = self.quantize(h, mask)
        finally:
            self.train(was_training)
        return [indices[i, : int(n)].cpu() for i, n in enumerate(mask.sum(1))]

    def encode(self, wav, sample_rate: int = SAMPLE_RATE) -> torch.LongTensor:
        """One clip ``(T,)`` (NumPy or tensor) → token ids ``LongTensor (T_tokens,)`` at 25 Hz.

        ``T_tokens = n_16k // 640`` where ``n_16k`` is the length at 16 kHz (after resampling).
        """
        return self.encode_batch([wav], sample_rate)[0]

    @torch.inference_mode()
    def transcribe(self, wavs, sample_rate: int = SAMPLE_RATE) -> list[str]:
        """The ASR head's greedy CTC transcript of each clip (what the CER is measured on)."""
        was_training = self.training
        self.eval()
        try:
            out = self(*self.prepare(list(wavs), sample_rate))
        finally:
            self.train(was_training)
        return ctc_greedy_decode(out["logits"], out["logit_lengths"])

    @torch.inference_mode()
    def read_tokens(self, token_seqs) -> list[str]:
        """Token sequences → the CTC head's greedy transcript of each.

        The tokenizer as a judge of *generated* tokens (the LM's): ``Ĥ = embed(tokens)`` goes
        through Encoder2 and the head exactly as in training. ``token_seqs``: a list of
        ``LongTensor (T_i,)`` (or lists of ints), each id in ``[0, codebook_size)``.
        """
        seqs = [torch.as_tensor(t, dtype=torch.long).reshape(-1) for t in token_seqs]
        if not seqs:
            return []
        for i, t in enumerate(seqs):
            if t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.codebook_size):
                raise ValueError(f"token_seqs[{i}] has ids outside [0, {self.codebook_size}).")
        was_training = self.training
        self.eval()
        try:
            T = max(1, max(len(t) for t in seqs))
            ids = torch.zeros(len(seqs), T, dtype=torch.long, device=self.device)
            mask = torch.zeros(len(seqs), T, dtype=torch.bool, device=self.device)
            for i, t in enumerate(seqs):
                ids[i, : len(t)], mask[i, : len(t)] = t.to(self.device), True
            logits, lengths = self.asr_head(self.embed_tokens(ids), mask)
        finally:
            self.train(was_training)
        return ctc_greedy_decode(logits, lengths)

    def embed_tokens(self, indices: torch.Tensor) -> torch.Tensor:
        """Token ids ``(..., T)`` → the quantised vectors ``Ĥ`` ``(..., T, d)`` that Encoder2 reads."""
        return self.quantizer.embed_tokens(indices.to(self.device))
