"""Tests for minicosy.flow.speaker (+ its trainer): unit vectors, padding invariance, bad input,
save/load, the loss falling on one batch, nearest-centroid evaluation, a short training run."""

import json

import pytest
import torch
import torch.nn.functional as F

from minicosy.data.manifest import read_manifest, write_manifest
from minicosy.flow.speaker import SpeakerConfig, SpeakerEncoder, centroids, speaker_report
from minicosy.flow.train import (
    SpeakerTrainConfig,
    evaluate_speaker,
    is_heldout,
    load_mels,
    speaker_batch,
    train_speaker,
)
from minicosy.utils import FIXTURES_DIR


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("spkcorpus")
    rows = read_manifest(FIXTURES_DIR / "manifest.jsonl")
    for u in rows:
        u.path = str(u.audio_path(FIXTURES_DIR))
    write_manifest(root / "manifest.jsonl", rows)
    return root / "manifest.jsonl"


@pytest.fixture(scope="module")
def train(corpus):
    return load_mels(corpus, "train")


def test_embed_is_unit_and_padding_invariant():
    torch.manual_seed(0)
    model = SpeakerEncoder(SpeakerConfig.tiny()).eval()
    mel = torch.randn(80, 60) - 4
    e = model.embed(mel)
    assert e.shape == (128,) and abs(float(e.norm()) - 1) < 1e-5
    padded = torch.cat([mel, torch.full((80, 25), 3.0)], dim=1)[None]
    with torch.no_grad():
        e2 = model(padded, torch.tensor([60]))[0]
    assert (e - e2).abs().max() < 1e-5
    assert model.embed(mel[None]).shape == (1, 128)


def test_bad_input():
    model = SpeakerEncoder(SpeakerConfig.tiny())
    with pytest.raises(ValueError, match="log-mel"):
        model.embed(torch.zeros(40, 50))
    with pytest.raises(ValueError, match="10"):
        model.embed(torch.zeros(80, 3))
    with pytest.raises(ValueError, match="no classification head"):
        model.logits(torch.zeros(1, 128))


def test_save_load(tmp_path):
    torch.manual_seed(0)
    model = SpeakerEncoder(SpeakerConfig.tiny(n_speakers=3), ["a", "b", "c"]).eval()
    model.save_pretrained(tmp_path / "speaker", extra={"note": 1})
    loaded = SpeakerEncoder.from_pretrained(tmp_path, device="cpu")
    mel = torch.randn(80, 40)
    assert torch.equal(loaded.embed(mel), model.embed(mel)) and loaded.voices == ["a", "b", "c"]
    assert loaded.cfg == model.cfg and loaded.meta["note"] == 1
    with pytest.raises(ValueError, match="missing"):
        SpeakerEncoder.from_pretrained(tmp_path / "none")


def test_speaker_overfits_one_batch(train):
    voices = sorted({d["voice"] for d in train})
    torch.manual_seed(0)
    model = SpeakerEncoder(SpeakerConfig.tiny(n_speakers=len(voices), dropout=0.0), voices)
    mel, lengths = speaker_batch(train, list(range(len(train))), SpeakerTrainConfig(), torch.Generator().manual_seed(0))
    allm = torch.cat([d["mel"].float() for d in train], dim=1)
    model.mel_mean.copy_(allm.mean(1))  # as the trainer does
    model.mel_std.copy_(allm.std(1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    labels = torch.tensor([voices.index(d["voice"]) for d in train])
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model.logits(model(mel, lengths), labels), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], losses[::5]


def test_centroids_and_report_on_known_vectors():
    class Fixed(torch.nn.Module):  # "encodes" a mel as its first frame: known vectors
        cfg = SpeakerConfig.tiny(emb_dim=3, n_mels=3)
        device = torch.device("cpu")

        def forward(self, mel, lengths):
            return F.normalize(mel[:, :, 0], dim=-1)

    def utt(voice, v):
        return {"voice": voice, "mel": torch.tensor(v, dtype=torch.float32)[:, None].repeat(1, 12)}

    enroll = [utt("a", [1, 0, 0]), utt("a", [1, 0.2, 0]), utt("b", [0, 1, 0])]
    test = [utt("a", [1, 0.1, 0]), utt("b", [0.1, 1, 0]), utt("b", [1, 0, 0.1]), utt("new", [0.6, 0.8, 0])]
    c = centroids(torch.tensor([[1.0, 0, 0], [0.6, 0.8, 0]]), ["x", "x"])
    assert torch.allclose(c["x"], F.normalize(torch.tensor([0.8, 0.4, 0]), dim=0))
    rep = speaker_report(Fixed(), enroll, test + [utt("other", [0, 0, 1])], heldout={"new"})
    assert "other" not in rep["heldout"]  # neither enrolled nor held out: ignored
    assert rep["n_test"] == 3 and rep["speaker_id_accuracy"] == pytest.approx(2 / 3)
    assert rep["confusions"] == {"b": {"a": 1}}
    assert rep["heldout"]["new"]["nearest"] == "b" and rep["heldout"]["new"]["cosine"]["b"] == pytest.approx(0.8)


def test_train_speaker_short_run(corpus, tmp_path):
    tc = SpeakerTrainConfig(max_steps=4, eval_every=2, ckpt_every=2, batch_utts=8, warmup=2)
    model = train_speaker(SpeakerConfig.tiny(channels=32), tc, corpus, tmp_path / "run", device="cpu",
                          progress=False, log=lambda m: None, export=tmp_path / "speaker")
    assert "mbrola_us3" not in model.voices and "flite_awb_p+2" in model.voices  # pseudo-speakers are classes
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows][:2] == [2, 4]
    cents = json.loads((tmp_path / "speaker.json").read_text())["centroids"]  # SFT speaker vectors
    assert set(cents) == set(model.voices) and "mbrola_us3" not in cents
    assert all(abs(sum(x * x for x in c) - 1) < 1e-3 for c in cents.values())
    tc.max_steps = 6
    train_speaker(SpeakerConfig.tiny(channels=32), tc, corpus, tmp_path / "run", device="cpu", resume=True,
                  progress=False, log=lambda m: None)
    assert torch.load(tmp_path / "run" / "ckpt.pt", weights_only=False)["state"]["step"] == 6
    rep = evaluate_speaker(SpeakerEncoder.from_pretrained(tmp_path / "speaker", device="cpu"), corpus)
    held = {u.voice for u in read_manifest(corpus) if is_heldout(u.voice)}
    assert {"mbrola_us3", "mbrola_en1"} <= held
    assert 0 <= rep["speaker_id_accuracy"] <= 1 and set(rep["heldout"]) == held
