"""A small speaker encoder: log-mel → L2-normalised speaker vector, fed to the flow only.

Stage: flow matching's speaker condition (docs/paper_vs_code.md §2 "Speaker embedding"), CosyVoice 2 §2.4.
The official system takes a 192-d CAM++ x-vector from a model trained on thousands of speakers and
feeds it to the flow (L2-normalise → linear → 80), never to the LM. No such model can be downloaded
here, so minicosy trains its own, x-vector style, on the corpus's voices::

    mel (80, F) ─▶ conv 5 ─▶ dilated residual convs (TDNN) ─▶ mean ‖ std over time ─▶ linear ─▶ e/‖e‖

It is trained by classifying the train voices *and their pseudo-speakers* (``flite_awb_p+2`` is a
class of its own: a pitch-shifted copy is, to a listener, another person), with an additive-margin
softmax on cosine scores so that the vectors of one speaker cluster tightly on the sphere — the
geometry the flow and the nearest-centroid evaluation use. Held-out voices never train it.

Simplifications (marked in the code):
* a few dilated convs + statistics pooling instead of CAM++'s densely connected TDNN with
  context-aware masking; ~0.3 M parameters instead of ~7 M;
* only the corpus's ~30 train classes; such an encoder separates voices it has heard well and
  places unseen voices near the nearest heard ones.

Evaluation (:func:`speaker_report`): **nearest-centroid speaker ID** — each train voice's centroid
is the normalised mean vector of its train utterances, each valid utterance of a train voice goes
to the closest centroid (cosine) — and, for every **held-out voice**, the mean cosine of its
utterances to every train centroid. A zero-shot flow can imitate a new voice only as far as its
vector differs from the heard ones. These are diagnostics of a model minicosy trained; claims
about *synthesised* speech use the independent judge (resemblyzer, :mod:`minicosy.judges`).

Not to be confused with ``resemblyzer``, the independent judge of speaker similarity (docs/paper_vs_code.md §4):
the judge must not be the model the flow was conditioned on.

References:
    [1] Snyder et al., "X-Vectors: Robust DNN Embeddings for Speaker Recognition", ICASSP 2018.
    [2] Wang et al., "Additive Margin Softmax for Face Verification", IEEE SPL 2018.
    [3] Wang et al., "CAM++", Interspeech 2023 (the official flow's speaker model).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from minicosy.checkpoint import CheckpointMixin
from minicosy.config import StageConfig


@dataclass
class SpeakerConfig(StageConfig):
    """Sizes of the speaker encoder. The bare constructor is :meth:`tiny` (the committed checkpoint's
    preset, ~0.3 M parameters, 128-d vectors); :meth:`paper` gives the official 192-d vectors."""

    what = "speaker encoder config"

    n_mels: int = 80
    channels: int = 128  # paper preset: 256
    dilations: tuple = (1, 2, 3)  # one residual conv (kernel 3) per entry (paper preset: 1, 2, 3, 4)
    emb_dim: int = 128  # paper preset: 192, as the official x-vector
    n_speakers: int = 0  # classes of the training head (set by the trainer; 0 = no head)
    margin: float = 0.2  # additive margin on the target's cosine
    scale: float = 30.0  # cosine → logit scale
    dropout: float = 0.1

    @classmethod
    def tiny(cls, **overrides) -> "SpeakerConfig":
        """~0.3 M parameters, 128-d vectors; trains in minutes on one CPU thread. The bare constructor."""
        return cls(**overrides)

    @classmethod
    def paper(cls, **overrides) -> "SpeakerConfig":
        """192-d vectors as the official CAM++ x-vector, ~0.8 M parameters.
        # simplification: the same small TDNN, wider; CAM++ itself (~7 M parameters) is not built here."""
        return cls(**{"channels": 256, "dilations": (1, 2, 3, 4), "emb_dim": 192, **overrides})

    @classmethod
    def legacy_defaults(cls) -> dict:
        """Until ``minicosy-checkpoint-1`` the bare ``SpeakerConfig()`` was today's :meth:`paper`."""
        return cls.paper().to_dict()


