"""The corpus's speech tokens, encoded once with the frozen tokenizer (``minicosy data tokens``).

The LM learns to predict these tokens and the flow learns to turn them into mel, so both read
the same cache: ``<corpus>/tokens/speech_tokens.pt`` holds ``{utterance id: int16 ids (T,)}``
together with the checksum of the tokenizer files that made them. A cache made by another
tokenizer is refused (:func:`load_token_cache` raises), so a retrained tokenizer can never be
mixed silently with models trained on its predecessor's tokens. The build is resumable: it
saves every few hundred utterances and skips the ones already encoded by the same tokenizer.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import torch

from minicosy.data.manifest import manifest_root, read_manifest
from minicosy.speech_tokenizer.model import SAMPLE_RATE, SpeechTokenizer
from minicosy.utils import DEFAULT_CHECKPOINT, DEFAULT_CORPUS_DIR, checkpoint_stem

CACHE_NAME = "speech_tokens.pt"


def tokenizer_checksum(tokenizer: str | Path | None = None) -> str:
    """SHA-256 (first 16 hex digits) over the tokenizer's ``.json`` and ``.safetensors`` files."""
    stem = checkpoint_stem(DEFAULT_CHECKPOINT if tokenizer is None else tokenizer, "speech_tokenizer")
    h = hashlib.sha256()
    for suffix in (".json", ".safetensors"):
        path = stem.with_suffix(suffix)
        if not path.is_file():
            raise ValueError(f"speech tokenizer file missing: {path}.")
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def cache_path(corpus: str | Path = DEFAULT_CORPUS_DIR) -> Path:
    root = manifest_root(corpus)
    return Path(root) / "tokens" / CACHE_NAME


def build_token_cache(corpus: str | Path = DEFAULT_CORPUS_DIR, tokenizer: str | Path | None = None,
                      device=None, batch: int = 16, save_every: int = 400, progress: bool = True) -> Path:
    """Encode every utterance of ``corpus`` with ``tokenizer`` (default: the committed one).

    Returns:
        the cache file's path.
    """
    from tqdm import tqdm

    from minicosy.audio import load_audio

    checksum = tokenizer_checksum(tokenizer)
    path = cache_path(corpus)
    rows = read_manifest(corpus)
    root = manifest_root(corpus)
    tokens: dict[str, torch.Tensor] = {}
    if path.is_file():
        old = torch.load(path)
        if old.get("checksum") == checksum:
            tokens = old["tokens"]
    model = SpeechTokenizer.from_pretrained(tokenizer, device=device)
    todo = [u for u in rows if u.id not in tokens]
    bar = tqdm(total=len(todo), desc="speech tokens", unit="utt", file=sys.stderr, disable=not progress)
    t0, since_save = time.time(), 0

    def save():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        torch.save({"checksum": checksum,
                    "tokenizer": str(checkpoint_stem(tokenizer or DEFAULT_CHECKPOINT, "speech_tokenizer")),
                    "codebook_size": model.codebook_size, "tokens": tokens}, tmp)
        tmp.replace(path)

    for i in range(0, len(todo), batch):
        group = todo[i: i + batch]
        wavs = [load_audio(u.audio_path(root), SAMPLE_RATE) for u in group]
        for u, ids in zip(group, model.encode_batch(wavs, SAMPLE_RATE)):
            tokens[u.id] = ids.to(torch.int16)
        bar.update(len(group))
        since_save += len(group)
        if since_save >= save_every:
            save()
            since_save = 0
    bar.close()
    save()
    if progress:
        print(f"{len(tokens)} utterances tokenised ({len(todo)} new) in {time.time() - t0:.1f} s → {path}",
              file=sys.stderr)
    return path


def load_token_cache(corpus: str | Path = DEFAULT_CORPUS_DIR, tokenizer: str | Path | None = None,
                     check: bool = True) -> dict[str, torch.Tensor]:
    """``{utterance id: LongTensor (T,)}`` from the cache.

    Raises:
        ValueError: no cache yet, or (``check``) it was made by a different tokenizer.
    """
    path = cache_path(corpus)
    if not path.is_file():
        raise ValueError(f"no speech-token cache at {path}: run `minicosy data tokens --corpus {corpus}`.")
    data = torch.load(path)
    if check and data.get("checksum") != tokenizer_checksum(tokenizer):
        raise ValueError(f"{path} was made by another speech tokenizer (checksum {data.get('checksum')}); "
                         f"rebuild it with `minicosy data tokens --corpus {corpus}`.")
    return {k: v.long() for k, v in data["tokens"].items()}


def _cmd_tokens(args) -> int:
    path = build_token_cache(args.corpus, args.tokenizer, args.device, progress=not args.no_progress)
    print(f"wrote {path}")
    return 0


def register_cli(groups) -> None:
    p = groups["data"].add_parser("tokens", help="encode every corpus utterance with the frozen speech tokenizer "
                                  "(cache shared by the LM and the flow)")
    p.add_argument("--corpus", default=str(DEFAULT_CORPUS_DIR), help="corpus folder or manifest.jsonl")
    p.add_argument("--tokenizer", default=None, help="tokenizer stem (default: the committed tiny FSQ)")
    p.add_argument("--device", default=None)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_tokens)
