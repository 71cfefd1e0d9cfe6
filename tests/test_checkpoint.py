"""Tests for minicosy.checkpoint: one JSON + safetensors contract for the five stages, the presets.

Every stage is written and read back through :class:`~minicosy.checkpoint.CheckpointMixin` (micro
sizes, bit-exact in fp32); each committed checkpoint loads, with the bare constructor's config; the
three older layouts (the LM's ``"model"`` key, the ``"format"`` of three stages, the vocoder's
untagged JSON) still load, with their fields' old defaults; bad files raise ``ValueError``; the bare
constructor means ``tiny()`` for every stage config.
"""

import json

import pytest
import torch

from minicosy.checkpoint import FORMAT, CheckpointMixin, upgrade_meta
from minicosy.flow.model import ChunkAwareFlow, FlowConfig
from minicosy.flow.speaker import SpeakerConfig, SpeakerEncoder
from minicosy.lm.model import LMConfig, TextSpeechLM
from minicosy.speech_tokenizer.model import SpeechTokenizer, SpeechTokenizerConfig
from minicosy.utils import DEFAULT_CHECKPOINT
from minicosy.vocoder.hift import Vocoder, VocoderConfig

CONFIGS = [LMConfig, FlowConfig, SpeakerConfig, SpeechTokenizerConfig, VocoderConfig]


def micro(stage: str) -> CheckpointMixin:
    """A random model of each stage, small enough to save and load in milliseconds."""
    torch.manual_seed(0)
    if stage == "lm":
        return TextSpeechLM(LMConfig.tiny(codebook_size=27, text_vocab_size=40, d_model=16, n_layers=1, n_heads=2,
                                          n_kv_heads=1, d_ff=32, max_len=64, dropout=0.0))
    if stage == "flow":
        return ChunkAwareFlow(FlowConfig.tiny(vocab_size=27, d_enc=16, enc_heads=2, enc_pre_layers=1,
                                              enc_post_layers=1, d_est=16, est_heads=2, est_layers=1, time_dim=8,
                                              spk_dim=8, max_frames=200))
    if stage == "speaker":
        return SpeakerEncoder(SpeakerConfig.tiny(channels=16, dilations=(1, 2), emb_dim=8, n_speakers=2), ["a", "b"])
    if stage == "speech_tokenizer":
        return SpeechTokenizer(SpeechTokenizerConfig.tiny(d_model=16, n_heads=2, enc1_layers=1, enc2_layers=1,
                                                          fsq_dims=3))
    return Vocoder(VocoderConfig.tiny(base_channels=16, f0_channels=8))


STAGES = ["lm", "flow", "speaker", "speech_tokenizer", "vocoder"]


def state_of(model) -> dict:
    return model.checkpoint_module().state_dict()


