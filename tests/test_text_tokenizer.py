"""Tests for minicosy.text.tokenizer: round trips, a known answer, CJK masking, save/load, CLI."""

from functools import lru_cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicosy.text import tokenizer as tt
from minicosy.text.tokenizer import (
    BYTE_TOKENS,
    EOT,
    FIRST_LEARNED_ID,
    PAD,
    SPECIAL_TOKENS,
    UNK,
    TextTokenizer,
    count_cjk,
    mask_multi_cjk_tokens,
    multi_cjk_tokens,
)

# Mixed English / Chinese training text written for these tests: short everyday sentences in
# which some hanzi pairs (你好, 我们, 今天, 学习, 中文 ...) repeat often enough to be merged.
ENGLISH = [
    "the cat sat on the mat and looked at the garden.",
    "we walked to the market this morning to buy some bread.",
    "she reads a short story to her little brother every night.",
    "the weather is cold today, so wear a warm coat.",
    "they are learning to speak chinese at school.",
    "hello there, how are you doing this fine evening?",
]
CHINESE = [
    "你好，我们今天去学校。", "我们喜欢学习中文。", "今天天气很好。", "你好，今天你去哪里？",
    "我们一起学习中文吧。", "老师说中文很好学。", "今天我们在学校学习。", "你好世界！",
]
MIXED = ["hello 你好, we learn 中文 today 今天.", "the teacher says 你好 to 我们 every day."]
TRAIN = (ENGLISH + CHINESE + MIXED) * 4

PARAGRAPH = " ".join(ENGLISH * 20)
ROUND_TRIP = [
    "", "?", " ", "   leading", "trailing   ", "multiple    spaces\tand\ttabs\n\nnewlines",
    "hello world", "🙂", "emoji 🚀🔥 in text 👩‍👩‍👧", "你好世界", "未见过的汉字：龘靐齉",
    "hello 你好, mixed 中文 and english!", "こんにちは 안녕하세요 Привет مرحبا", "<|endoftext|>",
    "<0x41> literal byte-token text", "NFD e\u0301 vs NFC \u00e9", "\x00\x01 control \x7f",
    PARAGRAPH,
]


@lru_cache(maxsize=None)
def _trained(mask_cjk: bool = True) -> TextTokenizer:
    return TextTokenizer.train(TRAIN, vocab_size=400, min_frequency=2, mask_cjk=mask_cjk)


@pytest.mark.parametrize("text", ROUND_TRIP, ids=range(len(ROUND_TRIP)))
@pytest.mark.parametrize("mask_cjk", [True, False])
def test_round_trip(text, mask_cjk):
    tok = _trained(mask_cjk)
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert tok.token_to_id(UNK) not in ids  # byte fallback: <|unk|> is never produced


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_round_trip_property(text):
    tok = _trained(True)
    assert tok.decode(tok.encode(text)) == text


def test_unseen_characters_use_bytes():
    tok = _trained(True)
    assert tok.tokens("🙂") == ["<0xF0>", "<0x9F>", "<0x99>", "<0x82>"]  # UTF-8 of U+1F642
    assert tok.token_to_id("<0x00>") == len(SPECIAL_TOKENS)
    assert tok.token_to_id("<0xFF>") == FIRST_LEARNED_ID - 1


def test_special_tokens():
    tok = _trained(True)
    assert [tok.token_to_id(t) for t in (PAD, UNK, EOT)] == [0, 1, 2]
    assert tok.pad_id == 0 and tok.eot_id == 2
    ids = tok.encode("hello", add_eot=True)
    assert ids[-1] == tok.eot_id
    assert tok.decode(ids) == "hello" + EOT
    assert tok.decode(ids, skip_special=True) == "hello"
    # Typed in text, the special string is ordinary characters, never the special id.
    assert tok.eot_id not in tok.encode("a <|endoftext|> b")


