"""How good can an iSTFT head that borrows the harmonic source's phase be?  (docs/paper_vs_code.md §2 "Vocoder")

Before training anything: take test recordings, build the NSF harmonic source of
:class:`minicosy.vocoder.HarmonicSource` from their pYIN F0, and resynthesise each recording from
*its own* STFT magnitude with the *source's* phase (``iSTFT(|X| · e^{i∠S})``), at several
STFT sizes. The judges (pocketsphinx WER, resemblyzer similarity, log-mel L1) then say what the
tiny preset's head (``VocoderConfig.tiny()``: 480 points, hop 120, ``source_phase=True``) could
reach if the network learned the magnitude perfectly. Griffin-Lim (32 iterations, from the mel)
and the recordings are measured on the same utterances.

    python scripts/vocoder_head_ceiling.py [--per-voice 2] [--out results/vocoder_head_ceiling.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from minicosy.utils import DEFAULT_CORPUS_DIR, REPO_ROOT, machine_info


def source_phase_resynthesis(wav: np.ndarray, f0: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """``iSTFT(|STFT(wav)| · e^{i∠STFT(source(f0))})`` with a Hann window; same length as ``wav``."""
    from minicosy.vocoder.hift import HarmonicSource, VocoderConfig

    src = HarmonicSource(VocoderConfig.tiny()).eval()
    with torch.no_grad():
        src.merge.weight.fill_(1.0 / src.n)  # an untrained, even mix of the harmonics
        src.merge.bias.zero_()
        s, _ = src(torch.from_numpy(f0).float()[None])
        win = torch.hann_window(n_fft)
        x = torch.from_numpy(wav).float()
        S = torch.stft(s[0, 0], n_fft, hop, n_fft, window=win, return_complex=True)
        X = torch.stft(x, n_fft, hop, n_fft, window=win, return_complex=True)
        y = torch.istft(torch.polar(X.abs(), torch.angle(S)), n_fft, hop, n_fft, window=win, length=x.numel())
    return y.numpy()


def main(argv=None) -> int:
    import librosa

    from minicosy import judges
    from minicosy.audio import load_audio, log_mel
    from minicosy.data.manifest import manifest_root, read_manifest
    from minicosy.vocoder.griffinlim import griffin_lim
    from minicosy.vocoder.train import HELD_OUT

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", default=str(DEFAULT_CORPUS_DIR / "manifest.jsonl"))
    ap.add_argument("--per-voice", type=int, default=2)
    ap.add_argument("--sizes", default="240:60,480:120,960:240", help="n_fft:hop pairs")
    ap.add_argument("--out", default=str(REPO_ROOT / "results" / "vocoder_head_ceiling.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if not Path(args.manifest).is_file():
        raise SystemExit(f"no corpus manifest at {args.manifest}: build it with `minicosy data build`.")
    root = manifest_root(args.manifest)
    by_voice: dict = {}
    for u in read_manifest(args.manifest, split="test"):
        by_voice.setdefault(u.voice, []).append(u)
    utts = [u for v in sorted(by_voice) for u in sorted(by_voice[v], key=lambda u: u.id)[: args.per_voice]]
    sizes = [tuple(int(x) for x in s.split(":")) for s in args.sizes.split(",")]
    systems = {"recording": [], "griffin_lim_32": []} | {f"source_phase_{n}_{h}": [] for n, h in sizes}
    t0 = time.time()
    for u in utts:
        wav = load_audio(u.audio_path(root), 24000)
        wav = wav[: wav.size // 480 * 480]
        mel = log_mel(torch.from_numpy(wav)[None])
        f0, _, _ = librosa.pyin(wav.astype(np.float64), fmin=50, fmax=500, sr=24000, frame_length=1920, hop_length=480)
        f0 = np.nan_to_num(f0)[: mel.shape[-1]]
        f0 = np.pad(f0, (0, mel.shape[-1] - f0.size))
        systems["recording"].append(wav)
        systems["griffin_lim_32"].append(griffin_lim(mel, 32)[0].numpy())
        for n, h in sizes:
            systems[f"source_phase_{n}_{h}"].append(source_phase_resynthesis(wav, f0, n, h))
    texts = [u.text for u in utts]
    held = [u.voice in HELD_OUT for u in utts]
    result = {"split": "test", "utterances": len(utts), "per_voice": args.per_voice, "systems": {}}
    for name, wavs in systems.items():
        hyp = judges.intelligibility(wavs, texts, 24000)["hypotheses"]
        row = {"wer": judges.wer(texts, hyp),
               "wer_train_voices": judges.wer([t for t, h in zip(texts, held) if not h],
                                              [y for y, h in zip(hyp, held) if not h]),
               "wer_held_out_voices": judges.wer([t for t, h in zip(texts, held) if h],
                                                 [y for y, h in zip(hyp, held) if h])}
        if name != "recording":
            row["similarity"] = float(np.mean([judges.speaker_similarity(w, r, 24000)
                                               for w, r in zip(wavs, systems["recording"])]))
            row["mel_l1"] = float(np.mean([judges.mel_l1(w, r, 24000) for w, r in zip(wavs, systems["recording"])]))
        result["systems"][name] = row
    rec = result["systems"]["recording"]["wer"]
    for row in result["systems"].values():
        row["wer_ratio"] = row["wer"] / rec if rec else None
    result["seconds"] = round(time.time() - t0, 1)
    result["machine"] = machine_info()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    json.dump(result["systems"], sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
