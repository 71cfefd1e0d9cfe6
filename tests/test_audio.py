import numpy as np
import pytest
import soundfile as sf
import torch

from minicosy.audio import check_waveform, load_audio, log_mel, mel_spectrogram, save_audio, tokenizer_features
from minicosy.config import MelConfig


def _tone(sr, seconds=1.0, f0=220.0, seed=0):
    t = np.arange(int(sr * seconds)) / sr
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def _librosa_log_mel(wav, cfg):
    import librosa

    padded = np.pad(wav, (cfg.pad, cfg.pad), mode="reflect")
    mel = librosa.feature.melspectrogram(
        y=padded, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length,
        window="hann", center=False, power=1.0, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax,
    )
    return np.log(np.clip(mel, cfg.log_floor, None))


@pytest.mark.parametrize("cfg", [MelConfig.flow(), MelConfig.tokenizer()], ids=["flow24k", "tokenizer16k"])
def test_log_mel_matches_librosa_melspectrogram(cfg):
    wav = _tone(cfg.sample_rate, 1.3)
    ours = log_mel(wav, cfg).numpy()
    ref = _librosa_log_mel(wav, cfg)
    assert ours.shape == ref.shape == (80, wav.size // cfg.hop_length)
    np.testing.assert_allclose(ours, ref, atol=1e-3)


def test_shapes_single_and_batch():
    wav = torch.from_numpy(_tone(24000, 2.0))
    assert log_mel(wav).shape == (80, 100)
    batch = torch.stack([wav, wav * 0.5])
    out = log_mel(batch)
    assert out.shape == (2, 80, 100)
    torch.testing.assert_close(out[0], log_mel(wav))
    assert tokenizer_features(_tone(16000, 1.0)).shape == (80, 100)


def test_silence_sits_at_the_log_floor():
    out = log_mel(np.zeros(24000, dtype=np.float32))
    assert torch.allclose(out, torch.full_like(out, np.log(1e-5)), atol=1e-4)


def test_log_mel_is_differentiable():
    wav = torch.from_numpy(_tone(24000, 0.5)).requires_grad_(True)
    log_mel(wav).mean().backward()
    assert wav.grad is not None and torch.isfinite(wav.grad).all()


def test_log_mel_after_a_first_call_under_inference_mode_still_trains():
    """The cached mel basis and window are normal tensors even if synthesis (inference mode) built them:
    a training step afterwards must still backpropagate (it raised "Inference tensors cannot be saved")."""
    import minicosy.audio as audio

    audio._CACHE.clear()
    wav = torch.from_numpy(_tone(24000, 0.5))
    with torch.inference_mode():
        log_mel(wav)
    wav = wav.clone().requires_grad_(True)
    log_mel(wav).mean().backward()
    assert wav.grad is not None and torch.isfinite(wav.grad).all()


@pytest.mark.gpu
def test_log_mel_on_cuda_matches_cpu():
    wav = torch.from_numpy(_tone(24000, 1.0))
    torch.testing.assert_close(log_mel(wav.cuda()).cpu(), log_mel(wav), atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros(0, dtype=np.float32), "empty"),
        (np.array([0.0, np.nan, 0.1], dtype=np.float32), "NaN"),
        (np.zeros(100, dtype=np.int16), "int16"),
        (np.zeros((2, 2, 100), dtype=np.float32), "shape"),
        ([0.0, 0.1], "NumPy"),
    ],
)
def test_bad_waveforms_raise_value_error(bad, match):
    with pytest.raises(ValueError, match=match):
        check_waveform(bad)
    with pytest.raises(ValueError):
        log_mel(bad)


def test_too_short_for_one_frame():
    with pytest.raises(ValueError, match="too short"):
        mel_spectrogram(np.zeros(100, dtype=np.float32))


def test_load_audio_downmixes_and_resamples(tmp_path):
    left = _tone(16000, 1.0, 200)
    right = _tone(16000, 1.0, 300, seed=1)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000)
    same = load_audio(path, 16000)
    assert same.dtype == np.float32 and same.ndim == 1
    np.testing.assert_allclose(same, (left + right) / 2, atol=1e-4)  # 16-bit quantisation
    up = load_audio(path, 24000)
    assert abs(up.size - 24000) <= 1


def test_save_and_load_flac_round_trip(tmp_path):
    wav = _tone(24000, 0.5)
    save_audio(tmp_path / "x.flac", wav, 24000)
    np.testing.assert_allclose(load_audio(tmp_path / "x.flac", 24000), wav, atol=1e-4)


def test_unreadable_missing_and_empty_files(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_audio(tmp_path / "nope.wav", 16000)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio at all")
    with pytest.raises(ValueError, match="cannot read"):
        load_audio(junk, 16000)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0,), dtype=np.float32), 16000)
    with pytest.raises(ValueError, match="no samples"):
        load_audio(empty, 16000)
    with pytest.raises(ValueError, match="sample_rate"):
        load_audio(junk, 0)
