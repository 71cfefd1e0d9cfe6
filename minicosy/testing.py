"""Helpers for tests and benchmarks: a complete checkpoint folder with random-init stages.

Not part of the system: nothing in ``minicosy`` imports this module. It lets the tests run the
whole pipeline (the plumbing, not the voice) in seconds, and the benchmarks time the real cost of
a preset before it has been trained.
"""

from __future__ import annotations

from pathlib import Path

import torch

from minicosy.utils import DEFAULT_CHECKPOINT


def write_untrained_checkpoint(out: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """A complete checkpoint folder with random-init LM, flow and speaker encoder beside links to the
    committed speech tokenizer and vocoder.

    ``size="tiny"`` uses the stages' ``tiny()`` presets (the cost of the real thing); ``"micro"``
    the smallest models that run (a 1-layer LM), for fast tests. The LM knows the corpus's train
    voices as SFT speakers, and ``speaker.json`` stores a centroid for each (random unit vectors,
    seeded: as arbitrary as a random-init encoder's centroids would be), as a trained export does.
    """
    from minicosy.data.corpus import TRAIN_VOICES
    from minicosy.flow.model import ChunkAwareFlow, FlowConfig
    from minicosy.flow.speaker import SpeakerConfig, SpeakerEncoder
    from minicosy.lm.model import LMConfig, TextSpeechLM
    from minicosy.speech_tokenizer.model import SpeechTokenizer
    from minicosy.text.chars import CharTokenizer

    if size not in ("tiny", "micro"):
        raise ValueError(f"size must be 'tiny' or 'micro', got {size!r}.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stage in ("speech_tokenizer", "vocoder"):
        for ext in (".json", ".safetensors"):
            link = out / f"{stage}{ext}"
            if not link.exists():
                link.symlink_to((DEFAULT_CHECKPOINT / f"{stage}{ext}").resolve())
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
    gen = torch.Generator().manual_seed(seed)
    cents = torch.nn.functional.normalize(torch.randn(len(TRAIN_VOICES), spk_cfg.emb_dim, generator=gen), dim=1)
    SpeakerEncoder(spk_cfg).save_pretrained(out / "speaker", extra={
        "untrained": True, "centroids": {v: c.tolist() for v, c in zip(TRAIN_VOICES, cents)}})
    return out
