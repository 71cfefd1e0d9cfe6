"""Tests for the vocoder (minicosy/vocoder.py, minicosy/vocoder_train.py).

Shapes and presets, re-derived formulas (Snake, the NSF phase, the LSGAN losses), the
Griffin-Lim front-end inverse, save/load round trips, bad input, streaming against offline
synthesis (difference and the largest sample jump at chunk joins), one training step with
resume, and the committed tiny checkpoint on a fixture recording.
"""

import json
import math

import numpy as np
import pytest
import torch

from minicosy.audio import load_audio, log_mel
from minicosy.config import MelConfig
from minicosy.data.manifest import manifest_root, read_manifest
from minicosy.utils import DEFAULT_CHECKPOINT, FIXTURES_DIR, seed_everything
from minicosy.vocoder import evaluate as vocoder_eval
from minicosy.vocoder import train as vt
from minicosy.vocoder.griffinlim import griffin_lim, istft_frames, mel_to_magnitude, stft_frames
from minicosy.vocoder.hift import HarmonicSource, Snake, Vocoder, VocoderConfig

HAS_CKPT = (DEFAULT_CHECKPOINT / "vocoder.safetensors").is_file()


def _speechlike(seconds=1.0, f0=140.0, sr=24000, seed=0):
    """A voiced buzz (harmonics of a gliding f0) under a syllable envelope, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f = f0 * (1 + 0.1 * np.sin(2 * np.pi * 1.5 * t))
    ph = 2 * np.pi * np.cumsum(f) / sr
    x = sum(np.sin(k * ph) / k for k in range(1, 20))
    env = np.clip(np.sin(2 * np.pi * 2.5 * t), 0, None) ** 2 + 0.02
    return (0.2 * env * x + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def untrained():
    seed_everything(0)
    return Vocoder(VocoderConfig.tiny()).eval()


@pytest.fixture(scope="module")
def fixture_wav():
    utts = read_manifest(FIXTURES_DIR / "manifest.jsonl", split="test")
    u = sorted(utts, key=lambda u: u.id)[0]
    return load_audio(u.audio_path(manifest_root(FIXTURES_DIR / "manifest.jsonl")), 24000)


# ----------------------------------------------------------------------------- config and shapes


def test_presets_multiply_to_hop():
    for cfg in (VocoderConfig.tiny(), VocoderConfig.paper()):
        assert cfg.upsample_factor * cfg.istft_hop == 480
    assert VocoderConfig.paper().upsample_rates == (8, 5, 3)
    assert (VocoderConfig.paper().istft_n_fft, VocoderConfig.paper().istft_hop) == (16, 4)
    with pytest.raises(ValueError, match="must equal hop_length"):
        VocoderConfig(upsample_rates=(8, 5), istft_hop=4)


def test_paper_preset_size():
    n = Vocoder(VocoderConfig.paper()).num_parameters()
    assert 15e6 < n < 30e6  # HiFT is ≈ 21 M parameters


@pytest.mark.parametrize("batch, frames", [(1, 1), (2, 7), (3, 50)])
def test_output_shape(untrained, batch, frames):
    mel = torch.randn(batch, 80, frames) - 5
    wav, f0 = untrained(mel, return_f0=True)
    assert wav.shape == (batch, frames * 480) and f0.shape == (batch, frames)
    assert torch.isfinite(wav).all() and wav.abs().max() <= 0.99 and (f0 >= 0).all()
    assert untrained(mel[0]).shape == (frames * 480,)  # (80, F) → (F·480,)


def test_offline_is_deterministic_and_batch_independent(untrained):
    mel = torch.randn(2, 80, 30) - 5
    a = untrained(mel)
    assert torch.equal(a, untrained(mel))
    # The source-phase head takes atan2 of the source STFT, which magnifies float rounding in
    # bins where the source is near zero; with the sin(b) head the gap is ~1e-5 of the peak.
    assert torch.allclose(untrained(mel[1:]), a[1:], atol=2e-4 * float(a.abs().max()))


@pytest.mark.parametrize("bad, match", [
    (torch.randn(80), "expected shape"),
    (torch.randn(1, 1, 80, 10), "expected shape"),
    (torch.randn(1, 64, 10), "80 mel bins"),
    (torch.randn(1, 10, 80), "transposed"),
    (torch.randn(1, 80, 0), "0 frames"),
    (torch.full((1, 80, 5), float("nan")), "NaN"),
    (torch.zeros(1, 80, 5, dtype=torch.int64), "floating-point"),
    ([[0.0] * 5] * 80, "tensor or NumPy"),
])
def test_bad_mel_raises(untrained, bad, match):
    with pytest.raises(ValueError, match=match):
        untrained(bad)
    with pytest.raises(ValueError, match=match):
        griffin_lim(bad)


# ----------------------------------------------------------------------------- formulas


def test_snake_formula():
    act = Snake(3)
    with torch.no_grad():
        act.alpha.copy_(torch.tensor([0.5, 1.0, 2.0]).view(1, 3, 1))
    x = torch.linspace(-3, 3, 21).repeat(1, 3, 1)
    a = torch.tensor([0.5, 1.0, 2.0]).view(1, 3, 1)
    assert torch.allclose(act(x), x + torch.sin(a * x) ** 2 / a, atol=1e-6)


def test_harmonic_source_pitch_and_phase_carry():
    cfg = VocoderConfig.tiny()
    src = HarmonicSource(cfg).eval()
    with torch.no_grad():  # pass the fundamental only, so the spectrum peak is F0
        src.merge.weight.zero_()
        src.merge.weight[0, 0] = 5.0
        src.merge.bias.zero_()
    f0 = torch.full((1, 50), 200.0)
    torch.set_grad_enabled(False)
    try:
        _check_source(src, f0)
    finally:
        torch.set_grad_enabled(True)


def _check_source(src, f0):
    s, cycles = src(f0)
    spec = np.abs(np.fft.rfft(s[0, 0].numpy()))
    assert abs(np.argmax(spec) * 24000 / s.shape[-1] - 200.0) <= 1.0
    # φ = 2π·frac(Σ f0/sr): 50 frames at 200 Hz are exactly 200 cycles
    assert abs(float(cycles[0, -1]) - 200.0) < 1e-9
    # two halves with the phase carried = one run (the stream's source cache)
    s1, c1 = src(f0[:, :20])
    s2, _ = src(f0[:, 20:], phase0=c1[:, -1], offset=20 * 480)
    assert torch.allclose(torch.cat([s1, s2], dim=2), s, atol=1e-5)
    # unvoiced frames carry noise only: a flat spectrum, no harmonic peak
    s0, _ = src(torch.zeros(1, 50))
    spec0 = np.abs(np.fft.rfft(s0[0, 0].numpy()))
    assert spec.max() / spec.mean() > 100 and spec0.max() / spec0.mean() < 10


def test_lsgan_and_feature_matching_known_answers():
    real = [(torch.ones(2, 5), [torch.ones(2, 3)]), (torch.ones(2, 4), [torch.zeros(2, 2)])]
    fake = [(torch.zeros(2, 5), [torch.ones(2, 3)]), (torch.zeros(2, 4), [torch.zeros(2, 2)])]
    assert float(vt.discriminator_loss(real, fake)) == 0.0  # D perfect
    assert float(vt.generator_adv_loss(fake)) == 2.0  # Σ_k E[(0 − 1)²] over 2 discriminators
    assert float(vt.feature_matching_loss(real, fake)) == 0.0
    shifted = [(s, [f + 0.5 for f in fs]) for s, fs in fake]
    assert abs(float(vt.feature_matching_loss(real, shifted)) - 1.0) < 1e-6  # 0.5 per layer × 2


def test_mrstft_loss_zero_on_identity_positive_otherwise():
    x = torch.from_numpy(_speechlike(0.5))[None]
    assert float(vt.multi_resolution_stft_loss(x, x)) < 1e-6
    assert float(vt.multi_resolution_stft_loss(0.5 * x, x)) > 0.1


def test_discriminators_shapes():
    d = vt.Discriminators()
    outs = d(torch.randn(2, 4800))
    assert len(outs) == 8  # 5 periods + 3 resolutions
    for score, feats in outs:
        assert score.shape[0] == 2 and len(feats) >= 5


# ----------------------------------------------------------------------------- Griffin-Lim


def testistft_frames_inverts_the_front_end_stft():
    x = torch.from_numpy(_speechlike(0.6))[None].double()
    y = istft_frames(stft_frames(x, MelConfig.flow()), MelConfig.flow())
    assert y.shape == x.shape
    assert torch.allclose(y[:, 960:-960], x[:, 960:-960], atol=1e-8)


def test_mel_inverse_is_nonnegative_and_consistent():
    x = _speechlike(0.5)
    mel = log_mel(x)[None]
    S = mel_to_magnitude(mel)
    assert S.shape == (1, 961, mel.shape[-1]) and (S >= 0).all()
    from minicosy.audio import _mel_basis_np

    back = torch.log(torch.clamp(torch.from_numpy(_mel_basis_np(24000, 1920, 80, 0.0, 8000.0)) @ S, min=1e-5))
    assert float((back - mel).abs().mean()) < 0.05  # the fitted magnitudes reproduce the mel


def test_griffin_lim_reconstructs_the_mel():
    x = _speechlike(1.0)
    mel = log_mel(x)
    y = griffin_lim(mel, n_iter=32)
    assert y.shape == (mel.shape[-1] * 480,)
    err_gl = float((log_mel(y) - mel).abs().mean())
    err_0 = float((log_mel(griffin_lim(mel, n_iter=0)) - mel).abs().mean())
    assert err_gl < 0.5 and err_gl < err_0  # iterations make the phase consistent


# ----------------------------------------------------------------------------- save / load


def test_save_load_roundtrip(tmp_path, untrained):
    mel = torch.randn(1, 80, 12) - 5
    untrained.save(tmp_path / "fp32", half=False)
    again = Vocoder.from_pretrained(tmp_path / "fp32", device="cpu")
    assert torch.equal(again(mel), untrained(mel))
    untrained.save(tmp_path / "fp16")
    half = Vocoder.from_pretrained(tmp_path / "fp16", device="cpu")
    assert json.loads((tmp_path / "fp16" / "vocoder.json").read_text())["dtype"] == "float16"
    assert (half(mel) - untrained(mel)).abs().max() < 0.05


def test_missing_and_mismatched_checkpoints(tmp_path, untrained):
    with pytest.raises(ValueError, match="vocoder checkpoint file missing"):
        Vocoder.from_pretrained(tmp_path / "nothing")
    untrained.save(tmp_path / "v")
    info = json.loads((tmp_path / "v" / "vocoder.json").read_text())
    info["config"]["base_channels"] = 32
    (tmp_path / "v" / "vocoder.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="does not match its config"):
        Vocoder.from_pretrained(tmp_path / "v")
    info["config"]["colour"] = "blue"
    (tmp_path / "v" / "vocoder.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="unknown vocoder config fields"):
        Vocoder.from_pretrained(tmp_path / "v")


# ----------------------------------------------------------------------------- streaming


def _chunks(mel, sizes):
    out, s, i = [], 0, 0
    while s < mel.shape[-1]:
        n = sizes[i % len(sizes)]
        out.append(mel[..., s:s + n])
        s, i = s + n, i + 1
    return out


def _join_jump(pieces):
    """Largest |y[n] − y[n−1]| across the boundaries between yielded pieces."""
    jumps, prev = [], None
    for p in pieces:
        if prev is not None and p.shape[-1]:
            jumps.append(float((p[..., 0] - prev[..., -1]).abs().max()))
        prev = p if p.shape[-1] else prev
    return max(jumps) if jumps else 0.0


@pytest.mark.parametrize("sizes", [[25], [10], [1], [3, 17, 9, 40], [200]])
def test_stream_matches_offline(sizes, untrained, fixture_wav):
    voc = Vocoder.from_pretrained() if HAS_CKPT else untrained
    mel = log_mel(fixture_wav)[None]
    offline = voc(mel)
    pieces = list(voc.stream(_chunks(mel, sizes)))
    streamed = torch.cat(pieces, dim=1)
    assert streamed.shape == offline.shape
    peak = float(offline.abs().max())
    # outside the cross-fades the streamed audio is the offline audio; inside, nearly
    assert float((streamed - offline).abs().max()) < 0.02 * peak
    # no clicks: a jump at a join is no larger than the largest step of the offline signal
    assert _join_jump(pieces) <= float(offline.diff(dim=1).abs().max()) + 1e-6


def test_stream_unbatched_and_bad_chunks(untrained):
    mel = torch.randn(80, 40) - 5
    out = torch.cat(list(untrained.stream(_chunks(mel, [7]))))
    assert out.shape == (40 * 480,)
    with pytest.raises(ValueError, match="80 mel bins"):
        list(untrained.stream([torch.randn(1, 81, 5)]))
    with pytest.raises(ValueError, match="lookahead"):
        list(untrained.stream([mel], context=4, lookahead=1))


# ----------------------------------------------------------------------------- training


@pytest.mark.slow  # pyin targets + two GAN steps + validation: ~25 s on 2 cores
def test_train_two_steps_and_resume(tmp_path):
    manifest = FIXTURES_DIR / "manifest.jsonl"
    tcfg = vt.TrainConfig(max_steps=2, max_per_voice=1, warmup_minutes=0.0, n_valid=2,
                          segment_frames=8, batch_size=2)
    vt.train(manifest, tmp_path / "run", out_dir=tmp_path / "out", tcfg=tcfg, progress=False,
             log=lambda s: None)
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=False)["state"]
    assert state["step"] == 2 and state["gan_start_step"] == 0  # warm-up 0: GAN from step 0
    tcfg.max_steps = 3
    voc = vt.train(manifest, tmp_path / "run", out_dir=tmp_path / "out", tcfg=tcfg, progress=False,
                   log=lambda s: None)
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=False)["state"]
    assert state["step"] == 3
    curve = json.loads((tmp_path / "run" / "curve.json").read_text())
    assert curve[-1]["step"] == 3 and all(math.isfinite(c["val_mel_l1"]) for c in curve)
    loaded = Vocoder.from_pretrained(tmp_path / "out")
    assert loaded.meta["training"]["steps"] == 3
    mel = log_mel(_speechlike(0.2))
    assert loaded(mel).shape == voc(mel).shape

    # a fine-tune starts from that export, with the full-band term, and keeps the starting record
    tcfg_ft = vt.TrainConfig(max_steps=1, max_per_voice=1, warmup_minutes=0.0, n_valid=2, segment_frames=8,
                             batch_size=2, lambda_mel_full=45.0)
    vt.train(manifest, tmp_path / "ft", out_dir=tmp_path / "ft_out", tcfg=tcfg_ft, progress=False,
             log=lambda s: None, init_from=tmp_path / "out")
    tuned = Vocoder.from_pretrained(tmp_path / "ft_out")
    assert tuned.meta["training"]["init_from"] == str(tmp_path / "out")
    assert tuned.meta["training"]["train_config"]["lambda_mel_full"] == 45.0
    assert tuned.meta["init"]["training"]["steps"] == 3 and tuned.meta["init"]["curve"] == loaded.meta["curve"]
    # resuming past the budget re-saves without duplicating the last validation point
    voc_ft = vt.train(manifest, tmp_path / "ft", out_dir=tmp_path / "ft_out", tcfg=tcfg_ft, progress=False,
                      log=lambda s: None)
    assert [c["step"] for c in json.loads((tmp_path / "ft" / "curve.json").read_text())] == [0, 1]
    assert voc_ft(mel).shape == voc(mel).shape


def test_pyin_targets_align_with_mel_frames():
    x = _speechlike(1.0, f0=150.0)
    n = log_mel(x).shape[-1]
    f0 = vt.pyin_f0(x, n)
    assert f0.shape == (n,)
    voiced = f0[f0 > 0]
    # the buzz glides 150 ± 15 Hz
    assert voiced.size > n // 3 and 125 < np.median(voiced) < 175


def test_cli_registers_train_and_eval():
    from minicosy.system.cli import build_parser

    args = build_parser().parse_args(["train", "vocoder", "--preset", "tiny", "--max-steps", "1", "--corpus", "c",
                                      "--out", "runs/x", "--export", "e", "--resume", "--init-from", "d",
                                      "--lambda-mel-full", "20"])
    assert args.func is vt.train_cli
    assert (args.max_steps, args.corpus, args.out, args.export, args.resume, args.init_from, args.lambda_mel_full) \
        == (1, "c", "runs/x", "e", True, "d", 20.0)
    assert build_parser().parse_args(["train", "vocoder", "--manifest", "m"]).corpus == "m"  # old spelling
    assert build_parser().parse_args(["train", "vocoder"]).resume is False
    args = build_parser().parse_args(["eval", "vocoder", "--per-voice", "2"])
    assert args.func is vocoder_eval.eval_cli and args.per_voice == 2


def test_validation_subset_tells_pseudo_speakers_by_the_corpus_naming():
    """``flite_slt`` contains "_s" but is a base voice; only ``<voice>_<variant>`` ids are copies."""
    voices = ["flite_slt_p-2", "flite_slt", "festival_slt_hts", "flite_awb_p+4", "mbrola_us3", "flite_awb"]
    valid_all = {"ids": list(range(len(voices))), "voices": voices}
    sub = vt._validation_subset(valid_all, 4)
    assert sub["voices"] == ["mbrola_us3", "festival_slt_hts", "flite_awb", "flite_slt"]


def test_fullband_mel_sees_above_8_khz():
    t = np.arange(24000) / 24000
    x = torch.from_numpy((0.5 * np.sin(2 * np.pi * 10000 * t)).astype(np.float32))
    flow, full = log_mel(x), vt.fullband_log_mel(x)
    # the tone sits in the full band's top bins; the flow's 0–8 kHz features only see its leakage
    assert int(full.mean(-1).argmax()) > 70
    assert float(full.max()) > float(flow.max()) + 3


def test_generator_overfits_one_batch(untrained):
    """Reconstruction-only steps on one fixed batch: the mel L1 falls by more than a third."""
    torch.manual_seed(0)
    gen = Vocoder(VocoderConfig.tiny()).generator
    disc = vt.Discriminators()
    opt_g = torch.optim.Adam(gen.parameters(), 1e-3)
    wav = torch.from_numpy(np.stack([_speechlike(0.32, f0=120.0, seed=1), _speechlike(0.32, f0=200.0, seed=2)]))
    f0 = torch.tensor(np.stack([vt.pyin_f0(w.numpy(), wav.shape[1] // 480) for w in wav]))
    tcfg = vt.TrainConfig()
    losses = [vt.train_step(gen, disc, opt_g, None, wav, f0, tcfg, use_gan=False)["mel"] for _ in range(40)]
    assert losses[-1] < 0.66 * losses[0]


# ----------------------------------------------------------------------------- the committed checkpoint


@pytest.mark.skipif(not HAS_CKPT, reason="no committed tiny vocoder checkpoint")
def test_pretrained_resynthesis_beats_untrained(fixture_wav, untrained):
    voc = Vocoder.from_pretrained()
    assert voc.cfg == VocoderConfig.tiny()
    mel = log_mel(fixture_wav)
    err = float((log_mel(voc(mel)) - mel).abs().mean())
    err_untrained = float((log_mel(untrained(mel)) - mel).abs().mean())
    assert err < 0.6 * err_untrained


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(untrained):
    mel = torch.randn(2, 80, 20) - 5
    cpu = untrained(mel)
    gpu = Vocoder(untrained.cfg)
    gpu.generator.load_state_dict(untrained.generator.state_dict())
    gpu = gpu.to("cuda").eval()
    out = gpu(mel.cuda())
    assert out.device.type == "cuda"
    assert (out.cpu() - cpu).abs().max() < 1e-3
    assert torch.cat(list(gpu.stream(_chunks(mel.cuda(), [7]))), dim=1).shape == cpu.shape
    assert griffin_lim(mel.cuda(), n_iter=2).device.type == "cuda"


# ----------------------------------------------------------------------------- evaluation


@pytest.mark.slow  # pocketsphinx + resemblyzer on 2 utterances × 3 systems, twice
def test_evaluate_vocoder_groups_and_reuse(tmp_path, untrained):
    from minicosy.data.manifest import write_manifest

    src = FIXTURES_DIR / "manifest.jsonl"
    keep = [u for u in read_manifest(src, split="test") if u.voice in ("flite_awb", "mbrola_us3")]
    for u in keep:
        u.path = str(u.audio_path(manifest_root(src)))
    write_manifest(tmp_path / "manifest.jsonl", keep)
    logs = []
    first = vocoder_eval.evaluate_vocoder(untrained, tmp_path / "manifest.jsonl", per_voice=1, gl_iters=4,
                                          log=logs.append)
    g = first["groups"]
    assert g["train_voices"]["utterances"] == 1 and g["held_out_voices"]["utterances"] == 1
    for s in ("griffin_lim", "neural"):
        assert 0.0 <= g["all"][s]["similarity"] <= 1.0 and g["all"][s]["mel_l1"] > 0
    assert "| held-out (1 utt.) | Griffin-Lim 4 |" in vocoder_eval.eval_markdown(first)
    n = len(logs)
    again = vocoder_eval.evaluate_vocoder(untrained, tmp_path / "manifest.jsonl", per_voice=1, gl_iters=4,
                                          reuse=json.loads(json.dumps(first)), log=logs.append)
    assert any("reusing recording, griffin_lim" in line for line in logs[n:])
    assert again["groups"]["all"]["griffin_lim"] == first["groups"]["all"]["griffin_lim"]
    assert again["groups"]["all"]["neural"]["mel_l1"] == first["groups"]["all"]["neural"]["mel_l1"]


def test_paired_comparison_intervals_and_mismatch():
    def row(i, held, wer, sim):
        return {"id": f"u{i}", "held_out": held, "words": 10, "wer": {"neural": wer}, "sim": {"neural": sim}}

    before = {"utterances": [row(i, i >= 6, 0.3, 0.90) for i in range(8)], "checkpoint": {"steps": 1}}
    after = {"utterances": [row(i, i >= 6, 0.2 if i < 3 else 0.3, 0.95) for i in range(8)]}
    c = vocoder_eval.paired_comparison(before, after, n_boot=500)
    tr, held = c["groups"]["train_voices"], c["groups"]["held_out_voices"]
    assert tr["utterances"] == 6 and tr["fewer_errors"] == 3 and tr["more_errors"] == 0
    assert math.isclose(tr["delta_wer"], -0.05) and tr["delta_wer_ci95"][0] < -0.05 < tr["delta_wer_ci95"][1] <= 0
    assert math.isclose(tr["delta_similarity"], 0.05) and tr["delta_similarity_ci95"] == [0.05, 0.05]
    assert held["delta_wer"] == 0 and held["delta_wer_ci95"] == [0, 0]  # identical errors: no change, no spread
    with pytest.raises(ValueError, match="different utterances"):
        vocoder_eval.paired_comparison(before, {"utterances": after["utterances"][:-1]})


def test_lr_scale_constant_then_halves():
    tcfg = vt.TrainConfig(decay_start_minutes=100.0, lr_half_life_minutes=10.0)
    assert vt.lr_scale(0.0, tcfg) == vt.lr_scale(100.0, tcfg) == 1.0
    assert math.isclose(vt.lr_scale(110.0, tcfg), 0.5) and math.isclose(vt.lr_scale(130.0, tcfg), 0.125)
    assert vt.lr_scale(500.0, vt.TrainConfig(lr_half_life_minutes=0.0)) == 1.0  # 0: never decays
    assert vt.TrainConfig.paper().lr_half_life_minutes == 0.0  # a day-long GPU run keeps its rate


def test_summary_and_table_survive_a_recording_with_no_errors():
    """A group whose recordings are transcribed perfectly has no defined WER ratio: "n/a", no crash."""
    row = {"words": 4, "held_out": True, "no_speech": [], "wer": {"recording": 0.0, "griffin_lim": 0.25, "neural": 0.0},
           "sim": {"griffin_lim": 0.9, "neural": 0.95}, "mel_l1": {"griffin_lim": 0.2, "neural": 0.3}}
    s = vocoder_eval.summarise([row])
    assert s["neural"]["wer_ratio"] is None and s["griffin_lim"]["wer_ratio"] is None
    table = vocoder_eval.eval_markdown({"griffin_lim_iters": 32, "groups": {"train_voices": s, "held_out_voices": s}})
    assert "n/a" in table
