"""Tests for minicosy.speech_tokenizer.model (+ its training/eval module): the 25 Hz length rule,
batched = single encoding, determinism, save/load, bad input, a few training steps with resume,
the evaluation figures, the CLI, and the committed tiny checkpoints."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from minicosy.data.manifest import Utterance, write_manifest
from minicosy.speech_tokenizer.evaluate import evaluate_tokenizer
from minicosy.speech_tokenizer.model import (
    SpeechTokenizer,
    SpeechTokenizerConfig,
    ctc_greedy_decode,
    ids_to_text,
    normalize_transcript,
    text_to_ids,
)
from minicosy.speech_tokenizer.train import TrainConfig, cer, load_split, make_batches, run_model, train_tokenizer
from minicosy.utils import DEFAULT_CHECKPOINT, FIXTURES_DIR


def micro(quantizer="fsq"):
    return SpeechTokenizerConfig(d_model=32, n_heads=2, enc1_layers=1, enc2_layers=1, quantizer=quantizer,
                                 fsq_dims=3, fsq_K=1, vq_codebook_size=27, dropout=0.0)


def tone(n, f=220.0, sr=16000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    return (0.3 * np.sin(2 * np.pi * f * t) + 0.01 * rng.standard_normal(n)).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SpeechTokenizer(micro()).eval()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A fabricated corpus: 3 'voices' (tone pitches), train voices v0, v1; v2 held out."""
    from minicosy.audio import save_audio

    root = tmp_path_factory.mktemp("corpus")
    rows, texts = [], ["a cat sat", "the dog ran", "hello world", "it's blue", "seven green trees", "no"]
    for v, f0 in enumerate([150.0, 220.0, 330.0]):
        for i, text in enumerate(texts):
            split = "valid" if (v == 2 or i >= 4) else "train"
            n = 16000 + 2400 * i
            path = f"wav/v{v}_{i}.wav"
            save_audio(root / path, tone(n, f0 * (1 + 0.1 * i), seed=i), 16000)
            rows.append(Utterance(f"v{v}-{i}", f"v{v}", text, path, n / 16000, 16000, split))
    write_manifest(root / "manifest.jsonl", rows)
    return root / "manifest.jsonl"


# ----------------------------------------------------------------------------- text


@pytest.mark.parametrize("text,expected", [("Hello, World!", "hello world"), ("It's  ok", "it's ok"),
                                           ("café—naïve", "cafe naive"), ("", ""), ("42?", "")])
def test_normalize_transcript(text, expected):
    assert normalize_transcript(text) == expected
    assert ids_to_text(text_to_ids(text)) == expected


def test_ctc_greedy_decode():
    # path: h h _ i _ i → "hii" (repeats merge, a blank separates the two i's)
    seq = [text_to_ids("h")[0]] * 2 + [0] + text_to_ids("i") + [0] + text_to_ids("i")
    logits = torch.nn.functional.one_hot(torch.tensor([seq]), 29).float()
    assert ctc_greedy_decode(logits, torch.tensor([6])) == ["hii"]


def test_tokenizer_cer_is_the_judges_cer():
    """One CER in the project: the tokenizer's validation pools edits exactly as the judge does."""
    from minicosy import judges

    data = [{"text": "kitten", "voice": "a"}, {"text": "abc", "voice": "b"}]
    results = [{"i": 0, "hyp": "sitting"}, {"i": 1, "hyp": "abc"}]
    assert (
        cer(data, results) == pytest.approx(3 / 9) == pytest.approx(judges.cer(["kitten", "abc"], ["sitting", "abc"]))
    )
    assert cer(data, results, {"b"}) == 0.0


# ----------------------------------------------------------------------------- encoding


