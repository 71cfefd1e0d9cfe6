"""Tests for minicosy.lm.train (and minicosy.lm.evaluate): the LM overfits one batch, batches
respect the token budget, layouts and tags are mixed, training resumes and exports a loadable
model, the CLI is registered, and token CER evaluation runs on the fixture corpus."""

import argparse
import random

import pytest
import torch

from minicosy.data.manifest import Utterance, read_manifest, write_manifest
from minicosy.lm.model import LMConfig, TextSpeechLM
from minicosy.lm.sequence import to_tensors
from minicosy.lm.train import (
    TrainConfig,
    load_lm_data,
    lr_at,
    make_batches,
    make_example,
    pair_examples,
    register_cli,
    train_lm,
)
from minicosy.text.chars import CharTokenizer
from minicosy.utils import FIXTURES_DIR

C = 27
TEXTS = ["a cat sat", "the dog ran far", "hello world", "it is blue", "seven green trees", "no way",
         "a big red bus", "we like tea"]


def micro(**kw) -> LMConfig:
    base = dict(codebook_size=C, text_vocab_size=CharTokenizer(max_speakers=8).vocab_size, d_model=48, n_layers=2,
                n_heads=4, n_kv_heads=2, d_ff=96, max_len=256, dropout=0.0, mix_n=4, mix_m=4)
    return LMConfig(**{**base, **kw})


def fake_speech(text: str, voice: int) -> torch.Tensor:
    """Two 'frames' per character, the code a function of the character and the voice."""
    return torch.tensor([(ord(c) * 7 + voice * 3 + k) % C for c in text for k in (0, 1)])


def write_lm_corpus(root) -> dict:
    """A two-voice manifest of ``TEXTS`` in ``root`` (6 train, the rest valid); returns the fake tokens by id."""
    rows, tokens = [], {}
    for v in range(2):
        for i, text in enumerate(TEXTS):
            uid = f"v{v}-{i}"
            rows.append(Utterance(uid, f"v{v}", text, f"{uid}.wav", 1.0, 16000, "valid" if i >= 6 else "train"))
            tokens[uid] = fake_speech(text, v)
    write_manifest(root / "manifest.jsonl", rows)
    return tokens


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("lmcorpus")
    return root, write_lm_corpus(root)


def test_make_batches_budget_and_cover():
    lengths = [random.Random(i).randint(5, 100) for i in range(200)]
    batches = make_batches(lengths, 400, seed=3)
    assert sorted(i for b in batches for i in b) == list(range(200))
    assert all(max(lengths[i] for i in b) * len(b) <= 400 or len(b) == 1 for b in batches)
    assert batches == make_batches(lengths, 400, seed=3)


def test_lr_schedule():
    tc = TrainConfig(lr=1e-3, warmup=10, max_steps=110)
    assert lr_at(0, tc) == pytest.approx(1e-4) and lr_at(9, tc) == pytest.approx(1e-3)
    assert lr_at(110, tc) == pytest.approx(1e-4) and lr_at(60, tc) == pytest.approx(0.55e-3)


def test_examples_mix_layouts_and_tags(corpus):
    root, tokens = corpus
    tok = CharTokenizer(["v0", "v1"], max_speakers=8)
    data = load_lm_data(root, "train", tokens, tok)
    assert len(data) == 12 and data[0]["text_ids"] == tok.encode(TEXTS[0])
    rng = random.Random(0)
    exs = [make_example(d, tok, micro(), rng, 0.5, 0.5) for d in data for _ in range(10)]
    tagged = sum(e[0][1][1] in (tok.speaker_id("v0"), tok.speaker_id("v1")) for e in exs)
    streamed = sum(("fill", None) in e[1] for e in exs)
    assert 30 < tagged < 90 and 30 < streamed < 90


def test_icl_pairs_join_two_utterances_of_one_voice(corpus):
    """A paired example reads like an ICL request: text_a + " " + text_b, speech_a + speech_b, one voice."""
    root, tokens = corpus
    tok = CharTokenizer(["v0", "v1"], max_speakers=8)
    data = load_lm_data(root, "train", tokens, tok)
    assert pair_examples(data, tok, random.Random(0), 0.0) is data
    by_id = {d["id"]: d for d in data}
    paired = [d for d in pair_examples(data, tok, random.Random(0), 1.0)]
    assert len(paired) == len(data)
    for d, orig in zip(paired, data):
        first, second = d["id"].split("+")
        a, b = by_id[first], by_id[second]
        assert b is orig and a is not b and a["voice"] == b["voice"] == d["voice"]
        assert d["text_ids"] == a["text_ids"] + tok.encode(" ") + b["text_ids"]
        assert d["speech"] == a["speech"] + b["speech"]
    some = pair_examples(data, tok, random.Random(1), 0.5)
    assert 0 < sum("+" in d["id"] for d in some) < len(data)


