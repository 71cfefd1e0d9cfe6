"""The text tokenizer: byte-fallback BPE trained locally, with the CosyVoice 2 CJK masking.

CosyVoice 2 drops the grapheme-to-phoneme front end and feeds BPE tokens straight to the LM
[1, §2.1]. A BPE trained on Chinese happily merges several hanzi into one token ("你好"), and
such *one-to-many* tokens — one id, several spoken syllables — make pronunciation hard to
learn, so the paper masks them out: every Chinese character is encoded on its own. Here that
is an explicit step, :func:`mask_multi_cjk_tokens`, run after BPE training: it deletes every
vocabulary entry and merge whose token holds more than one CJK ideograph and rebuilds the BPE.
``TextTokenizer.train(..., mask_cjk=True)`` applies it by default.

Layout of the vocabulary (ids), fixed so that it is easy to read:

========================  =======================================================================
``0 <|pad|>``             padding for batches (never produced by ``encode``)
``1 <|unk|>``             required by HF BPE; never produced, thanks to byte fallback
``2 <|endoftext|>``       end of a text; ``encode(text, add_eot=True)`` appends it
``3 .. 258``              the 256 byte tokens ``<0x00>`` .. ``<0xFF>`` (byte fallback)
``259 ..``                single characters seen in training (sorted by code point), then one
                          token per merge, in merge order (id order == merge priority)
========================  =======================================================================

The LM's SOS / TASK / EOS / FILL are *not* text tokens: they are separate LM-side embeddings
(docs/paper_vs_code.md §2), so the text vocabulary holds only the three specials above.

Round trips are exact: ``decode(encode(x)) == x`` for every Python string without lone
surrogates — no normalizer runs (NFC/NFD forms are kept as given), the pre-tokenizer keeps
every character including leading, trailing and repeated spaces, a character never seen in
training is encoded as its UTF-8 bytes (``<0xE2><0x9C><0x93>``) and decoded back, and the
literal text ``"<|endoftext|>"`` in the input is encoded as ordinary characters (it never
becomes the special id). Text normalisation (numbers → words) is a separate, explicit step:
:mod:`minicosy.text.normalize`.

References:
    [1] Du et al., "CosyVoice 2: Scalable Streaming Speech Synthesis with Large Language
        Models", arXiv 2412.10117, 2024, §2.1 (text tokenizer, one-to-many masking).
    [2] Sennrich et al., "Neural Machine Translation of Rare Words with Subword Units", 2016.
    [3] Hugging Face ``tokenizers`` (BPE model with ``byte_fallback``).
    [4] Karpathy, minbpe (the known-answer and round-trip test style).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from minicosy.utils import DEFAULT_CHECKPOINT, REPO_ROOT

PAD, UNK, EOT = "<|pad|>", "<|unk|>", "<|endoftext|>"
SPECIAL_TOKENS = (PAD, UNK, EOT)
BYTE_TOKENS = tuple(f"<0x{b:02X}>" for b in range(256))
#: First id after the specials and the byte tokens.
FIRST_LEARNED_ID = len(SPECIAL_TOKENS) + len(BYTE_TOKENS)
DEFAULT_PATH = DEFAULT_CHECKPOINT / "text_tokenizer.json"  # beside the five stages (minicosy.checkpoint)

# Pre-tokenisation (GPT-2 style, without the English contractions): a run of Han characters,
# a run of other letters, one digit, a run of punctuation/symbols — each optionally led by one
# space — or whitespace. Merges never cross these pieces, so a token never mixes hanzi with
# Latin letters; every character lands in exactly one piece, so nothing is lost.
SPLIT_PATTERN = (r" ?\p{Han}+| ?[^\s\p{N}\p{P}\p{S}\p{Han}]+| ?\p{N}| ?[\p{P}\p{S}]+"
                 r"|\s+(?!\S)|\s+")


def is_cjk(ch: str) -> bool:
    """True for a CJK unified / compatibility ideograph (a hanzi, kanji or hanja)."""
    cp = ord(ch)
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0xF900 <= cp <= 0xFAFF
            or 0x20000 <= cp <= 0x3FFFF)


def count_cjk(token: str) -> int:
    """Number of CJK ideographs in a token string."""
    return sum(is_cjk(c) for c in token)


def _build(vocab: dict[str, int], merges: list[tuple[str, str]]) -> Tokenizer:
    """Assemble the HF tokenizer from a vocabulary and an ordered merge list."""
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=UNK, byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated")
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    tok.encode_special_tokens = True  # "<|endoftext|>" typed in text stays ordinary text
    return tok


def _layout(tokens: Iterable[str], merges: list[tuple[str, str]]) -> dict[str, int]:
    """Ids: specials, bytes, single characters by code point, then merged tokens in merge order."""
    tokens = set(tokens) - set(SPECIAL_TOKENS) - set(BYTE_TOKENS)
    merged = [a + b for a, b in merges]
    singles = sorted((t for t in tokens if t not in set(merged)), key=lambda t: [ord(c) for c in t])
    order = list(SPECIAL_TOKENS) + list(BYTE_TOKENS) + singles + merged
    return {t: i for i, t in enumerate(dict.fromkeys(order))}


def _vocab_and_merges(tok: Tokenizer) -> tuple[dict[str, int], list[tuple[str, str]]]:
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return dict(model["vocab"]), merges


class TextTokenizer:
    """Byte-fallback BPE text tokenizer (a thin, documented wrapper around HF ``tokenizers``).

    Build one with :meth:`train`, :meth:`load` or :meth:`from_pretrained`.
    """

    def __init__(self, tokenizer: Tokenizer):
        self.tok = tokenizer

    # -- training -------------------------------------------------------------------------
    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 1024, min_frequency: int = 2,
              mask_cjk: bool = True) -> "TextTokenizer":
        """Learn a BPE from ``texts``.

        Args:
            texts: training strings (already normalised; see :mod:`minicosy.text.normalize`).
            vocab_size: total ids including the 3 specials and 256 byte tokens, so > 259.
                Masking removes multi-CJK tokens afterwards, so with ``mask_cjk`` the final
                size can be smaller.
            min_frequency: a pair must occur this often to be merged.
            mask_cjk: apply :func:`mask_multi_cjk_tokens` (the paper's one-to-many masking).

        Raises:
            ValueError: ``vocab_size`` too small or no non-empty training text.
        """
        if vocab_size <= FIRST_LEARNED_ID:
            raise ValueError(f"vocab_size={vocab_size} leaves no room for learned tokens; it "
                             f"counts {len(SPECIAL_TOKENS)} specials + 256 byte tokens, so use "
                             f"more than {FIRST_LEARNED_ID} (e.g. 1024).")
        texts = [t for t in texts if t]
        if not texts:
            raise ValueError("no training text; pass a list of non-empty strings (e.g. the "
                             "`text` field of a manifest's train split).")
        tok = _build({t: i for i, t in enumerate(SPECIAL_TOKENS)}, [])
        trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(BYTE_TOKENS),
                                      min_frequency=min_frequency, show_progress=False,
                                      special_tokens=list(SPECIAL_TOKENS))
        tok.train_from_iterator(texts, trainer=trainer)
        vocab, merges = _vocab_and_merges(tok)
        out = cls(_build(_layout(vocab, merges), merges))
        return mask_multi_cjk_tokens(out) if mask_cjk else out

    # -- encode / decode ------------------------------------------------------------------
    def encode(self, text: str, add_eot: bool = False) -> list[int]:
        """Text → ids. ``add_eot`` appends the ``<|endoftext|>`` id.

        Raises:
            ValueError: ``text`` is not a string, or holds a lone surrogate (not valid UTF-8).
        """
        if not isinstance(text, str):
            raise ValueError(f"encode expects a str, got {type(text).__name__}; use "
                             "encode_batch for a list of strings.")
        try:
            ids = self.tok.encode(text, add_special_tokens=False).ids
        except Exception as exc:  # lone surrogates cannot cross into Rust
            raise ValueError(f"cannot encode {text!r}: {exc}. Remove invalid unicode "
                             "(e.g. text.encode('utf-8', 'replace').decode()).") from exc
        return ids + [self.eot_id] if add_eot else ids

    def encode_batch(self, texts: list[str], add_eot: bool = False) -> list[list[int]]:
        """Encode many texts at once (parallel in Rust); same ids as :meth:`encode` per text."""
        if isinstance(texts, str):
            raise ValueError("encode_batch expects a list of strings; use encode for one string.")
        encs = self.tok.encode_batch(list(texts), add_special_tokens=False)
        return [e.ids + [self.eot_id] if add_eot else e.ids for e in encs]

    def decode(self, ids: Iterable[int], skip_special: bool = False) -> str:
        """Ids → text (byte tokens are fused back into UTF-8 characters).

        Raises:
            ValueError: an id outside ``[0, vocab_size)``.
        """
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"ids {bad[:5]} are outside the vocabulary [0, {self.vocab_size}); "
                             "were they made by a different tokenizer?")
        return self.tok.decode(ids, skip_special_tokens=skip_special)

    def tokens(self, text: str) -> list[str]:
        """The token strings of ``encode(text)`` (for inspection)."""
        return [self.id_to_token(i) for i in self.encode(text)]

    # -- vocabulary -----------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size(with_added_tokens=True)

    @property
    def pad_id(self) -> int:
        return self.token_to_id(PAD)

    @property
    def eot_id(self) -> int:
        return self.token_to_id(EOT)

    def id_to_token(self, i: int) -> str:
        tok = self.tok.id_to_token(int(i))
        if tok is None:
            raise ValueError(f"id {i} is outside the vocabulary [0, {self.vocab_size}).")
        return tok

    def token_to_id(self, token: str) -> int:
        i = self.tok.token_to_id(token)
        if i is None:
            raise ValueError(f"token {token!r} is not in the vocabulary.")
        return i

    def merges(self) -> list[tuple[str, str]]:
        """The ordered merge list (rank 0 is applied first)."""
        return _vocab_and_merges(self.tok)[1]

    def vocab(self) -> dict[str, int]:
        return _vocab_and_merges(self.tok)[0]

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the HF ``tokenizer.json`` (loadable by ``tokenizers.Tokenizer.from_file``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tok.save(str(path))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "TextTokenizer":
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"text tokenizer not found: {path}. Train one with "
                             f"`minicosy text train --out {path}`.")
        tok = Tokenizer.from_file(str(path))
        tok.encode_special_tokens = True  # a runtime flag: tokenizer.json does not store it
        return cls(tok)

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None) -> "TextTokenizer":
        """Load the project's default tokenizer (``data/pretrained/tiny/text_tokenizer.json``)."""
        path = Path(path) if path is not None else DEFAULT_PATH
        if not path.is_file():
            raise ValueError(f"no trained text tokenizer at {path}. Create it with "
                             f"`minicosy text train data/corpus --out {path}` (the input is a "
                             "manifest.jsonl, its folder, or a .txt file with one text a line).")
        return cls.load(path)

    def __repr__(self) -> str:
        return f"TextTokenizer(vocab_size={self.vocab_size}, merges={len(self.merges())})"


def mask_multi_cjk_tokens(tokenizer: TextTokenizer, max_cjk: int = 1) -> TextTokenizer:
    """The paper's one-to-many masking [1, §2.1]: no token may hold more than one hanzi.

    Removes every merge whose result holds more than ``max_cjk`` CJK ideographs and every
    vocabulary entry that holds more, then rebuilds the BPE (ids are compacted, so the
    vocabulary shrinks by the number of removed tokens). Because the CJK count of a merged
    token is the sum of its parts', any merge that *uses* a removed token is removed too,
    so the remaining merge list is consistent. Single hanzi and tokens such as ``" 你"``
    (space + one hanzi) stay.

    Returns:
        a new :class:`TextTokenizer`; the input is not modified.
    """
    vocab, merges = _vocab_and_merges(tokenizer.tok)
    keep_merges = [(a, b) for a, b in merges if count_cjk(a + b) <= max_cjk]
    keep_tokens = [t for t in vocab if count_cjk(t) <= max_cjk]
    return TextTokenizer(_build(_layout(keep_tokens, keep_merges), keep_merges))


def multi_cjk_tokens(tokenizer: TextTokenizer) -> list[str]:
    """Tokens that hold more than one CJK ideograph (empty after masking)."""
    return [t for t in tokenizer.vocab() if count_cjk(t) > 1]


# ---------------------------------------------------------------------------------------------
# CLI: minicosy text train|encode|normalize
# ---------------------------------------------------------------------------------------------

def _read_texts(source: str | Path) -> list[str]:
    """Training texts: the train split of a manifest (file or folder) or the lines of a .txt."""
    source = Path(source)
    if source.suffix == ".txt":
        if not source.is_file():
            raise ValueError(f"text file not found: {source}.")
        return [line.strip() for line in source.read_text(encoding="utf-8").splitlines()
                if line.strip()]
    from minicosy.data.manifest import read_manifest
    return [u.text for u in read_manifest(source, split="train")]


def _cmd_train(args) -> int:
    texts = _read_texts(args.input)
    tok = TextTokenizer.train(texts, vocab_size=args.vocab_size, min_frequency=args.min_frequency,
                              mask_cjk=not args.no_mask_cjk)
    path = tok.save(args.out)
    n_tokens = sum(len(ids) for ids in tok.encode_batch(texts))
    n_chars = sum(len(t) for t in texts)
    print(f"trained on {len(texts)} texts ({n_chars} chars): vocab_size={tok.vocab_size}, "
          f"merges={len(tok.merges())}, {n_chars / max(n_tokens, 1):.2f} chars/token")
    print(f"saved {path}")
    return 0


def _cmd_encode(args) -> int:
    tok = TextTokenizer.from_pretrained(args.tokenizer)
    text = " ".join(args.text)
    if args.normalize:
        from minicosy.text.normalize import normalize_english
        text = normalize_english(text)
    ids = tok.encode(text)
    print(f"text:   {text!r}")
    print(f"ids:    {ids}")
    print(f"tokens: {[tok.id_to_token(i) for i in ids]}")
    return 0


def _cmd_normalize(args) -> int:
    from minicosy.text.normalize import normalize_english, split_sentences
    text = normalize_english(" ".join(args.text), lowercase=args.lowercase)
    print(text)
    if args.split:
        for i, piece in enumerate(split_sentences(text, max_words=args.max_words)):
            print(f"[{i}] {piece}")
    return 0


def register_cli(groups) -> None:
    """Add ``train``, ``encode`` and ``normalize`` to the ``minicosy text`` group."""
    text = groups["text"]
    p = text.add_parser("train", help="train the BPE text tokenizer")
    p.add_argument("input", nargs="?", default=str(REPO_ROOT / "data" / "corpus"),
                   help="manifest.jsonl (or its folder; uses the train split) or a .txt file")
    p.add_argument("--vocab-size", type=int, default=1024)
    p.add_argument("--min-frequency", type=int, default=2)
    p.add_argument("--no-mask-cjk", action="store_true", help="skip the one-to-many CJK masking")
    p.add_argument("--out", default=str(DEFAULT_PATH))
    p.set_defaults(func=_cmd_train)
    p = text.add_parser("encode", help="print the ids and tokens of a text")
    p.add_argument("text", nargs="+")
    p.add_argument("--tokenizer", default=None, help=f"tokenizer.json (default {DEFAULT_PATH})")
    p.add_argument("--normalize", action="store_true", help="normalise the text first")
    p.set_defaults(func=_cmd_encode)
    p = text.add_parser("normalize", help="print normalised text (and its sentence split)")
    p.add_argument("text", nargs="+")
    p.add_argument("--lowercase", action="store_true")
    p.add_argument("--split", action="store_true", help="also print the sentence split")
    p.add_argument("--max-words", type=int, default=30)
    p.set_defaults(func=_cmd_normalize)