def assert_same(a, b):
    sa, sb = state_of(a), state_of(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


# ----------------------------------------------------------------------------- the round trip


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_round_trips_through_the_mixin(stage, tmp_path):
    model = micro(stage)
    assert isinstance(model, CheckpointMixin) and type(model).stage == stage
    stem = model.save_pretrained(tmp_path, extra={"trained": {"steps": 7}, "format": "ignored"}, dtype=torch.float32)
    assert stem == tmp_path / stage  # a folder → <folder>/<stage>
    meta = json.loads(stem.with_suffix(".json").read_text())
    assert (meta["format"], meta["stage"], meta["dtype"]) == (FORMAT, stage, "float32")
    assert meta["config"] == model.cfg.to_dict() and meta["trained"] == {"steps": 7}
    for where in (tmp_path, stem, stem.with_suffix(".json"), stem.with_suffix(".safetensors")):
        back = type(model).from_pretrained(where, device="cpu")
        assert back.cfg == model.cfg and not back.training and back.meta["trained"] == {"steps": 7}
        assert_same(back, model)
    if stage == "speaker":
        assert back.voices == ["a", "b"] and meta["voices"] == ["a", "b"]


@pytest.mark.parametrize("stage", ["lm", "flow", "vocoder"])
def test_fp16_storage_loads_back_in_fp32(stage, tmp_path):
    model = micro(stage)
    stem = model.save_pretrained(tmp_path / "half", dtype=torch.float16)
    from safetensors.torch import load_file

    stored = load_file(str(stem.with_suffix(".safetensors")))
    keep = type(model).keep_fp32
    assert all(v.dtype == (torch.float32 if k in keep else torch.float16) for k, v in stored.items())
    back = type(model).from_pretrained(stem, device="cpu")
    for k, v in state_of(back).items():
        assert v.dtype == torch.float32 and torch.equal(v, stored[k].float()), k


def test_stage_specific_save_signatures_still_work(tmp_path):
    """The old per-stage calls (the trainers use them) write the one format too."""
    lm = micro("lm")
    lm.save_pretrained(tmp_path / "lm", text_tokenizer={"speakers": []}, extra={"x": 1}, dtype=torch.float32)
    assert json.loads((tmp_path / "lm.json").read_text())["text_tokenizer"] == {"speakers": []}
    micro("flow").save_pretrained(tmp_path / "flow", half=False, extra={"untrained": True})
    flow = json.loads((tmp_path / "flow.json").read_text())
    assert flow["dtype"] == "float32" and flow["untrained"] and flow["fp16_max_abs_delta"] is None
    out = micro("vocoder").save(tmp_path / "voc", half=False, meta={"training": {"steps": 3}})
    assert out == tmp_path / "voc" and (out / "vocoder.safetensors").is_file()
    voc = Vocoder.from_pretrained(out, device="cpu")
    assert voc.meta["training"] == {"steps": 3} and voc.meta["stage"] == "vocoder"
    voc.save(tmp_path / "again")  # a loaded model re-saves its own notes; the mixin's keys stay its own
    again = json.loads((tmp_path / "again" / "vocoder.json").read_text())
    assert again["training"] == {"steps": 3} and again["dtype"] == "float16" and again["format"] == FORMAT


# ----------------------------------------------------------------------------- the committed checkpoints


@pytest.mark.parametrize("name, klass", [("lm", TextSpeechLM), ("flow", ChunkAwareFlow), ("speaker", SpeakerEncoder),
                                         ("speech_tokenizer", SpeechTokenizer), ("vq_tokenizer", SpeechTokenizer),
                                         ("vocoder", Vocoder)])
def test_committed_checkpoints_load(name, klass):
    stem = DEFAULT_CHECKPOINT / name
    if not stem.with_suffix(".safetensors").is_file():
        pytest.skip(f"{name} not trained yet")
    meta = json.loads(stem.with_suffix(".json").read_text())
    if name == "vq_tokenizer":  # its JSON's bytes key a token cache (tokenizer_checksum): left as written,
        assert meta["format"] == "minicosy-speech-tokenizer-1"  # read through the legacy path
    else:
        assert meta["format"] == FORMAT and meta["stage"] == klass.stage
    model = klass.from_pretrained(None if name == klass.stage else stem, device="cpu")
    assert model.meta["format"] == FORMAT and model.meta["stage"] == klass.stage
    # the bare constructor is the committed preset (fields a trainer sets from its data aside)
    set_by_data = {"n_speakers": model.cfg.n_speakers} if name == "speaker" else {}
    if name == "vq_tokenizer":
        set_by_data = {"quantizer": "vq"}
    assert model.cfg == type(model.cfg)(**set_by_data)
    assert (DEFAULT_CHECKPOINT / "text_tokenizer.json").is_file()  # the BPE beside the five stages


# ----------------------------------------------------------------------------- older formats


def legacy(meta: dict, stage: str) -> dict:
    """``meta`` (the one format) as the minicosy before it wrote it for ``stage``."""
    old = {k: v for k, v in meta.items() if k not in ("format", "stage")}
    if stage == "lm":
        return {"model": "minicosy.TextSpeechLM", **old}
    if stage == "vocoder":
        return old  # the vocoder's own save(): no format key
    if stage == "flow":
        old["dtype"] = {"float16": "fp16", "float32": "fp32"}[old["dtype"]]
    return {"format": f"minicosy-{stage.replace('_', '-')}-1", **old}


@pytest.mark.parametrize("stage", STAGES)
def test_older_formats_still_load(stage, tmp_path):
    model = micro(stage)
    stem = model.save_pretrained(tmp_path / "m", dtype=torch.float32)
    meta = json.loads(stem.with_suffix(".json").read_text())
    stem.with_suffix(".json").write_text(json.dumps(legacy(meta, stage)))
    back = type(model).from_pretrained(stem, device="cpu")
    assert back.cfg == model.cfg and back.meta["format"] == FORMAT and back.meta["stage"] == stage
    assert back.meta["dtype"] == "float32"
    assert_same(back, model)


def test_a_field_missing_from_an_old_file_takes_its_old_default(tmp_path):
    """Before the one format the bare FlowConfig() was the paper size; an old file meant those defaults."""
    model = ChunkAwareFlow(FlowConfig.paper(d_enc=16, enc_heads=2, enc_pre_layers=1, enc_post_layers=1, d_est=16,
                                            est_heads=2, est_layers=1, time_dim=8, spk_dim=8, vocab_size=27))
    stem = model.save_pretrained(tmp_path / "flow", half=False)
    meta = json.loads(stem.with_suffix(".json").read_text())
    del meta["config"]["chunk_tokens"], meta["config"]["max_frames"]  # 25 and 15000 then, 15 and 3000 now
    stem.with_suffix(".json").write_text(json.dumps(legacy(meta, "flow")))
    assert ChunkAwareFlow.from_pretrained(stem, device="cpu").cfg == model.cfg
    assert upgrade_meta(legacy(meta, "flow"), "x")[1] is True and upgrade_meta(meta, "x")[1] is False


# ----------------------------------------------------------------------------- bad files


def test_bad_checkpoints_raise_value_errors(tmp_path):
    lm, flow = micro("lm"), micro("flow")
    with pytest.raises(ValueError, match="LM checkpoint file missing: .*nothing.json. Train one"):
        TextSpeechLM.from_pretrained(tmp_path / "nothing")
    stem = lm.save_pretrained(tmp_path / "lm")
    with pytest.raises(ValueError, match="is a lm checkpoint, not a flow one"):
        ChunkAwareFlow.from_pretrained(stem)
    meta = json.loads(stem.with_suffix(".json").read_text())
    for bad, match in ((dict(meta, format="minicosy-checkpoint-99"), "unknown checkpoint format"),
                       ({"format": FORMAT}, "no 'config' object"),
                       (dict(meta, config={**meta["config"], "wings": 2}), "unknown LM config fields"),
                       (dict(meta, config={**meta["config"], "d_model": 32}), "does not match its config")):
        stem.with_suffix(".json").write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=match):
            TextSpeechLM.from_pretrained(stem)
    stem.with_suffix(".json").write_text(json.dumps(meta)[:50])
    with pytest.raises(ValueError, match="not valid JSON"):
        TextSpeechLM.from_pretrained(stem)
    fstem = flow.save_pretrained(tmp_path / "flow", half=False)
    data = fstem.with_suffix(".safetensors").read_bytes()
    fstem.with_suffix(".safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot read .*flow.safetensors"):
        ChunkAwareFlow.from_pretrained(fstem)


