import pytest

from minicosy.config import MelConfig, TTSConfig


def test_seed_defaults_are_the_public_config():
    cfg = TTSConfig()
    assert (cfg.sample_rate, cfg.n_mels, cfg.frame_rate) == (24000, 80, 50)
    assert cfg.hop_length == 480 and cfg.token_rate == 25


def test_flow_mel_matches_design_section_1():
    m = MelConfig.flow()
    assert (m.sample_rate, m.n_fft, m.hop_length, m.win_length, m.n_mels) == (24000, 1920, 480, 1920, 80)
    assert (m.fmin, m.fmax, m.log_floor) == (0.0, 8000.0, 1e-5)
    assert m.frame_rate == 50
    assert TTSConfig().mel() == m


def test_tokenizer_features_run_at_100_hz_so_two_stride2_convs_give_25_hz():
    m = MelConfig.tokenizer()
    assert m.sample_rate == 16000 and m.frame_rate == 100
    assert m.frame_rate / 4 == TTSConfig().token_rate


def test_frame_count_rule():
    m = MelConfig.flow()
    for n in (480, 24000, 24000 + 479, 24000 + 480):
        assert m.n_frames(n) == n // 480


def test_rates_are_derived_not_hard_coded():
    cfg = TTSConfig(sample_rate=16000, n_mels=100, frame_rate=40)
    assert (cfg.hop_length, cfg.token_rate) == (400, 20)
    m = cfg.mel()
    assert (m.hop_length, m.n_fft, m.win_length, m.n_mels, m.frame_rate) == (400, 1600, 1600, 100, 40)


@pytest.mark.parametrize("kwargs, match", [
    ({"sample_rate": 24000, "frame_rate": 70}, "whole number of samples"),
    ({"frame_rate": 25, "sample_rate": 24000}, "even"),
    ({"n_mels": 0}, "positive integer"),
    ({"sample_rate": 24000.0}, "positive integer"),
])
def test_bad_rates_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TTSConfig(**kwargs)


def test_with_overrides_parses_each_field_as_its_type():
    from minicosy.speech_tokenizer.model import SpeechTokenizerConfig

    cfg = SpeechTokenizerConfig.tiny().with_overrides(["d_model=256", "enc1-layers=4", "utterance_cmn=false",
                                                        "dropout=0.2", "quantizer=vq"])
    assert (cfg.d_model, cfg.enc1_layers, cfg.utterance_cmn, cfg.dropout, cfg.quantizer) == (256, 4, False, 0.2, "vq")
    assert SpeechTokenizerConfig.tiny().with_overrides([]) == SpeechTokenizerConfig.tiny()
    for bad in (["d_model"], ["no_such_field=1"], ["d_model=wide"], ["utterance_cmn=maybe"]):
        with pytest.raises(ValueError, match="--set"):
            SpeechTokenizerConfig.tiny().with_overrides(bad)


def test_tokenizer_config_refuses_heads_that_do_not_split_the_width():
    from minicosy.speech_tokenizer.model import SpeechTokenizerConfig

    with pytest.raises(ValueError, match="n_heads"):
        SpeechTokenizerConfig.tiny().with_overrides(["d_model=300"])


def test_a_saved_config_without_an_added_field_reads_as_trained():
    """A checkpoint or a training run saved before ``prompt_lookahead`` existed was trained with "cross": loading
    and resuming read it so (a resume into today's "clip" default is refused, not silently switched)."""
    from minicosy.flow.model import FlowConfig
    from minicosy.training import check_config

    old = FlowConfig.tiny().to_dict()
    del old["prompt_lookahead"]
    assert FlowConfig.from_saved(old).prompt_lookahead == "cross"
    assert FlowConfig.from_dict(old).prompt_lookahead == "clip"  # from_dict: today's defaults
    check_config({"config": old}, FlowConfig.tiny(prompt_lookahead="cross"), FlowConfig, "run")
    with pytest.raises(ValueError, match="another config"):
        check_config({"config": old}, FlowConfig.tiny(), FlowConfig, "run")