class SpeakerEncoder(CheckpointMixin, nn.Module):
    """``SpeakerEncoder.from_pretrained().embed(log_mel(wav))`` → a unit vector ``(emb_dim,)``.

    Checkpoint: :class:`~minicosy.checkpoint.CheckpointMixin`, fp32 (0.3 M parameters, not worth a
    precision check), with the class names ``voices`` (and, from training, ``centroids``) in the JSON.
    """

    stage, config_class = "speaker", SpeakerConfig
    train_hint = "Train one with `minicosy train speaker`."

    def __init__(self, cfg: SpeakerConfig | None = None, voices: list[str] | None = None):
        super().__init__()
        self.cfg = cfg or SpeakerConfig()
        c = self.cfg.channels
        self.register_buffer("mel_mean", torch.zeros(self.cfg.n_mels))
        self.register_buffer("mel_std", torch.ones(self.cfg.n_mels))
        # simplification: a few dilated convs + statistics pooling, not CAM++'s dense TDNN with context masks
        self.front = nn.Conv1d(self.cfg.n_mels, c, 5, padding=2)
        self.convs = nn.ModuleList(nn.Conv1d(c, c, 3, dilation=d, padding=d) for d in self.cfg.dilations)
        self.norms = nn.ModuleList(nn.LayerNorm(c) for _ in self.cfg.dilations)
        self.drop = nn.Dropout(self.cfg.dropout)
        self.emb = nn.Linear(2 * c, self.cfg.emb_dim)
        # the classes' directions on the sphere (training only)
        n = self.cfg.n_speakers
        self.head = nn.Parameter(torch.randn(n, self.cfg.emb_dim) * 0.1) if n else None
        self.voices = list(voices or [])  # class index → voice id
        self.meta: dict = {}

    @property
    def device(self) -> torch.device:
        return self.mel_mean.device

    def forward(self, mel: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``mel (B, n_mels, F)`` log-mel (padded), ``lengths (B,)`` → unit vectors ``(B, emb_dim)``."""
        B, _, T = mel.shape
        if lengths is None:
            lengths = torch.full((B,), T, device=mel.device)
        valid = (torch.arange(T, device=mel.device)[None, :] < lengths[:, None]).float()[:, None]  # (B, 1, F)
        x = (mel - self.mel_mean[:, None]) / self.mel_std[:, None] * valid
        h = F.relu(self.front(x))
        for conv, norm in zip(self.convs, self.norms):
            # dilated residual conv: each layer widens the context (TDNN)
            h = h + self.drop(F.relu(norm(conv(h * valid).transpose(1, 2)).transpose(1, 2)))
        n = valid.sum(-1).clamp(min=1)  # (B, 1)
        # statistics pooling over real frames: μ = Σ h / n, σ = sqrt(Σ h² / n − μ²)   [x-vector]
        mean = (h * valid).sum(-1) / n
        std = ((h * h * valid).sum(-1) / n - mean ** 2).clamp(min=1e-5).sqrt()
        return F.normalize(self.emb(torch.cat([mean, std], dim=-1)), dim=-1)

    def logits(self, emb: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Cosine scores to every class, ``(B, n_speakers)``; with ``labels`` the margin is applied.

        ``logit_c = s·(cos θ_c − m·[c = y])``   [AM-softmax]
        """
        if self.head is None:
            raise ValueError("this speaker encoder has no classification head (n_speakers = 0).")
        cos = emb @ F.normalize(self.head, dim=-1).T
        if labels is not None:
            cos = cos - self.cfg.margin * F.one_hot(labels, cos.shape[1]).to(cos.dtype)
        return self.cfg.scale * cos

    @torch.inference_mode()
    def embed(self, mel) -> torch.Tensor:
        """One utterance's log-mel ``(n_mels, F)`` → ``(emb_dim,)``; a batch ``(B, n_mels, F)`` → ``(B, emb_dim)``.

        Raises:
            ValueError: wrong number of mel bins, fewer than 10 frames, or NaN/Inf.
        """
        mel = torch.as_tensor(mel)
        single = mel.dim() == 2
        mel = mel[None] if single else mel
        if mel.dim() != 3 or mel.shape[1] != self.cfg.n_mels:
            raise ValueError(f"speaker encoder: expected a ({self.cfg.n_mels}, frames) log-mel, got shape "
                             f"{tuple(mel.shape)}.")
        if mel.shape[2] < 10 or not mel.is_floating_point() or not bool(torch.isfinite(mel).all()):
            raise ValueError("speaker encoder: need at least 10 finite floating-point frames (0.2 s).")
        was = self.training
        self.eval()
        out = self(mel.float().to(self.device))
        self.train(was)
        return out[0] if single else out

    def checkpoint_extra(self) -> dict:
        return {"voices": self.voices}

    @classmethod
    def from_config(cls, cfg: SpeakerConfig, meta: dict) -> "SpeakerEncoder":
        return cls(cfg, meta.get("voices"))


# ----------------------------------------------------------------------------- evaluation


@torch.inference_mode()
def embed_all(model: "SpeakerEncoder", data: list[dict], batch: int = 32) -> torch.Tensor:
    """Vectors of ``[{mel (n_mels, F)}]`` → ``(N, emb_dim)`` (whole utterances, eval mode)."""
    was = model.training
    model.eval()
    out = []
    for i in range(0, len(data), batch):
        group = data[i: i + batch]
        lens = torch.tensor([d["mel"].shape[1] for d in group])
        mel = torch.zeros(len(group), model.cfg.n_mels, int(lens.max()))
        for k, d in enumerate(group):
            mel[k, :, : lens[k]] = d["mel"].float()
        out.append(model(mel.to(model.device), lens.to(model.device)).float().cpu())
    model.train(was)
    return torch.cat(out) if out else torch.zeros(0, model.cfg.emb_dim)


def centroids(emb: torch.Tensor, voices: list[str]) -> dict[str, torch.Tensor]:
    """``{voice: unit centroid (emb_dim,)}``: ``c_v = normalise(mean of v's vectors)``."""
    return {v: F.normalize(emb[[i for i, w in enumerate(voices) if w == v]].mean(0), dim=0)
            for v in sorted(set(voices))}


def speaker_report(model: "SpeakerEncoder", enroll: list[dict], test: list[dict], heldout=None) -> dict:
    """Nearest-centroid speaker ID and held-out voices' similarity to the train voices.

    Args:
        enroll: utterances of the train voices (``[{voice, mel}]``) that define the centroids.
        test: other utterances; those of enrolled voices are identified.
        heldout: voices of ``test`` to measure against the train centroids (default: every voice
            that is not enrolled); other voices are ignored.

    Returns:
        ``{"speaker_id_accuracy", "n_test", "confusions": {true: {predicted: n}},
        "heldout": {voice: {"nearest", "cosine_to_nearest", "cosine": {train voice: mean cos}}}}``.
    """
    cents = centroids(embed_all(model, enroll), [d["voice"] for d in enroll])
    names = list(cents)
    C = torch.stack([cents[v] for v in names])  # (V, emb_dim)
    emb = embed_all(model, test)
    sims = emb @ C.T  # (N, V) cosines
    correct, n, confusions, held = 0, 0, {}, {}
    for d, row in zip(test, sims):
        pred = names[int(row.argmax())]
        if d["voice"] in cents:
            n += 1
            correct += pred == d["voice"]
            if pred != d["voice"]:
                confusions.setdefault(d["voice"], {}).setdefault(pred, 0)
                confusions[d["voice"]][pred] += 1
        elif heldout is None or d["voice"] in heldout:
            held.setdefault(d["voice"], []).append(row)
    report = {}
    for v, rows in sorted(held.items()):
        mean = torch.stack(rows).mean(0)
        k = int(mean.argmax())
        report[v] = {"nearest": names[k], "cosine_to_nearest": round(float(mean[k]), 4),
                      "cosine": {w: round(float(c), 4) for w, c in zip(names, mean)}}
    return {"speaker_id_accuracy": correct / n if n else float("nan"), "n_test": n,
            "confusions": confusions, "heldout": report}