def test_bad_input():
    tok = _trained(True)
    with pytest.raises(ValueError, match="str"):
        tok.encode(["a list"])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([tok.vocab_size])
    with pytest.raises(ValueError, match="surrogate|invalid unicode"):
        tok.encode("bad \ud800 surrogate")
    with pytest.raises(ValueError, match="vocab_size"):
        TextTokenizer.train(["abc"], vocab_size=100)
    with pytest.raises(ValueError, match="no training text"):
        TextTokenizer.train(["", ""], vocab_size=300)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.token_to_id("definitely-not-a-token")


def test_known_answer():
    """minbpe-style known answer on the tiny text "abababcab" (min_frequency=2).

    Pre-tokenisation keeps "abababcab" as one piece: a b a b a b c a b.
    Pair counts: (a,b)=4, (b,a)=2, (b,c)=1, (c,a)=1 → merge 1: a+b = "ab".
    Now: ab ab ab c ab. Counts: (ab,ab)=2, (ab,c)=1, (c,ab)=1 → merge 2: ab+ab = "abab".
    Merging left to right: abab ab c ab. Every pair now occurs once (< min_frequency): stop.
    Ids: 0..2 specials, 3..258 bytes, 259 "a", 260 "b", 261 "c" (code-point order),
    262 "ab", 263 "abab" (merge order). So "abababcab" → [263, 262, 261, 262];
    "ba" → [260, 259] (no merge for b+a); "d" is unseen → its byte <0x64> = 3 + 0x64 = 103.
    """
    tok = TextTokenizer.train(["abababcab"], vocab_size=300, min_frequency=2)
    assert tok.merges() == [("a", "b"), ("ab", "ab")]
    assert [tok.id_to_token(i) for i in range(259, tok.vocab_size)] == ["a", "b", "c", "ab", "abab"]
    assert tok.encode("abababcab") == [263, 262, 261, 262]
    assert tok.encode("ba") == [260, 259]
    assert tok.encode("d") == [103]
    assert tok.decode([263, 262, 261, 262, 103]) == "abababcabd"


def _reference_encode(tok: TextTokenizer, text: str) -> list[int]:
    """From-scratch BPE encoder (minbpe style): repeatedly merge the lowest-rank pair."""
    vocab = tok.vocab()
    rank = {pair: r for r, pair in enumerate(tok.merges())}
    ids: list[int] = []
    for piece, _ in tok.tok.pre_tokenizer.pre_tokenize_str(text):
        parts = []
        for ch in piece:  # unseen characters fall back to their UTF-8 bytes
            parts += [ch] if ch in vocab else [f"<0x{b:02X}>" for b in ch.encode("utf-8")]
        while len(parts) > 1:
            pairs = [(rank.get((a, b), float("inf")), i) for i, (a, b) in
                     enumerate(zip(parts, parts[1:]))]
            best, i = min(pairs)
            if best == float("inf"):
                break
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        ids += [vocab[p] for p in parts]
    return ids


@pytest.mark.parametrize("text", ROUND_TRIP[1:-1] + ["the cat sat on the mat", PARAGRAPH[:500]])
def test_parity_with_reference_bpe(text):
    tok = _trained(True)
    assert tok.encode(text) == _reference_encode(tok, text)


def test_cjk_masking():
    before = _trained(False)
    # Without masking the BPE really learns one-to-many tokens such as "你好".
    multi = multi_cjk_tokens(before)
    assert "你好" in multi or " 你好" in multi
    assert any(count_cjk(t) > 1 for t in before.tokens("你好，我们今天学习中文。"))
    # Masking is a separate step on a trained model...
    after = mask_multi_cjk_tokens(before)
    assert multi_cjk_tokens(after) == []
    assert all(count_cjk(a + b) <= 1 for a, b in after.merges())
    assert after.tokens("你好") == ["你", "好"]
    assert after.vocab_size == before.vocab_size - len(multi)
    assert before.tokens("你好")[0] != "你"  # the input tokenizer is unchanged
    # ... that train() applies by default, and that leaves English merges alone.
    default = _trained(True)
    assert default.vocab() == after.vocab() and default.merges() == after.merges()
    assert before.tokens("the cat sat") == after.tokens("the cat sat")
    for text in CHINESE + MIXED:
        toks = after.tokens(text)
        assert all(count_cjk(t) <= 1 for t in toks)
        assert sum(count_cjk(t) for t in toks) == count_cjk(text)  # one token per hanzi
        assert after.decode(after.encode(text)) == text


