"""Tests for the flow evaluation (minicosy/flow/evaluate.py).

On the fixture corpus with a random-init "micro" checkpoint (the trained flow is not needed): the
choice of prompts and reference voices, the identity that makes copy synthesis the ceiling (the
ground-truth mel in place of the flow's scores exactly as copy synthesis), broken syntheses scored
instead of aborting, and the ``minicosy eval flow`` command end to end.
"""

import json

import numpy as np
import pytest
import torch

from minicosy import judges
from minicosy.flow import evaluate as fe
from minicosy.flow.model import ChunkAwareFlow
from minicosy.flow.speaker import SpeakerEncoder
from minicosy.system.cli import main
from minicosy.utils import FIXTURES_DIR
from minicosy.vocoder.hift import Vocoder

VOICES = ["flite_awb", "mbrola_us3"]  # one train, one held-out voice; each has a test and a valid clip


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    from minicosy.testing import write_untrained_checkpoint

    return write_untrained_checkpoint(tmp_path_factory.mktemp("flow_eval"), "micro")


def test_pick_prompts_references_and_candidates():
    items, refs = fe.pick(FIXTURES_DIR, "test", per_voice=1, voices=VOICES, candidates=["flite_slt"])
    assert [u.voice for u, _ in items] == VOICES
    judged = {u.id for u, _ in items}
    for u, p in items:
        assert p.voice == u.voice and p.id != u.id and u.split == "test"
    assert set(refs) == {"flite_slt", *VOICES}  # the judged voices are always candidates
    assert all(r.id not in judged and r.voice == v for v, rs in refs.items() for r in rs)
    with pytest.raises(ValueError, match="not base voices"):
        fe.pick(FIXTURES_DIR, voices=["flite_awb_p+2"])


def test_voice_centroids_and_nearest_voice_known_answer():
    e1, e2 = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    voices, c = judges.voice_centroids({"b": [e2, 3 * e2], "a": [e1, np.array([1.0, 1.0, 0])]})
    assert voices == ["a", "b"]
    # a: mean of e1 and (1,1,0)/√2 = (1 + 1/√2, 1/√2, 0)/2, normalised
    r = 1 / np.sqrt(2)
    np.testing.assert_allclose(c[0], np.array([1 + r, r, 0]) / np.linalg.norm([1 + r, r, 0]))
    np.testing.assert_allclose(c[1], e2)
    assert judges.nearest_voice(np.array([0.1, 2.0, 0]), voices, c)[0] == "b"
    assert judges.nearest_voice(e1, voices, c) == ("a", pytest.approx(c[0, 0]))


def test_groundtruth_mel_scores_as_copy_synthesis_and_broken_synthesis_is_scored(micro, monkeypatch):
    def fake(flow, item, mask, n_steps=10, guidance=0.7):
        if mask == "non_causal":
            return item["mel"].clone()  # a perfect flow
        if mask == "full_causal":
            raise ValueError("boom")
        return torch.full_like(item["mel"], float("nan"))

    monkeypatch.setattr(fe, "synthesize_mel", fake)
    flow = ChunkAwareFlow.from_pretrained(micro / "flow", device="cpu")
    res = fe.evaluate_flow(flow, Vocoder.from_pretrained(micro, device="cpu"),
                           SpeakerEncoder.from_pretrained(micro / "speaker", device="cpu"), FIXTURES_DIR,
                           per_voice=1, masks=("non_causal", "full_causal", "chunk_M"), voices=["flite_awb"],
                           candidates=["flite_slt"], log=lambda s: None)
    json.dumps(res, allow_nan=False)
    assert len(res["utterances"]) == 1 and res["groups"]["held_out_voices"] is None
    for r in res["utterances"]:
        for k in ("wer", "hyp", "sim", "nearest"):  # identical audio → identical judgements
            assert r[k]["non_causal"] == r[k]["copy_synthesis"], (r["id"], k)
        assert r["mel_l1"]["non_causal"] == 0.0
        assert r["unscorable"]["full_causal"] == "synthesis failed: boom"
        assert "non-finite" in r["unscorable"]["chunk_M"]
        for m in ("full_causal", "chunk_M"):
            assert r["wer"][m] == 1.0 and r["sim"][m] == 0.0 and r["nearest"][m] is None
            assert r["mel_l1"][m] is None and r["hyp"][m] == ""
    for g in ("train_voices", "all"):
        s = res["groups"][g]["systems"]
        assert s["non_causal"]["wer"] == s["copy_synthesis"]["wer"]
        assert s["non_causal"]["wer_ratio"] in (1.0, None)
        assert s["chunk_M"]["unscorable"] == 1 and s["chunk_M"]["mel_l1"] is None
        assert s["chunk_M"]["similarity"] == 0.0 and s["chunk_M"]["most_similar_rate"] == 0.0
    assert "(1 unscorable)" in fe.eval_markdown(res)