@pytest.mark.parametrize("n", [640, 641, 1279, 1280, 16000, 16000 * 2 + 123])
def test_length_rule(model, n):
    tokens = model.encode(tone(n), 16000)
    assert tokens.dtype == torch.long and tokens.shape == (n // 640,)
    assert tokens.min() >= 0 and tokens.max() < model.codebook_size


def test_other_sample_rate_resamples(model):
    wav24 = tone(24000 * 2, sr=24000)
    assert model.encode(wav24, 24000).shape == (50,)  # 2 s → 25 Hz


def test_utterance_cmn_removes_a_fixed_gain():
    """With cepstral mean normalisation a constant offset on the log-mel (a gain) disappears."""
    torch.manual_seed(0)
    f = torch.randn(80, 40)
    cmn = SpeechTokenizer(dataclasses.replace(SpeechTokenizerConfig.tiny(), utterance_cmn=True))
    a, _ = cmn.pad_features([f])
    b, _ = cmn.pad_features([f + 3.0])
    assert torch.allclose(a, b, atol=1e-5) and a[0].mean(dim=1).abs().max() < 1e-5
    plain = SpeechTokenizer(SpeechTokenizerConfig.tiny(utterance_cmn=False))
    assert not torch.allclose(plain.pad_features([f])[0], plain.pad_features([f + 3.0])[0])


def test_batched_equals_single_and_deterministic(model):
    wavs = [tone(16000, seed=1), tone(9000, f=300, seed=2), tone(30000, f=180, seed=3)]
    batch = model.encode_batch(wavs, 16000)
    for w, b in zip(wavs, batch):
        assert torch.equal(model.encode(w, 16000), b)
        assert torch.equal(model.encode(torch.from_numpy(w), 16000), b)  # tensors too
    assert all(torch.equal(a, b) for a, b in zip(batch, model.encode_batch(wavs, 16000)))


def test_encode_ignores_training_mode():
    torch.manual_seed(0)
    m = SpeechTokenizer(SpeechTokenizerConfig(**{**micro().to_dict(), "dropout": 0.5}))
    m.train()
    w = tone(16000)
    assert torch.equal(m.encode(w), m.encode(w)) and m.training


@pytest.mark.parametrize("bad,sr", [(np.zeros(0, np.float32), 16000), (np.full(16000, np.nan, np.float32), 16000),
                                    (np.zeros(100, np.float32), 16000), (np.zeros(16000, np.int16), 16000),
                                    (tone(16000), 0), (tone(16000), 16000.5), (tone(16000), 4000),
                                    (np.zeros((2, 16000), np.float32), 16000)])
def test_bad_audio_raises(model, bad, sr):
    with pytest.raises(ValueError):
        model.encode(bad, sr)


def test_vq_tokenizer_encodes():
    torch.manual_seed(0)
    m = SpeechTokenizer(micro("vq")).eval()
    t = m.encode(tone(16000))
    assert t.shape == (25,) and t.max() < 27
    with pytest.raises(ValueError):
        SpeechTokenizer(SpeechTokenizerConfig(quantizer="rvq"))


# ----------------------------------------------------------------------------- save / load


def test_save_load_round_trip(model, tmp_path):
    stem = model.save_pretrained(tmp_path / "tok")
    assert stem.with_suffix(".json").is_file() and stem.with_suffix(".safetensors").is_file()
    loaded = SpeechTokenizer.from_pretrained(tmp_path / "tok.safetensors", device="cpu")
    assert loaded.cfg == model.cfg
    # the tokens are discrete and the LM and flow train on them: storage must not flip a single one
    from safetensors.torch import load_file

    assert all(v.dtype != torch.float16 for v in load_file(str(stem.with_suffix(".safetensors"))).values())
    for seed in range(4):
        w = tone(20000 + 3000 * seed, f=150.0 + 40 * seed, seed=seed)
        assert torch.equal(loaded.encode(w), model.encode(w))


def test_from_pretrained_errors(model, tmp_path):
    with pytest.raises(ValueError, match="missing"):
        SpeechTokenizer.from_pretrained(tmp_path / "nothing")
    model.save_pretrained(tmp_path / "a")
    meta = json.loads((tmp_path / "a.json").read_text())
    meta["config"]["d_model"] = 64
    (tmp_path / "a.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="does not match"):
        SpeechTokenizer.from_pretrained(tmp_path / "a")


# ----------------------------------------------------------------------------- training / eval


def test_load_split_and_batches(corpus, tmp_path):
    train = load_split(corpus, "train", cache_dir=tmp_path)
    assert len(train) == 8 and all(d["feats"].shape[1] % 4 == 0 for d in train)
    assert len(list(tmp_path.glob("*.pt"))) == 1
    again = load_split(corpus, "train", cache_dir=tmp_path)  # from the cache
    assert all(torch.equal(a["feats"], b["feats"]) for a, b in zip(train, again))
    batches = make_batches(train, 400, seed=0)
    assert sorted(i for b in batches for i in b) == list(range(8))
    assert batches == make_batches(train, 400, seed=0)
    with pytest.raises(ValueError):
        load_split(corpus, "test", cache_dir=None)


def test_train_resume_export_eval(corpus, tmp_path):
    tc = TrainConfig(batch_frames=600, max_steps=3, eval_every=2, ckpt_every=1, warmup=1, n_valid=10)
    m = train_tokenizer(micro(), tc, corpus, tmp_path / "run", device="cpu", progress=False, log=lambda *a: None)
    assert (tmp_path / "run" / "ckpt.pt").is_file()
    saved = torch.load(tmp_path / "run" / "ckpt.pt", weights_only=False)
    assert saved["state"]["step"] == 3
    tc.max_steps = 5
    m = train_tokenizer(micro(), tc, corpus, tmp_path / "run", device="cpu", resume=True,
                        export=tmp_path / "exp" / "tok", progress=False, log=lambda *a: None)
    assert torch.load(tmp_path / "run" / "ckpt.pt", weights_only=False)["state"]["step"] == 5
    loaded = SpeechTokenizer.from_pretrained(tmp_path / "exp" / "tok", device="cpu")
    assert loaded.meta["trained"]["steps"] == 5
    assert torch.allclose(loaded.feat_mean, m.feat_mean, atol=1e-2)
    r = evaluate_tokenizer(loaded, corpus, "valid")
    assert r["heldout_voices"] == ["v2"]
    assert 0 < r["utilisation"] <= 1 and 1 <= r["perplexity"] <= 27
    assert r["cer_train_voices"] >= 0 and r["cer_heldout_voices"] >= 0
    assert 0 <= r["speaker_probe"]["tokens"] <= 1 and r["speaker_probe"]["chance"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="another config"):
        train_tokenizer(micro("vq"), tc, corpus, tmp_path / "run", resume=True, progress=False, log=lambda *a: None)
    # a checkpoint written before a config field existed resumes with that field's default
    saved = torch.load(tmp_path / "run" / "ckpt.pt", weights_only=False)
    del saved["config"]["utterance_cmn"]
    torch.save(saved, tmp_path / "run" / "ckpt.pt")
    tc.max_steps = 6
    train_tokenizer(micro(), tc, corpus, tmp_path / "run", device="cpu", resume=True, progress=False,
                    log=lambda *a: None)
    assert torch.load(tmp_path / "run" / "ckpt.pt", weights_only=False)["state"]["step"] == 6


def test_warm_start_from_an_export(corpus, tmp_path):
    """``init``: a new run starts from an export's weights (step 0, fresh optimiser); another config is refused."""
    tc = TrainConfig(batch_frames=600, max_steps=2, eval_every=100, ckpt_every=100, warmup=1, n_valid=10, lr=0.0)
    quiet = {"device": "cpu", "progress": False, "log": lambda *a: None}
    first = train_tokenizer(micro(), tc, corpus, tmp_path / "a", export=tmp_path / "a_exp", **quiet)
    warm = train_tokenizer(micro(), tc, corpus, tmp_path / "b", export=tmp_path / "b_exp", init=tmp_path / "a_exp",
                           **quiet)
    # lr 0: the warm run keeps the init's weights exactly (a fresh run would be a new random init)
    for (k, a), b in zip(first.state_dict().items(), warm.state_dict().values()):
        assert torch.equal(a, b), k
    meta = SpeechTokenizer.from_pretrained(tmp_path / "b_exp", device="cpu").meta["trained"]
    assert meta["steps"] == 2 and meta["init"]["from"] == str(tmp_path / "a_exp") and meta["init"]["steps"] == 2
    with pytest.raises(ValueError, match="same architecture"):
        train_tokenizer(micro("vq"), tc, corpus, tmp_path / "c", init=tmp_path / "a_exp", **quiet)


def test_cli_registered():
    from minicosy.speech_tokenizer import evaluate, train
    from minicosy.system.cli import build_parser

    args = build_parser().parse_args(["train", "tokenizer", "--preset", "tiny", "--quantizer", "vq", "--resume",
                                      "--corpus", "somewhere", "--no-utterance-cmn"])
    assert args.func is train._train_cmd
    assert (args.quantizer, args.resume, args.corpus, args.utterance_cmn) == ("vq", True, "somewhere", False)
    assert build_parser().parse_args(["train", "tokenizer", "--init", "x/tok"]).init == "x/tok"
    assert build_parser().parse_args(["train", "tokenizer"]).utterance_cmn is None  # None → the preset decides
    args = build_parser().parse_args(["eval", "tokenizer", "--split", "valid"])
    assert args.func is evaluate._eval_cmd and args.split == "valid"


def test_training_overfits_one_batch(corpus):
    """The CTC loss of a micro tokenizer on one fixed batch falls by more than half in 60 steps."""
    torch.manual_seed(0)
    data = load_split(corpus, "train", cache_dir=None)[:4]
    m = SpeechTokenizer(micro())
    feats, lengths = m.pad_features([d["feats"] for d in data])
    targets = [text_to_ids(d["text"]) for d in data]
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = m.ctc_loss(m(feats, lengths), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_speed_perturbation_resamples_time_and_warps_frequency():
    from minicosy.speech_tokenizer.train import speed_perturb

    f = torch.zeros(80, 100)
    f[20] = 1.0  # one band lit across time
    fast, slow = speed_perturb(f, 1.1), speed_perturb(f, 0.9)
    assert fast.shape == (80, 88) and slow.shape == (80, 108)  # 100/1.1 → 88, 100/0.9 → 108 (multiples of 4)
    assert torch.equal(speed_perturb(f, 1.0), f)
    centre = lambda x: float((torch.arange(80.0)[:, None] * x).sum() / x.sum())  # noqa: E731
    assert centre(slow) < centre(f) < centre(fast)  # faster playback moves the band up in frequency


def test_cross_voice_agreement_separates_content_from_speaker():
    from minicosy.speech_tokenizer.evaluate import collapse_repeats, cross_voice_agreement, sequence_match

    assert collapse_repeats([5, 5, 7, 7, 7, 5]) == [5, 7, 5]
    assert sequence_match([1, 1, 2, 3], [1, 2, 2, 3], collapse=True) == 1.0
    assert sequence_match([1, 2], [3, 4]) == 0.0
    # two voices read sentences A and B; content tokens agree across voices, differ across sentences
    texts = ["A", "B", "A", "B"]
    voices = ["x", "x", "y", "y"]
    tokens = [[1, 2, 3, 4], [9, 8, 7, 6], [1, 2, 3, 5], [9, 8, 6, 6]]
    r = cross_voice_agreement(texts, voices, tokens)
    assert r["same_sentence"]["pairs"] == 2 and r["different_sentence"]["pairs"] == 2
    assert r["same_sentence"]["raw"] == pytest.approx(0.75) and r["different_sentence"]["raw"] == 0.0
    assert r["margin"]["raw"] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="two voices"):
        cross_voice_agreement(["A", "B"], ["x", "x"], tokens[:2])


# ----------------------------------------------------------------------------- committed checkpoints


@pytest.mark.parametrize("name,quantizer", [("speech_tokenizer", "fsq"), ("vq_tokenizer", "vq")])
def test_committed_tiny_checkpoint(name, quantizer):
    if not (DEFAULT_CHECKPOINT / f"{name}.safetensors").is_file():
        pytest.skip(f"{name} not trained yet")
    m = SpeechTokenizer.from_pretrained(None if name == "speech_tokenizer" else DEFAULT_CHECKPOINT / name, device="cpu")
    # the tiny preset's sizes; utterance_cmn joined the preset after the corpus-v1 checkpoint was trained
    assert m.cfg.quantizer == quantizer and m.cfg == SpeechTokenizerConfig.tiny().__class__(
        **{**SpeechTokenizerConfig.tiny().to_dict(), "quantizer": quantizer, "utterance_cmn": m.cfg.utterance_cmn})
    assert (DEFAULT_CHECKPOINT / f"{name}.safetensors").stat().st_size < 8e6
    w = tone(16000 * 2)
    t = m.encode(w)
    assert t.shape == (50,) and torch.equal(t, m.encode(w))
    # the trained head reads the committed fixture clips (CER well below 100%)
    fixtures = FIXTURES_DIR / "manifest.jsonl"
    if fixtures.is_file():
        data = load_split(fixtures, "valid", cache_dir=None)
        assert cer(data, run_model(m, data)) < 0.5


def test_committed_tokenizer_is_the_corpus_v3_checkpoint():
    """The committed tokenizer: the tiny preset in fp32 (its output is discrete), warm-started from the corpus-v2
    tokenizer and trained on corpus v3's train split. On the fixture clips (34 test utterances, most voices) its CTC
    head reads its own tokens at 24.5 % CER; the corpus-v2 tokenizer it started from read them at 31.3 %."""
    stem = DEFAULT_CHECKPOINT / "speech_tokenizer"
    meta = json.loads(stem.with_suffix(".json").read_text())
    assert meta["dtype"] == "float32" and meta["trained"]["init"]["from"] == "data/pretrained/tiny/speech_tokenizer"
    assert meta["trained"]["train_utterances"] > 100_000  # corpus v3's train split
    data = load_split(FIXTURES_DIR / "manifest.jsonl", "test", cache_dir=None)
    assert cer(data, run_model(SpeechTokenizer.from_pretrained(None, device="cpu"), data)) < 0.28


@pytest.mark.gpu
def test_cuda_matches_cpu(model):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    w = tone(32000)
    cpu = model.encode(w)
    gpu = SpeechTokenizer(model.cfg)
    gpu.load_state_dict(model.state_dict())
    gpu = gpu.cuda().eval()
    assert (gpu.encode(w) == cpu).float().mean() > 0.95


def test_presets():
    paper, tiny = SpeechTokenizerConfig.paper(), SpeechTokenizerConfig.tiny()
    assert (paper.fsq_dims, paper.fsq_K, paper.codebook_size, paper.enc1_layers) == (8, 1, 6561, 6)
    assert tiny.codebook_size == 243 and tiny.vq_codebook_size == tiny.codebook_size
    assert SpeechTokenizerConfig.from_dict(tiny.to_dict()) == tiny
    with pytest.raises(ValueError, match="unknown"):
        SpeechTokenizerConfig.from_dict({**tiny.to_dict(), "bogus": 1})


def test_read_tokens_is_the_head_on_the_encoded_tokens(model):
    """Reading the tokens back through Encoder2 + head gives exactly the transcript of the audio."""
    wavs = [tone(16000, seed=1), tone(24000, f=300.0, seed=2)]
    assert model.read_tokens(model.encode_batch(wavs)) == model.transcribe(wavs)
    assert model.read_tokens([]) == []
    with pytest.raises(ValueError, match="outside"):
        model.read_tokens([torch.tensor([0, model.codebook_size])])