# ----------------------------------------------------------------------------- presets


@pytest.mark.parametrize("config", CONFIGS)
def test_the_bare_constructor_is_tiny_for_every_stage(config):
    assert config() == config.tiny()
    assert config.paper() != config.tiny()
    assert config.from_dict(json.loads(json.dumps(config.paper().to_dict()))) == config.paper()
    assert config.from_dict({}) == config()  # missing fields: the bare constructor's defaults
    field = "dropout" if config is not VocoderConfig else "audio_limit"
    assert getattr(config.tiny(**{field: 0.5}), field) == 0.5 == getattr(config.paper(**{field: 0.5}), field)
    assert config.__doc__ and "tiny" in config.__doc__ and "paper" in config.__doc__
    with pytest.raises(ValueError, match="unknown .* fields"):
        config.from_dict({"wings": 2})


def test_paper_presets_are_the_published_sizes():
    assert (LMConfig.paper().d_model, LMConfig.paper().n_layers, LMConfig.paper().codebook_size) == (896, 24, 6561)
    assert (FlowConfig.paper().d_enc, FlowConfig.paper().vocab_size, FlowConfig.paper().spk_dim) == (512, 6561, 192)
    assert SpeakerConfig.paper().emb_dim == 192 and SpeechTokenizerConfig.paper().codebook_size == 6561
    assert VocoderConfig.paper().upsample_rates == (8, 5, 3) and not VocoderConfig.paper().source_phase
    assert FlowConfig().vocab_size == LMConfig().codebook_size == SpeechTokenizerConfig().codebook_size == 243
    assert FlowConfig().spk_dim == SpeakerConfig().emb_dim