def test_robust_pairs_two_prompts_and_noisy_prompts_without_loss(corpus):
    """Two-utterance prompts join like one-utterance ones; a noisy prompt's tokens are partly random
    codes and none of them is a target (the continuation's are, all of them)."""
    root, tokens = corpus
    tok = CharTokenizer(["v0", "v1"], max_speakers=8)
    data = load_lm_data(root, "train", tokens, tok)
    by_id = {d["id"]: d for d in data}
    space = tok.encode(" ")
    two = pair_examples(data, tok, random.Random(0), 1.0, p_two=1.0)
    for d in two:
        ids = d["id"].split("+")
        assert len(ids) == 3 and len(set(ids)) == 3 and {by_id[i]["voice"] for i in ids} == {d["voice"]}
        assert d["text_ids"] == sum((by_id[i]["text_ids"] + space for i in ids[:2]), []) + by_id[ids[2]]["text_ids"]
        assert d["speech"] == sum((by_id[i]["speech"] for i in ids), [])
    with pytest.raises(ValueError, match="codebook_size"):
        pair_examples(data, tok, random.Random(0), 1.0, p_noisy=1.0)
    cfg = micro()
    noisy = pair_examples(data, tok, random.Random(0), 1.0, p_noisy=1.0, noise=(0.5, 0.5),
                          codebook_size=cfg.codebook_size)
    changed = total = 0
    for d in noisy:
        a, b = (by_id[i] for i in d["id"].split("+"))
        assert d["n_masked"] == len(a["speech"]) and d["speech"][len(a["speech"]):] == b["speech"]
        changed += sum(x != y for x, y in zip(d["speech"], a["speech"]))
        total += len(a["speech"])
        for streaming in (0.0, 1.0):
            inputs, targets = make_example(d, tok, cfg, random.Random(0), streaming, 0.0)
            speech_targets = [t[1] for t in targets if t is not None and t[0] == "speech"]
            assert speech_targets == b["speech"]  # the prompt's (noisy) tokens are never targets
            assert [i[1] for i in inputs if i[0] == "speech"] == d["speech"]
    assert 0.3 < changed / total < 0.6  # about half, less the random codes that hit the original one


def test_resume_with_other_pairs_restarts_the_best(corpus, tmp_path):
    """The validation set depends on p_pair: a run resumed with another p_pair must not compare its
    valid loss with the old best (it would never export)."""
    root, tokens = corpus
    tc = TrainConfig(batch_tokens=300, lr=3e-3, warmup=5, max_steps=6, eval_every=6, ckpt_every=6, seed=0,
                     p_pair=0.0)
    train_lm(micro(), tc, root, tmp_path / "run", device="cpu", tokens=tokens, progress=False, log=lambda m: None)
    msgs = []
    tc2 = TrainConfig(**{**tc.__dict__, "max_steps": 12, "p_pair": 1.0})
    train_lm(micro(), tc2, root, tmp_path / "run", device="cpu", resume=True, export=tmp_path / "out" / "lm",
             tokens=tokens, progress=False, log=msgs.append)
    assert any("best-so-far restarts" in m for m in msgs)
    back = TextSpeechLM.from_pretrained(tmp_path / "out", device="cpu")
    assert back.meta["trained"]["steps"] == 12 and back.meta["trained"]["train_config"]["p_pair"] == 1.0
    assert [r["step"] for r in back.meta["trained"]["history"]] == [6, 12]


