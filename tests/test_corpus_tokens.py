"""The corpus token cache shared by the LM and the flow (``minicosy data tokens``)."""

import shutil

import pytest
import torch

from minicosy.data.manifest import manifest_root, read_manifest, write_manifest
from minicosy.speech_tokenizer.corpus_tokens import build_token_cache, load_token_cache, tokenizer_checksum
from minicosy.speech_tokenizer.model import SpeechTokenizer
from minicosy.utils import DEFAULT_CHECKPOINT, FIXTURES_DIR


@pytest.fixture()
def small_corpus(tmp_path):
    rows = [u for u in read_manifest(FIXTURES_DIR) if u.split == "test"][:3]
    for u in rows:
        u.path = str(u.audio_path(manifest_root(FIXTURES_DIR)))
    write_manifest(tmp_path / "manifest.jsonl", rows)
    return tmp_path, rows


def test_cache_holds_the_tokenizer_tokens_and_resumes(small_corpus):
    root, rows = small_corpus
    path = build_token_cache(root, progress=False)
    tokens = load_token_cache(root)
    assert set(tokens) == {u.id for u in rows}
    tok = SpeechTokenizer.from_pretrained(device="cpu")
    from minicosy.audio import load_audio

    u = rows[0]
    assert torch.equal(tokens[u.id], tok.encode(load_audio(u.audio_path(root), 16000)))
    before = path.stat().st_mtime_ns
    build_token_cache(root, progress=False)  # nothing new to encode: same content
    assert set(load_token_cache(root)) == set(tokens) and path.stat().st_mtime_ns >= before


def test_a_cache_from_another_tokenizer_is_refused(small_corpus, tmp_path):
    root, _ = small_corpus
    with pytest.raises(ValueError, match="minicosy data tokens"):
        load_token_cache(root)  # none yet
    other = tmp_path / "other"
    other.mkdir()
    for suffix in (".json", ".safetensors"):
        shutil.copy(DEFAULT_CHECKPOINT / f"vq_tokenizer{suffix}", other / f"speech_tokenizer{suffix}")
    assert tokenizer_checksum(other) != tokenizer_checksum()
    build_token_cache(root, tokenizer=other, progress=False)
    with pytest.raises(ValueError, match="another speech tokenizer"):
        load_token_cache(root)
    assert load_token_cache(root, tokenizer=other)
