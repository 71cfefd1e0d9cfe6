"""Tests for minicosy.training.Loop, the one loop every trainer runs: gradient accumulation equals one
big batch; two processes under ``torchrun`` (gloo) give the losses and weights of one process on the
same global batches; a run killed mid-way and resumed reproduces the uninterrupted curve (RNG states,
position in the epoch); bf16 autocast runs on CPU; bad devices, precisions and budgets are refused;
the committed checkpoints still load; and (with a GPU) a few bf16 steps on CUDA."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from minicosy.training import Loop, LoopConfig, resolve_precision
from minicosy.utils import REPO_ROOT

sys.path.insert(0, os.path.dirname(__file__))
from test_lm_train import micro, write_lm_corpus

X = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
Y = X @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1


def toy_run(run_dir, *, steps=6, batch=8, grad_accum=1, dropout=0.0, noise=0.0, resume=False, kill_at=None,
            ckpt_every=2, pair_batches=False):
    """A linear regression through the loop: batches reshuffled every epoch, optional dropout (global
    RNG) and input noise (the loop's generator); ``kill_at`` raises inside that step."""
    cfg = LoopConfig(max_steps=steps, max_minutes=1e6, ckpt_every=ckpt_every, log_every=1, grad_accum=grad_accum,
                     device="cpu", seed=0, progress=False)
    loop = Loop(cfg, run_dir, log=lambda m: None)
    model = nn.Sequential(nn.Dropout(dropout), nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)

    def batches(epoch):
        order = torch.randperm(64, generator=torch.Generator().manual_seed(epoch)).tolist()
        bl = [order[i:i + batch] for i in range(0, 64, batch)]
        return [bl[i] + bl[i + 1] for i in range(0, len(bl), 2)] if pair_batches else bl

    def step(idx, loop):
        if kill_at is not None and loop.state["step"] + 1 == kill_at:
            raise KeyboardInterrupt("killed")
        x = X[idx] + noise * torch.randn(len(idx), 4, generator=loop.gen)
        return {"loss": ((model(x).squeeze(1) - Y[idx]) ** 2).mean(), "n": len(idx)}

    loop.fit({"model": model}, {"opt": opt}, step, batches=batches, resume=resume)
    return model, [r["loss"] for r in map(json.loads, (run_dir / "log.jsonl").read_text().splitlines()) if "loss" in r]


def test_accumulated_half_batches_equal_one_full_batch(tmp_path):
    """2 micro-batches of 8 accumulated = 1 batch of the same 16 (size-weighted mean, as DDP's ranks)."""
    a, la = toy_run(tmp_path / "a", grad_accum=2, batch=8)
    b, lb = toy_run(tmp_path / "b", grad_accum=1, batch=8, pair_batches=True)
    assert la == pytest.approx(lb, rel=1e-6)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    assert len(la) == 6 and la[-1] < la[0]


def test_resume_after_a_kill_reproduces_the_curve(tmp_path):
    """Killed during step 5 (last checkpoint: step 4), resumed: the same losses as an uninterrupted run,
    dropout masks and the loop's generator included, across an epoch boundary (4 batches an epoch)."""
    full, curve = toy_run(tmp_path / "full", steps=9, batch=16, dropout=0.3, noise=0.5)
    with pytest.raises(KeyboardInterrupt):
        toy_run(tmp_path / "cut", steps=9, batch=16, dropout=0.3, noise=0.5, kill_at=5, ckpt_every=4)
    again, resumed = toy_run(tmp_path / "cut", steps=9, batch=16, dropout=0.3, noise=0.5, resume=True, ckpt_every=4)
    assert resumed == curve and len(curve) == 9  # rows after the checkpoint were dropped, then written again
    for p, q in zip(full.parameters(), again.parameters()):
        assert torch.equal(p, q)


def _lm_corpus(root):
    return write_lm_corpus(root)


def _lm_tc(**kw):
    from minicosy.lm.train import TrainConfig

    base = {"batch_tokens": 120, "lr": 3e-3, "warmup": 2, "max_steps": 4, "max_minutes": 1e6, "eval_every": 0,
            "ckpt_every": 2, "log_every": 1, "seed": 0, "n_valid": 4}
    return TrainConfig(**{**base, **kw})


def _train_rows(run):
    return [r for r in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if "loss" in r]


def test_lm_resume_after_a_kill_reproduces_the_curve(tmp_path, monkeypatch):
    """The LM trainer (examples redrawn every epoch, dropout) killed at step 4 and resumed."""
    from minicosy.lm.model import TextSpeechLM
    from minicosy.lm.train import train_lm

    tokens = _lm_corpus(tmp_path)
    kw = {"device": "cpu", "tokens": tokens, "progress": False, "log": lambda m: None}
    train_lm(micro(dropout=0.2), _lm_tc(max_steps=6), tmp_path, tmp_path / "full", **kw)
    calls, real = [0], TextSpeechLM.loss

    def dying(self, batch):
        if self.training:
            calls[0] += 1
            if calls[0] == 4:
                raise KeyboardInterrupt("killed")
        return real(self, batch)

    monkeypatch.setattr(TextSpeechLM, "loss", dying)
    with pytest.raises(KeyboardInterrupt):
        train_lm(micro(dropout=0.2), _lm_tc(max_steps=6), tmp_path, tmp_path / "cut", **kw)
    monkeypatch.setattr(TextSpeechLM, "loss", real)
    train_lm(micro(dropout=0.2), _lm_tc(max_steps=6), tmp_path, tmp_path / "cut", resume=True, **kw)
    assert [r["loss"] for r in _train_rows(tmp_path / "cut")] == [r["loss"] for r in _train_rows(tmp_path / "full")]


TORCHRUN_SCRIPT = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {tests!r})
    torch.set_num_threads(1)
    from pathlib import Path
    from test_training_loop import _lm_corpus, _lm_tc, micro
    from minicosy.lm.train import train_lm
    root, run, accum = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    tokens = _lm_corpus(root)
    train_lm(micro(), _lm_tc(grad_accum=accum), root, run, device="cpu", tokens=tokens, progress=False,
             log=lambda m: None)
