"""Tests for minicosy.system.demo (`make demo`): which prompts, texts and reference recordings it picks from
data/fixtures, and one run on a random-init "micro" checkpoint — the WAVs, the PNG, the JSON and
the printed summary appear (the voice is noise; the plumbing is under test).
"""

import json

import pytest
import soundfile as sf

from minicosy.data.corpus import HELDOUT_VOICES
from minicosy.system.cli import main
from minicosy.system.demo import DEMO_VOICES, demo_items
from minicosy.testing import write_untrained_checkpoint


def test_items_use_held_out_prompts_and_sentences_the_prompt_does_not_say():
    assert set(DEMO_VOICES) <= set(HELDOUT_VOICES)
    items = {it["voice"]: it for it in demo_items()}
    for it in items.values():
        assert it["prompt"].voice == it["voice"] and it["text"] != it["prompt"].text
        assert it["references"] and all(u.text == it["text"] for u in it["references"])
    us3 = items["mbrola_us3"]
    assert us3["prompt"].split == "valid" and us3["reference_is_prompt_voice"]
    assert [u.voice for u in us3["references"]] == ["mbrola_us3"]
    # lyubov's only fixture clip is her prompt: she reads another held-out voice's test sentence,
    # judged beside every fixture recording of that sentence
    ly = items["rhvoice_lyubov"]
    assert ly["prompt"].split == "test" and not ly["reference_is_prompt_voice"]
    assert ly["text"] == us3["text"] and {"mbrola_us3", "pico_en_gb"} <= {u.voice for u in ly["references"]}
    with pytest.raises(ValueError, match="no clip of 'nobody'"):
        demo_items(["nobody"])


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_untrained_checkpoint(tmp_path_factory.mktemp("ckpt"), "micro")


@pytest.mark.slow  # one voice, offline + streaming, judged: ~20 s on 2 cores
def test_demo_runs_on_an_untrained_checkpoint(ckpt, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--checkpoint", str(ckpt), "--out", str(out), "--voices", "mbrola_us3", "--device", "cpu",
                 "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "| mbrola_us3 | offline |" in printed and "| mbrola_us3 | stream |" in printed
    assert "Random-init stages" in printed
    assert sorted(p.name for p in out.iterdir()) == ["demo.json", "demo.png", "mbrola_us3_offline.wav",
                                                     "mbrola_us3_stream.wav"]
    wav, sr = sf.read(out / "mbrola_us3_stream.wav")
    assert sr == 24000 and wav.size
    rep = json.loads((out / "demo.json").read_text())
    item = rep["items"][0]
    assert item["references"] == ["mbrola_us3-test-00000"] and item["prompt"]["id"] == "mbrola_us3-valid-00000"
    for m in ("offline", "stream"):
        assert 0 <= item[m]["similarity_to_prompt"] <= 1 and item[m]["wer"] >= 0 and item[m]["rtf"] > 0
    assert 0 < item["stream"]["first_packet_s"] <= item["stream"]["total_s"]
    # streamed with the recording, then with the voice registered: both latencies, the breakdown
    assert item["stream"]["first_packet_fresh_s"] > 0 and item["stream"]["register_s"] > 0
    assert "fresh / registered" in printed
    # the micro flow looks ahead within the prompt ('clip'): a fresh stream computes the flow's prompt block,
    # a registered voice computed it once at registration
    assert item["stream"]["first_packet_breakdown_fresh"]["flow_prompt_block"] > 0
    assert item["stream"]["first_packet_breakdown"]["flow_prompt_block"] == 0
    assert rep["summary"]["recording_wer"] == item["recording"]["wer"]
    assert rep["checkpoint"]["untrained_stages"] == ["lm", "flow", "speaker"]


def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys):
    for argv, match in ((["--voices", "nobody"], "no clip of 'nobody'"),
                        (["--checkpoint", str(tmp_path / "none")], "checkpoint folder not found")):
        assert main(["demo", "--out", str(tmp_path / "d"), *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("minicosy: error:") and err.count("\n") == 1 and match in err
    assert not (tmp_path / "d").exists()  # nothing written before the input is checked
