"""Fixtures shared by the system tests (tests/test_system_*.py).

``ckpt``: a folder of random-init "micro" stages beside the committed speech tokenizer and vocoder
(the plumbing is under test, not the voice); ``model``: a :class:`~minicosy.system.model.MiniCosy`
on it; ``voice``: a fixture clip with its transcript. Module-scoped: each test module gets its own,
so a voice registered in one module never leaks into another.
"""

import pytest

from minicosy.utils import FIXTURES_DIR

CLIP = FIXTURES_DIR / "audio" / "festival_kal" / "festival_kal-valid-00000.flac"
CLIP_TEXT = "Adam and Kevin are good friends."


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from minicosy.testing import write_untrained_checkpoint

    return write_untrained_checkpoint(tmp_path_factory.mktemp("ckpt"), "micro")


@pytest.fixture(scope="module")
def model(ckpt):
    from minicosy.system.model import MiniCosy

    return MiniCosy.from_pretrained(ckpt, device="cpu")


@pytest.fixture(scope="module")
def voice():
    from minicosy.system.frontend import VoiceReference

    return VoiceReference.from_file(CLIP, CLIP_TEXT)
