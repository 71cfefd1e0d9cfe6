"""``scripts/compare_tts_evals.py``: two tts reports on the utterances both judged, in the newer one's groups."""

import importlib.util

import pytest

from minicosy.utils import REPO_ROOT

spec = importlib.util.spec_from_file_location("compare_tts_evals", REPO_ROOT / "scripts" / "compare_tts_evals.py")
compare_tts_evals = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_tts_evals)


def _utt(i, voice, hyp, nearest=None):
    return {"id": i, "voice": voice, "reference": "one two three four", "hypothesis": hyp,
            "nearest_voice": nearest or voice}


def test_compare_keeps_common_utterances_and_pools_wer():
    old = {"utterances": {"sft_offline": [_utt("a", "v1", "one two"), _utt("c", "v2", "one two three four")]},
           "recordings": []}
    new = {"utterances": {"sft_offline": [_utt("a", "v1", "one two three four"), _utt("b", "v1", "x", "v9")]},
           "recordings": [{"id": "a", "group": "train_voices", "hypothesis": "one two three"},
                          {"id": "b", "group": "train_voices", "hypothesis": "one"}]}
    rows = compare_tts_evals.compare(old, new)
    assert len(rows) == 1  # only "a" was judged by both
    r = rows[0]
    assert (r["group"], r["scenario"], r["n"]) == ("train_voices", "sft_offline", 1)
    assert r["wer_old"] == pytest.approx(0.5) and r["wer_new"] == 0.0 and r["wer_recording"] == pytest.approx(0.25)
    assert r["nearest_old"] == r["nearest_new"] == 1.0
