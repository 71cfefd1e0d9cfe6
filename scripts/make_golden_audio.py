"""Record the committed system's audio for two fixed requests (tests/data/golden_audio.npz).

``tests/test_golden_audio.py`` re-runs the same requests and asserts the audio is unchanged: a
refactor that keeps the checkpoints must keep the sound. Re-run this script only when a
checkpoint is deliberately replaced.
"""

from pathlib import Path

import numpy as np
import torch

from minicosy import MiniCosy, VoiceReference
from minicosy.utils import FIXTURES_DIR

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "golden_audio.npz"
PROMPT = "audio/mbrola_us3/mbrola_us3-valid-00000.flac"  # a held-out voice: zero-shot
TEXT_ICL = "They encouraged Michael near the mountain."
TEXT_SFT = "The market is quiet this morning."


def requests(model: MiniCosy) -> dict[str, np.ndarray]:
    """The two requests: zero-shot ICL offline, SFT streaming (chunks joined)."""
    from minicosy.data.manifest import read_manifest

    rows = {u.path: u for u in read_manifest(FIXTURES_DIR / "manifest.jsonl")}
    voice = VoiceReference.from_file(FIXTURES_DIR / PROMPT, rows[PROMPT].text)
    icl, _ = model.synthesize(TEXT_ICL, voice=voice, seed=3)
    sft = np.concatenate(list(model.stream(TEXT_SFT, speaker=model.speakers[0], seed=5)))
    return {"icl_offline": icl, "sft_stream": sft}


if __name__ == "__main__":
    torch.set_num_threads(1)
    audio = requests(MiniCosy.from_pretrained())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **{k: v.astype(np.float32) for k, v in audio.items()})
    print({k: (v.shape, float(np.abs(v).max())) for k, v in audio.items()}, "->", OUT)