def test_training_is_deterministic():
    a = TextTokenizer.train(TRAIN, vocab_size=400)
    assert a.vocab() == _trained(True).vocab() and a.merges() == _trained(True).merges()


def test_vocab_layout():
    tok = _trained(True)
    assert [tok.id_to_token(i) for i in range(3)] == list(SPECIAL_TOKENS)
    assert [tok.id_to_token(i) for i in range(3, FIRST_LEARNED_ID)] == list(BYTE_TOKENS)
    merged = [a + b for a, b in tok.merges()]
    assert [tok.id_to_token(i) for i in range(tok.vocab_size - len(merged), tok.vocab_size)] == merged
    assert len(tok.vocab()) == tok.vocab_size <= 400


def test_batch_matches_single():
    tok = _trained(True)
    texts = ROUND_TRIP * 3
    assert tok.encode_batch(texts) == [tok.encode(t) for t in texts]
    assert tok.encode_batch(["a"], add_eot=True) == [tok.encode("a", add_eot=True)]
    with pytest.raises(ValueError, match="list"):
        tok.encode_batch("a string")


def test_save_load(tmp_path):
    tok = _trained(True)
    path = tok.save(tmp_path / "sub" / "tok.json")
    again = TextTokenizer.load(path)
    assert again.vocab() == tok.vocab() and again.merges() == tok.merges()
    for text in ROUND_TRIP:
        assert again.encode(text) == tok.encode(text)
        assert again.decode(again.encode(text)) == text
    assert TextTokenizer.from_pretrained(path).vocab_size == tok.vocab_size
    with pytest.raises(ValueError, match="minicosy text train"):
        TextTokenizer.from_pretrained(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="minicosy text train"):
        TextTokenizer.load(tmp_path / "missing.json")


def _cli(argv: list[str]) -> int:
    """Run `minicosy text ...` through tt.register_cli alone (as minicosy.system.cli.main does)."""
    import argparse

    parser = argparse.ArgumentParser(prog="minicosy")
    top = parser.add_subparsers(dest="command")
    tt.register_cli({"text": top.add_parser("text").add_subparsers(dest="text_command")})
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValueError:
        return 2


def test_cli(tmp_path, capsys):
    from minicosy.data.manifest import Utterance, write_manifest

    main = _cli

    rows = [Utterance(id=f"u{i:03d}", voice="v", text=t, path=f"u{i}.wav", duration=1.0,
                      sample_rate=16000, split="train" if i % 5 else "valid")
            for i, t in enumerate(TRAIN)]
    write_manifest(tmp_path / "manifest.jsonl", rows)
    out = tmp_path / "tok.json"
    assert main(["text", "train", str(tmp_path), "--vocab-size", "350", "--out", str(out)]) == 0
    assert "vocab_size=" in capsys.readouterr().out and out.is_file()
    train_texts = [u.text for u in rows if u.split == "train"]
    assert TextTokenizer.load(out).vocab() == TextTokenizer.train(train_texts, 350).vocab()

    txt = tmp_path / "texts.txt"
    txt.write_text("\n".join(ENGLISH * 3), encoding="utf-8")
    assert main(["text", "train", str(txt), "--vocab-size", "300", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["text", "encode", "--tokenizer", str(out), "--normalize", "I", "have", "3",
                 "cats"]) == 0
    printed = capsys.readouterr().out
    assert "I have three cats" in printed and "ids:" in printed and "tokens:" in printed
    assert main(["text", "normalize", "--split", "--max-words", "3", "Dr.", "Who", "has",
                 "2", "cats."]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "doctor Who has two cats.", "[0] doctor Who has", "[1] two cats."]
    assert main(["text", "encode", "--tokenizer", str(tmp_path / "none.json"), "x"]) == 2
