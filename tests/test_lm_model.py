"""Tests for minicosy.lm.model: shapes, the embedding routing, KV-cached = full logits, the paper
preset's size (built on the meta device), init_from a local Qwen2 checkpoint, save/load."""

import dataclasses
import json

import pytest
import torch

from minicosy.lm.model import LMConfig, TextSpeechLM
from minicosy.lm.sequence import build_sequence, to_tensors
from minicosy.text.chars import CharTokenizer


def micro(**kw) -> LMConfig:
    base = dict(codebook_size=27, text_vocab_size=CharTokenizer().vocab_size, d_model=32, n_layers=2, n_heads=4,
                n_kv_heads=2, d_ff=64, max_len=256, dropout=0.0, mix_n=4, mix_m=3)
    return LMConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return TextSpeechLM(micro()).eval()


def test_tiny_preset_size_and_head_layout():
    m = TextSpeechLM(LMConfig.tiny())
    n = m.num_parameters()
    assert 3.5e6 < n < 5e6, n  # docs/paper_vs_code.md §5: 4 × 256 ≈ 4.2 M
    assert m.head.out_features == 243 + 3 and (m.eos, m.fill) == (243, 245)
    assert m.text_embedding.num_embeddings == CharTokenizer().vocab_size
    assert m.speech_embedding.num_embeddings == 243


def test_paper_preset_on_meta_device():
    with torch.device("meta"):
        m = TextSpeechLM(LMConfig.paper())
    n = m.num_parameters()
    # Qwen2.5-0.5B backbone (≈ 494 M with its 151,936-token embedding) + speech embedding/head
    assert 490e6 < n < 510e6, n
    assert m.backbone.config.num_key_value_heads == 2 and m.head.out_features == 6564


def test_forward_shapes_and_embedding_routing(model):
    batch = to_tensors([build_sequence([8, 9, 10], [1, 2], False), build_sequence([8], [3], False)], 27)
    logits = model(batch["kinds"], batch["ids"])
    assert logits.shape == (2, 7, 30)
    x = model.embed(batch["kinds"], batch["ids"])
    assert torch.equal(x[0, 0], model.special_embedding.weight[0])  # SOS
    assert torch.equal(x[0, 4], model.special_embedding.weight[1])  # TASK
    assert torch.equal(x[0, 1], model.text_embedding.weight[8])
    assert torch.equal(x[0, 5], model.speech_embedding.weight[1])
    assert torch.equal(x[1, 4], torch.zeros(32))  # padding


def test_right_padding_does_not_change_real_positions(model):
    a = build_sequence([8, 9, 10], [1, 2, 3, 4], False)
    alone = to_tensors([a], 27)
    padded = to_tensors([a, build_sequence(list(range(8, 20)), list(range(10)), False)], 27)
    la = model(alone["kinds"], alone["ids"])[0]
    lp = model(padded["kinds"], padded["ids"])[0, : la.shape[0]]
    assert torch.allclose(la, lp, atol=1e-5)


def test_kv_cache_incremental_equals_full(model):
    inp, _ = build_sequence(list(range(8, 20)), list(range(20)), True, n=4, m=3)
    b = to_tensors([(inp, [None] * len(inp))], 27)
    full = model(b["kinds"], b["ids"])[0]
    cache = model.new_cache()
    pieces, start = [], 0
    for size in (5, 1, 1, 7, 1, len(inp) - 15):  # a prefill, single steps, a chunk, the rest
        pieces.append(model(b["kinds"][:, start:start + size], b["ids"][:, start:start + size], cache=cache)[0])
        start += size
    assert start == len(inp) and cache.get_seq_length() == len(inp)
    assert torch.allclose(torch.cat(pieces), full, atol=1e-5)


def test_loss_and_accuracy(model):
    batch = to_tensors([build_sequence([8, 9], [1, 2, 3], False)], 27)
    out = model.loss(batch)
    assert out["n"] == 4 and 0 <= out["acc"].item() <= 1
    assert abs(out["loss"].item() - torch.log(torch.tensor(30.0)).item()) < 1.0  # near uniform at init


def test_save_load_roundtrip(tmp_path, model):
    tok = CharTokenizer(["v1"])
    stem = model.save_pretrained(tmp_path / "lm", text_tokenizer=tok.to_dict(), extra={"trained": {"steps": 0}},
                                 dtype=torch.float32)
    back = TextSpeechLM.from_pretrained(tmp_path, device="cpu")
    assert back.cfg == model.cfg and back.meta["trained"]["steps"] == 0
    assert back.text_tokenizer().speakers == ["v1"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, back.state_dict()[k]), k
    # fp16 export loads back into fp32 within fp16 precision
    model.save_pretrained(tmp_path / "lm16", dtype=torch.float16)
    back16 = TextSpeechLM.from_pretrained(tmp_path / "lm16.json", device="cpu")
    assert back16.head.weight.dtype == torch.float32
    assert torch.allclose(back16.head.weight, model.head.weight, atol=1e-3)
    assert json.loads(stem.with_suffix(".json").read_text())["dtype"] == "float32"


def test_load_errors(tmp_path, model):
    with pytest.raises(ValueError, match="checkpoint file missing"):
        TextSpeechLM.from_pretrained(tmp_path / "nope")
    stem = model.save_pretrained(tmp_path / "lm")
    meta = json.loads(stem.with_suffix(".json").read_text())
    meta["config"]["d_model"] = 64
    stem.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="does not match its config"):
        TextSpeechLM.from_pretrained(stem)
    with pytest.raises(ValueError, match="unknown LM config fields"):
        LMConfig.from_dict({**micro().to_dict(), "wings": 2})
    with pytest.raises(ValueError, match="no text tokenizer"):
        model.text_tokenizer()


def test_init_from_local_qwen2(tmp_path):
    """A tiny Qwen2ForCausalLM saved by transformers becomes the backbone, sizes and all."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(1)
    qc = Qwen2Config(vocab_size=50, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, max_position_embeddings=300, rope_theta=5000.0)
    src = Qwen2ForCausalLM(qc)
    src.save_pretrained(tmp_path / "qwen")
    m = TextSpeechLM(micro(), init_from=tmp_path / "qwen")
    assert (m.cfg.d_model, m.cfg.text_vocab_size, m.cfg.d_ff, m.cfg.max_len) == (48, 50, 96, 300)
    assert m.cfg.rope_theta == 5000.0 and m.cfg.codebook_size == 27
    for k, v in src.model.state_dict().items():
        assert torch.equal(v, m.backbone.state_dict()[k]), k
    assert m.speech_embedding.embedding_dim == 48
    # the loaded model saves and reloads without the Qwen folder
    m.save_pretrained(tmp_path / "lm", dtype=torch.float32)
    back = TextSpeechLM.from_pretrained(tmp_path / "lm", device="cpu")
    assert torch.equal(back.text_embedding.weight, src.model.embed_tokens.weight)
    with pytest.raises(ValueError, match="no config.json"):
        TextSpeechLM(micro(), init_from=tmp_path / "empty")


def test_config_dict_roundtrip():
    for cfg in (LMConfig.tiny(), LMConfig.paper(), micro()):
        assert LMConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert dataclasses.replace(LMConfig.tiny(), dropout=0.0) != LMConfig.tiny()