""")


@pytest.mark.slow  # two torchrun launches (~20 s on 2 cores)
def test_torchrun_two_processes_match_one_process(tmp_path):
    """``torchrun --nproc_per_node 2`` (gloo, each rank one batch) = one process accumulating the same two
    batches: the same logged losses and the same weights."""
    script = tmp_path / "run_lm.py"
    script.write_text(TORCHRUN_SCRIPT.format(tests=os.path.dirname(__file__)))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    for name, nproc, accum in (("ddp", 2, 1), ("one", 1, 2)):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", str(script),
               str(tmp_path), str(tmp_path / name), str(accum)]
        res = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-3000:]
    ddp, one = _train_rows(tmp_path / "ddp"), _train_rows(tmp_path / "one")
    assert len(ddp) == len(one) == 4
    assert [r["loss"] for r in ddp] == pytest.approx([r["loss"] for r in one], rel=1e-5)
    a = torch.load(tmp_path / "ddp" / "ckpt.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "one" / "ckpt.pt", weights_only=False)["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_bf16_autocast_on_cpu(tmp_path):
    from minicosy.lm.train import train_lm

    tokens = _lm_corpus(tmp_path)
    train_lm(micro(), _lm_tc(max_steps=3, precision="bf16"), tmp_path, tmp_path / "run", device="cpu",
             tokens=tokens, progress=False, log=lambda m: None)
    losses = [r["loss"] for r in _train_rows(tmp_path / "run")]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no usable CUDA"):
        Loop(LoopConfig(device="cuda"), tmp_path)
    args = _parser().parse_args(["train", "lm", "--device", "cuda", "--max-steps", "1", "--corpus", str(tmp_path)])
    with pytest.raises(ValueError, match="no usable CUDA"):
        args.func(args)


def test_bad_precision_accum_and_budget_are_refused(tmp_path):
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) is None and resolve_precision("bf16", cpu) == torch.bfloat16
    with pytest.raises(ValueError, match="fp16 needs a CUDA"):
        resolve_precision("fp16", cpu)
    with pytest.raises(ValueError, match="unknown precision"):
        Loop(LoopConfig(device="cpu", precision="int8"), tmp_path)
    with pytest.raises(ValueError, match="grad_accum"):
        Loop(LoopConfig(device="cpu", grad_accum=0), tmp_path)
    loop = Loop(LoopConfig(device="cpu", grad_accum=4, progress=False), tmp_path, log=lambda m: None)
    lin = nn.Linear(2, 1)
    with pytest.raises(ValueError, match="fewer than grad_accum"):
        loop.fit({"model": lin}, {"opt": torch.optim.SGD(lin.parameters(), 0.1)}, lambda b, _: {"loss": lin(b).sum()},
                 batches=lambda epoch: [torch.ones(1, 2)] * 3)


def _parser():
    """``minicosy train <stage>`` for the five trainers, from their own ``register_cli``."""
    import argparse
    import importlib

    parser = argparse.ArgumentParser()
    groups = {"train": parser.add_subparsers().add_parser("train").add_subparsers()}
    for module in ("speech_tokenizer", "lm", "flow", "vocoder"):
        importlib.import_module(f"minicosy.{module}.train").register_cli(groups)
    return parser


def test_cli_has_the_loop_flags_on_every_trainer():
    for stage in ("tokenizer", "lm", "flow", "speaker", "vocoder"):
        args = _parser().parse_args(["train", stage, "--device", "cpu", "--precision", "bf16", "--grad-accum",
                                          "1", "--workers", "2"])
        assert (args.device, args.precision, args.grad_accum, args.workers) == ("cpu", "bf16", 1, 2)


def test_committed_checkpoints_still_load():
    from minicosy.flow.model import ChunkAwareFlow
    from minicosy.flow.speaker import SpeakerEncoder
    from minicosy.lm.model import TextSpeechLM
    from minicosy.speech_tokenizer.model import SpeechTokenizer
    from minicosy.vocoder.hift import Vocoder

    tiny = REPO_ROOT / "data" / "pretrained" / "tiny"
    for cls, stem in ((SpeechTokenizer, "speech_tokenizer"), (TextSpeechLM, "lm"), (ChunkAwareFlow, "flow"),
                      (SpeakerEncoder, "speaker")):
        model = cls.from_pretrained(tiny / stem, device="cpu")
        assert sum(p.numel() for p in model.parameters()) > 0
    assert Vocoder.from_pretrained(tiny, device="cpu").meta["training"]["steps"] > 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bf16_steps_on_cuda(tmp_path):
    from minicosy.lm.train import train_lm

    tokens = _lm_corpus(tmp_path)
    model = train_lm(micro(), _lm_tc(max_steps=3, precision="bf16"), tmp_path, tmp_path / "run", device="cuda",
                     tokens=tokens, progress=False, log=lambda m: None)
    assert model.device.type == "cuda"
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in _train_rows(tmp_path / "run"))