def test_overfits_one_batch():
    """A few dozen steps on one fixed batch drive the loss far down."""
    torch.manual_seed(0)
    cfg = micro()
    tok = CharTokenizer(max_speakers=8)
    from minicosy.lm.sequence import build_sequence
    batch = to_tensors([build_sequence(tok.encode(t), fake_speech(t, 0).tolist(), i % 2 == 0, 4, 4)
                        for i, t in enumerate(TEXTS)], C)
    model = TextSpeechLM(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        out = model.loss(batch)
        first = first if first is not None else out["loss"].item()
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert out["loss"].item() < 0.3 * first, (first, out["loss"].item())
    assert out["acc"].item() > 0.6


def test_train_resume_export(corpus, tmp_path):
    root, tokens = corpus
    tc = TrainConfig(batch_tokens=300, lr=3e-3, warmup=5, max_steps=12, eval_every=6, ckpt_every=6, seed=0)
    model = train_lm(micro(), tc, root, tmp_path / "run", device="cpu", export=tmp_path / "out" / "lm",
                     tokens=tokens, progress=False, log=lambda m: None)
    hist = [r["valid_loss"] for r in torch.load(tmp_path / "run" / "ckpt.pt", weights_only=False)["state"]["history"]]
    assert len(hist) == 2 and model.meta["trained"]["steps"] == 12
    back = TextSpeechLM.from_pretrained(tmp_path / "out", device="cpu")
    assert back.meta["trained"]["best_valid"]["valid_loss"] == pytest.approx(min(hist))
    assert back.text_tokenizer().speakers == ["v0", "v1"] and back.meta["dtype"] in ("float16", "float32")
    tc.max_steps = 18
    resumed = train_lm(micro(), tc, root, tmp_path / "run", device="cpu", resume=True, tokens=tokens,
                       progress=False, log=lambda m: None)
    assert resumed.meta["trained"]["steps"] == 18
    with pytest.raises(ValueError, match="another config"):
        train_lm(micro(d_model=32), tc, root, tmp_path / "run", device="cpu", resume=True, tokens=tokens,
                 progress=False, log=lambda m: None)
    with pytest.raises(ValueError, match="does not fit codebook_size"):
        train_lm(micro(codebook_size=5), tc, root, tmp_path / "run2", device="cpu", tokens=tokens,
                 progress=False, log=lambda m: None)


def test_warm_start_from_an_export(corpus, tmp_path):
    """``init``: a new run (step 0, a new schedule) from an export's weights; another config or other voices
    (other speaker tags) are refused."""
    root, tokens = corpus
    quiet = {"device": "cpu", "tokens": tokens, "progress": False, "log": lambda m: None}
    tc = TrainConfig(batch_tokens=300, lr=3e-3, warmup=2, max_steps=4, eval_every=4, ckpt_every=4, seed=0)
    train_lm(micro(), tc, root, tmp_path / "a", export=tmp_path / "a_exp" / "lm", **quiet)
    start = TextSpeechLM.from_pretrained(tmp_path / "a_exp", device="cpu")
    tc0 = TrainConfig(batch_tokens=300, lr=0.0, warmup=1, max_steps=2, eval_every=2, ckpt_every=2, seed=0)
    warm = train_lm(micro(), tc0, root, tmp_path / "b", export=tmp_path / "b_exp" / "lm", init=tmp_path / "a_exp",
                    **quiet)
    for (k, a), b in zip(start.state_dict().items(), warm.state_dict().values()):  # lr 0: the init's weights
        assert torch.equal(a, b), k
    meta = TextSpeechLM.from_pretrained(tmp_path / "b_exp", device="cpu").meta["trained"]
    assert meta["steps"] == 2 and meta["init"]["from"] == str(tmp_path / "a_exp") and meta["init"]["steps"] == 4
    # the warm start is part of the run's state: a resumed run (no --init) still records it in its exports
    train_lm(micro(), TrainConfig(**{**tc0.__dict__, "max_steps": 3}), root, tmp_path / "b", resume=True, **quiet)
    assert torch.load(tmp_path / "b" / "ckpt.pt", weights_only=False)["state"]["init"]["steps"] == 4
    with pytest.raises(ValueError, match="same architecture"):
        train_lm(micro(d_model=32), tc0, root, tmp_path / "c", init=tmp_path / "a_exp", **quiet)
    other = tmp_path / "other"
    other.mkdir()
    rows = [Utterance(u.id, u.voice.replace("v", "w"), u.text, u.path, u.duration, u.sample_rate, u.split)
            for u in read_manifest(root / "manifest.jsonl")]
    write_manifest(other / "manifest.jsonl", rows)
    with pytest.raises(ValueError, match="same voices"):
        train_lm(micro(), tc0, other, tmp_path / "d", init=tmp_path / "a_exp", **quiet)


def test_cli_registered():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    groups = {"train": sub.add_parser("train").add_subparsers(), "eval": sub.add_parser("eval").add_subparsers()}
    register_cli(groups)
    args = parser.parse_args(["train", "lm", "--preset", "tiny", "--max-steps", "5", "--max-minutes", "1",
                              "--threads", "1", "--device", "cpu", "--out", "x", "--export", "y", "--resume"])
    assert args.max_steps == 5 and args.resume and args.func.__name__ == "_train_cmd" and args.init is None
    assert parser.parse_args(["train", "lm", "--init", "x/lm"]).init == "x/lm"
    from minicosy.lm.evaluate import register_cli as reg_eval
    reg_eval(groups)
    args = parser.parse_args(["eval", "lm", "--n", "3"])
    assert args.n == 3


def test_token_cer_evaluation_on_fixtures(tmp_path):
    """Real fixture audio → committed tokenizer → token cache; a random micro LM is scored."""
    from minicosy.lm.evaluate import evaluate_lm
    from minicosy.speech_tokenizer.corpus_tokens import build_token_cache, load_token_cache
    from minicosy.speech_tokenizer.model import SpeechTokenizer

    rows = [Utterance(u.id, u.voice, u.text, str(u.audio_path(FIXTURES_DIR)), u.duration, u.sample_rate, u.split)
            for u in read_manifest(FIXTURES_DIR)]
    write_manifest(tmp_path / "manifest.jsonl", rows)
    build_token_cache(tmp_path, progress=False)
    st = SpeechTokenizer.from_pretrained(device="cpu")
    torch.manual_seed(0)
    voices = sorted({u.voice for u in rows if u.split == "train"})
    tok = CharTokenizer(voices, max_speakers=64)
    lm = TextSpeechLM(micro(codebook_size=st.codebook_size, text_vocab_size=tok.vocab_size,
                            max_token_text_ratio=1.0)).eval()
    lm.meta = {"text_tokenizer": tok.to_dict()}
    res = evaluate_lm(lm, tmp_path, st, tokens=load_token_cache(tmp_path), n=2, split="test", seed=0)
    assert res["scenarios"]["untagged_heldout_voice"]["n"] == res["scenarios"]["icl_heldout_voice"]["n"]
    for name in ("sft", "icl_same_voice", "icl_heldout_voice", "sft_streaming", "untagged_heldout_voice"):
        row = res["scenarios"][name]
        assert row["n"] >= 1 and 0 <= row["termination_rate"] <= 1 and row["token_cer"] >= 0
        assert 0 <= row["groundtruth_cer"] < 1.5 and row["length_ratio"] > 0
        assert 0.0 <= row["length_ratio_in_range"] <= 1.0


@pytest.mark.slow  # two token caches of the fixture clips and a micro LM scored: ~15 s
def test_eval_lm_cli_reads_the_cache_of_the_tokenizer_it_is_given(tmp_path, capsys):
    """``minicosy eval lm --tokenizer X`` scores the tokens X made: a cache made by another tokenizer is refused in
    one line (it used to be checked against the default tokenizer whatever ``--tokenizer`` said)."""
    from minicosy.speech_tokenizer.corpus_tokens import build_token_cache
    from minicosy.system.cli import main
    from minicosy.utils import REPO_ROOT

    vq = REPO_ROOT / "data" / "pretrained" / "tiny" / "vq_tokenizer"  # 243 codes too, but not the default tokenizer
    rows = [Utterance(u.id, u.voice, u.text, str(u.audio_path(FIXTURES_DIR)), u.duration, u.sample_rate, u.split)
            for u in read_manifest(FIXTURES_DIR) if u.split == "test"]
    write_manifest(tmp_path / "manifest.jsonl", rows)
    build_token_cache(tmp_path, vq, device="cpu", progress=False)
    tok = CharTokenizer(sorted({u.voice for u in rows}), max_speakers=64)
    torch.manual_seed(0)
    lm = TextSpeechLM(micro(codebook_size=243, text_vocab_size=tok.vocab_size, max_token_text_ratio=1.0)).eval()
    lm.save_pretrained(tmp_path / "lm", text_tokenizer=tok.to_dict())
    argv = ["eval", "lm", "--lm", str(tmp_path / "lm"), "--corpus", str(tmp_path), "--split", "test", "--n", "1",
            "--device", "cpu"]
    assert main([*argv, "--tokenizer", str(vq)]) == 0
    assert '"token_cer"' in capsys.readouterr().out
    assert main(argv) == 2  # the default (FSQ) tokenizer did not make this cache
    err = capsys.readouterr().err
    assert "another speech tokenizer" in err and err.count("\n") == 1


def test_length_share_counts_utterances_in_range():
    from minicosy.lm.evaluate import length_share
    gts = [list(range(10))] * 4
    gens = [list(range(n)) for n in (7, 8, 12, 13)]  # ratios 0.7, 0.8, 1.2, 1.3
    assert length_share(gens, gts) == 0.5
    assert length_share([], []) == 0.0