def test_cli_on_an_untrained_flow(micro, tmp_path, capsys):
    out = tmp_path / "flow_eval.json"
    rc = main(["eval", "flow", "--checkpoint", str(micro / "flow"), "--corpus", str(FIXTURES_DIR),
               "--per-voice", "1", "--voices", "mbrola_us3", "--candidates", "mbrola_en1", "--masks", "chunk_M",
               "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "flow, chunk-M" in printed and "copy synthesis" in printed
    res = json.loads(out.read_text())
    assert res["masks"] == ["chunk_M"] and res["chunk_tokens"] == {"chunk_M": 15}
    assert res["checkpoint"]["untrained"] is True and res["groups"]["train_voices"] is None
    assert res["candidate_voices"] == ["mbrola_en1", "mbrola_us3"]
    s = res["groups"]["held_out_voices"]["systems"]
    assert set(s) == {"recording", "copy_synthesis", "chunk_M"}
    for d in s.values():
        assert 0 <= d["wer"] and 0 <= d["similarity"] <= 1 and 0 <= d["most_similar_rate"] <= 1
    assert s["chunk_M"]["mel_l1"] > 0  # random weights do not reproduce the recording
    assert set(res["goals"]["held_out_voices"]["chunk_M"]) == {"wer_ratio_ok", "most_similar_rate_ok"}
    u = res["utterances"][0]
    assert u["prompt"] != u["id"] and u["tokens"] > 0 and set(u["wer"]) == set(s)


def test_a_short_first_chunk_mask_is_the_offline_schedule_and_scores_the_first_second(micro, tmp_path):
    """``chunk_M_short_first``: the chunk mask whose first block after the prompt is ⌈2M/3⌉ tokens (what
    ``stream(..., first_chunk_tokens=F)`` reproduces), judged like the others, with the first second's log-mel L1."""
    flow = ChunkAwareFlow.from_pretrained(micro / "flow", device="cpu")
    item = {"tokens": torch.randint(0, 243, (40,), generator=torch.Generator().manual_seed(0)),
            "prompt_tokens": torch.randint(0, 243, (8,), generator=torch.Generator().manual_seed(1)),
            "prompt_mel": torch.zeros(80, 16), "speaker": torch.zeros(flow.cfg.spk_dim)}
    F = -(-2 * flow.cfg.chunk_tokens // 3)
    want = flow.inference(item["tokens"], item["prompt_tokens"], item["prompt_mel"], item["speaker"], mask="chunk",
                          first_chunk_tokens=F)
    assert torch.equal(fe.synthesize_mel(flow, item, "chunk_M_short_first"), want)
    assert not torch.equal(fe.synthesize_mel(flow, item, "chunk_M"), want)
    out = tmp_path / "flow_eval.json"
    assert main(["eval", "flow", "--checkpoint", str(micro / "flow"), "--corpus", str(FIXTURES_DIR), "--per-voice",
                 "1", "--voices", "mbrola_us3", "--candidates", "mbrola_en1", "--masks", "chunk_M_short_first",
                 "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["first_chunk_tokens"] == {"chunk_M_short_first": F}
    d = res["groups"]["held_out_voices"]["systems"]["chunk_M_short_first"]
    assert d["mel_l1_first_s"] > 0 and d["mel_l1"] > 0


def test_cli_refuses_an_unknown_mask(micro, capsys):
    rc = main(["eval", "flow", "--checkpoint", str(micro / "flow"), "--corpus", str(FIXTURES_DIR),
               "--masks", "chunk_3M"])
    assert rc == 2 and "unknown masks" in capsys.readouterr().err
