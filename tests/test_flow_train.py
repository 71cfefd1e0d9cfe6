"""Tests for minicosy.flow.train: the training batch (masks, prompt, dropout, loss mask), the loss
falling on one batch, a few real training steps on a corpus made from the fixtures (token cache,
mel cache, validation, resume, export), and the CLI."""

import json

import pytest
import torch

from minicosy.data.manifest import read_manifest, write_manifest
from minicosy.flow.masks import attention_mask
from minicosy.flow.model import ChunkAwareFlow, FlowConfig
from minicosy.flow.speaker import SpeakerConfig, SpeakerEncoder
from minicosy.flow.train import (
    FlowTrainConfig,
    attach_tokens,
    draw_mask,
    flow_loss,
    is_heldout,
    load_mels,
    make_batches,
    make_inputs,
    train_flow,
)
from minicosy.utils import FIXTURES_DIR


def micro(**kw):
    base = dict(d_enc=48, enc_heads=2, enc_pre_layers=1, enc_post_layers=1, d_est=48, est_heads=2, est_layers=2,
                time_dim=16, spk_dim=8, dropout=0.0, chunk_tokens=4, lookahead=2, max_frames=1000)
    return FlowConfig.tiny(**{**base, "vocab_size": 243, **kw})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The committed fixtures as a corpus of their own (absolute audio paths, a writable cache/)."""
    root = tmp_path_factory.mktemp("flowcorpus")
    rows = read_manifest(FIXTURES_DIR / "manifest.jsonl")
    for u in rows:
        u.path = str(u.audio_path(FIXTURES_DIR))
    write_manifest(root / "manifest.jsonl", rows)
    return root


@pytest.fixture(scope="module")
def items(corpus):
    g = torch.Generator().manual_seed(0)
    data = load_mels(corpus / "manifest.jsonl", "train")
    tokens = {d["id"]: torch.randint(0, 243, (d["mel"].shape[1] // 2 + 1,), generator=g) for d in data}
    data = attach_tokens(data, tokens, 243)
    for d in data:
        d["spk"] = torch.nn.functional.normalize(torch.randn(8, generator=g), dim=0)
    return data


def test_load_mels_caches_and_attach_tokens(corpus, items):
    assert (corpus / "cache").is_dir() and list((corpus / "cache").glob("flowmel24k_train_*.pt"))
    again = load_mels(corpus / "manifest.jsonl", "train")  # from the cache
    assert [d["id"] for d in again] == [d["id"] for d in items]
    for d in items:
        assert d["mel"].shape == (80, 2 * d["tokens"].numel())
    with pytest.raises(ValueError, match="vocab_size"):
        attach_tokens(again[:1], {again[0]["id"]: torch.tensor([5, 300, 2])}, 243)
    assert attach_tokens(again[:1], {}, 243) == []  # no tokens: skipped


def test_make_batches():
    lengths = [5, 50, 7, 48, 6, 52]
    batches = make_batches(lengths, 110, seed=0)
    assert sorted(i for b in batches for i in b) == list(range(6))
    assert all(max(lengths[i] for i in b) * len(b) <= 110 for b in batches)
    assert batches == make_batches(lengths, 110, seed=0) and batches != make_batches(lengths, 1000, seed=0)


def test_make_inputs(items):
    torch.manual_seed(0)
    model = ChunkAwareFlow(micro()).eval()
    rng = torch.random.get_rng_state()
    tc = FlowTrainConfig(p_prompt=1.0, cfg_drop=0.5)
    inp = make_inputs(model, items[:6], tc, torch.Generator().manual_seed(0))
    assert torch.equal(torch.random.get_rng_state(), rng)
    B, T = 6, int(inp["lengths"].max())
    assert inp["tokens"].shape == (B, T) and inp["x_t"].shape == (B, 80, 2 * T) and inp["mask"].shape == (B, T, T)
    for b in range(B):
        L = int(inp["lengths"][b])
        lm = inp["loss_mask"][b, 0]
        n_p = int((~lm[: 2 * L]).sum()) // 2  # prompt tokens: the first frames carry no loss
        assert not lm[2 * L:].any() and lm[2 * n_p: 2 * L].all()
        assert n_p <= 0.3 * L
        assert not inp["cond"][b, :, 2 * n_p:].any()  # cond is the prompt mel, zeros elsewhere
        assert not inp["mask"][b, :, L:].any()  # padded keys hidden
        assert inp["mask"][b, :n_p, :n_p].all()  # the prompt is the chunk mask's first block
    assert 0 <= float(inp["t"].min()) and float(inp["t"].max()) <= 1
    loss = flow_loss(model, inp)
    assert loss.dim() == 0 and torch.isfinite(loss)


def test_mask_draw_with_the_chunk_schedule():
    T, M, p = 30, 4, 3
    gen = torch.Generator().manual_seed(0)
    four = [attention_mask("non_causal", T), attention_mask("full_causal", T, prefix=p),
            attention_mask("chunk", T, M, prefix=p), attention_mask("chunk", T, 2 * M, prefix=p)]
    sched = [attention_mask("chunk", T, C, prefix=p, first_chunk=2) for C in (M, 2 * M)]  # F = ⌈4/3⌉ = 2

    def kinds(tc, n=400):
        counts = [0] * 6
        for _ in range(n):
            m = draw_mask(T, M, p, tc, gen)
            counts[next(k for k, ref in enumerate(four + sched) if torch.equal(m, ref))] += 1
        return counts

    c = kinds(FlowTrainConfig(p_first_chunk=0.2))
    assert all(n > 40 for n in c[:4]) and all(n > 15 for n in c[4:]) and 50 < sum(c[4:]) < 120  # ≈ 80 of 400
    assert kinds(FlowTrainConfig(p_first_chunk=0.0), 100)[4:] == [0, 0]  # off: the paper's four only
    assert sum(kinds(FlowTrainConfig(p_first_chunk=1.0), 50)[4:]) == 50
    m = draw_mask(T, M, p, FlowTrainConfig(p_first_chunk=1.0, first_chunk_tokens=1), gen)
    assert m.sum(1)[p].item() == p + 1  # the first generated token: a chunk of one
    # without the schedule the draws are those of the four-mask trainer (same seed, same masks)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    old = [four[int(torch.randint(0, 4, (), generator=g1))] for _ in range(20)]
    assert all(torch.equal(a, draw_mask(T, M, p, FlowTrainConfig(p_first_chunk=0.0), g2)) for a in old)
    with pytest.raises(ValueError, match="p_first_chunk"):
        draw_mask(T, M, p, FlowTrainConfig(p_first_chunk=1.5), gen)


def test_training_clips_the_prompt_lookahead(items):
    """make_inputs passes each utterance's prompt length; with "clip" a prompt's velocity does not depend
    on the first generated token, as at inference; with "cross" it does."""
    tc = FlowTrainConfig(p_prompt=1.0, cfg_drop=0.0, p_first_chunk=1.0)
    for flag, changes in (("clip", False), ("cross", True)):
        torch.manual_seed(0)
        model = ChunkAwareFlow(micro(prompt_lookahead=flag)).eval()
        inp = make_inputs(model, items[:3], tc, torch.Generator().manual_seed(1))
        assert inp["n_prompt"].shape == (3,) and bool((inp["n_prompt"] > 0).all())
        b, p = 0, int(inp["n_prompt"][0])
        args = {k: v for k, v in inp.items() if k not in ("u_t", "loss_mask")}
        other = dict(args, tokens=args["tokens"].clone())
        other["tokens"][b, p] = (other["tokens"][b, p] + 1) % model.cfg.vocab_size
        with torch.no_grad():
            d = (model(**args) - model(**other))[b, :, : 2 * p].abs().max()
        assert bool(d > 0) is changes, (flag, float(d))


def test_flow_overfits_one_batch(items):
    torch.manual_seed(0)
    model = ChunkAwareFlow(micro())
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    tc = FlowTrainConfig()
    losses = []
    for _ in range(40):
        inp = make_inputs(model, items[:4], tc, torch.Generator().manual_seed(0))  # the same draws every step
        loss = flow_loss(model, inp)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.35 * losses[0], losses[::5]


def test_train_flow_resume_export(corpus, tmp_path):
    from minicosy.speech_tokenizer.corpus_tokens import build_token_cache
    from minicosy.speech_tokenizer.model import SpeechTokenizer

    build_token_cache(corpus, progress=False)  # the real path: tokens from the committed tokenizer
    cfg = micro(vocab_size=SpeechTokenizer.from_pretrained(device="cpu").codebook_size)
    torch.manual_seed(0)
    spk = SpeakerEncoder(SpeakerConfig.tiny(emb_dim=8, channels=16))
    tc = FlowTrainConfig(max_steps=3, eval_every=2, ckpt_every=2, batch_frames=500, n_valid=4, warmup=2)
    run = tmp_path / "run"
    model = train_flow(cfg, tc, corpus / "manifest.jsonl", run, speaker=spk, device="cpu", progress=False,
                       log=lambda m: None)
    rows = [r for r in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if "valid_loss" in r]
    assert [r["step"] for r in rows] == [2, 3] and all(r["valid_loss"] > 0 for r in rows)
    assert float(model.mel_std.min()) > 0 and float(model.mel_mean.mean()) < -1  # log-mel stats were measured
    tc.max_steps = 5
    train_flow(cfg, tc, corpus / "manifest.jsonl", run, speaker=spk, device="cpu", resume=True, progress=False,
               log=lambda m: None, export=tmp_path / "export" / "flow")
    saved = torch.load(run / "ckpt.pt", weights_only=False)
    assert saved["state"]["step"] == 5
    loaded = ChunkAwareFlow.from_pretrained(tmp_path / "export", device="cpu")
    meta = json.loads((tmp_path / "export" / "flow.json").read_text())
    assert meta["trained"]["steps"] == 5 and meta["dtype"] in ("fp16", "fp32", "float16", "float32")
    assert loaded.inference(torch.arange(8), n_steps=2).shape == (80, 16)
    with pytest.raises(ValueError, match="another config"):
        train_flow(micro(vocab_size=cfg.vocab_size, d_est=32), tc, corpus / "manifest.jsonl", run, speaker=spk,
                   device="cpu", resume=True, progress=False, log=lambda m: None)
    with pytest.raises(ValueError, match="speaker encoder gives"):
        train_flow(micro(spk_dim=16), tc, corpus / "manifest.jsonl", tmp_path / "r2", speaker=spk, device="cpu",
                   progress=False, log=lambda m: None)


def test_train_flow_warm_start_across_prompt_lookahead(corpus, tmp_path):
    """--init copies every weight of an export of the same sizes, even one trained with the other prompt
    lookahead (a mask, not a weight); the run keeps its own lookahead, and other sizes are refused."""
    from minicosy.speech_tokenizer.corpus_tokens import build_token_cache
    from minicosy.speech_tokenizer.model import SpeechTokenizer

    build_token_cache(corpus, progress=False)
    vocab = SpeechTokenizer.from_pretrained(device="cpu").codebook_size
    torch.manual_seed(0)
    spk = SpeakerEncoder(SpeakerConfig.tiny(emb_dim=8, channels=16))
    src = ChunkAwareFlow(micro(vocab_size=vocab, prompt_lookahead="cross"))
    src.save_pretrained(tmp_path / "src" / "flow", extra={"trained": {"steps": 7, "minutes": 1.0}})
    tc = FlowTrainConfig(max_steps=1, eval_every=1, ckpt_every=1, batch_frames=500, n_valid=2, warmup=1, lr=0.0)
    model = train_flow(micro(vocab_size=vocab, prompt_lookahead="clip"), tc, corpus / "manifest.jsonl",
                       tmp_path / "run", speaker=spk, device="cpu", progress=False, log=lambda m: None,
                       init=tmp_path / "src" / "flow", export=tmp_path / "out" / "flow")
    assert model.cfg.prompt_lookahead == "clip"
    theirs = ChunkAwareFlow.from_pretrained(tmp_path / "src", device="cpu").state_dict()  # as saved (maybe fp16)
    for name, w in model.state_dict().items():
        if name not in ("mel_mean", "mel_std"):  # recomputed from this run's mels
            assert torch.allclose(w.float(), theirs[name].float()), name
    meta = json.loads((tmp_path / "out" / "flow.json").read_text())
    assert meta["trained"]["init"]["steps"] == 7
    with pytest.raises(ValueError, match="another config"):
        train_flow(micro(vocab_size=vocab, d_est=32), tc, corpus / "manifest.jsonl", tmp_path / "r2", speaker=spk,
                   device="cpu", progress=False, log=lambda m: None, init=tmp_path / "src" / "flow")


def test_heldout_voices_never_train():
    assert is_heldout("mbrola_us3") and is_heldout("pico_en_gb") and not is_heldout("flite_awb_p+2")
    assert not is_heldout("flite_slt")


def test_cli_registers_flow_and_speaker():
    from minicosy.system.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["train", "flow", "--preset", "tiny", "--corpus", "c", "--out", "o", "--resume",
                              "--max-steps", "7", "--max-minutes", "1.5", "--threads", "2", "--device", "cpu",
                              "--export", "e"])
    assert (args.max_steps, args.max_minutes, args.threads, args.resume, args.export) == (7, 1.5, 2, True, "e")
    args = parser.parse_args(["train", "speaker", "--max-steps", "3"])
    assert args.max_steps == 3 and args.preset == "tiny" and callable(args.func)
