"""The ``minicosy`` command line: the parser, and the ``synth`` / ``stream`` commands.

Stage: system layer, on top of everything (nothing imports it but ``minicosy.__main__``).
Command groups (each stage's module registers its own subcommands):

    minicosy synth|stream              text (+ a voice prompt or an SFT speaker) → a speech file
    minicosy demo                      zero-shot synthesis with the committed checkpoints, judged
    minicosy data build|import|fixtures|info
    minicosy text train|encode|normalize
    minicosy train all|tokenizer|lm|flow|speaker|vocoder ...
    minicosy eval tts|groundtruth|wer|sim ...
    minicosy info                      versions, device

A module takes part by defining ``register_cli(groups)`` where ``groups`` maps a group name
(``"data"``, ``"text"``, ``"train"``, ``"eval"``) to an ``argparse`` sub-parsers object; each
command it adds sets ``func=handler`` with ``handler(args) -> int | None``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

# Modules that contribute commands; a module missing from an install is skipped silently.
CLI_MODULES = (
    "minicosy.data.corpus",
    "minicosy.data.loaders",
    "minicosy.text.tokenizer",
    "minicosy.judges",
    "minicosy.speech_tokenizer.train",
    "minicosy.speech_tokenizer.evaluate",
    "minicosy.speech_tokenizer.corpus_tokens",
    "minicosy.lm.train",
    "minicosy.lm.evaluate",
    "minicosy.flow.train",
    "minicosy.flow.evaluate",
    "minicosy.vocoder.train",
    "minicosy.vocoder.evaluate",
    "minicosy.system.evaluate",
    "minicosy.system.recipe",
    "minicosy.system.demo",
)

GROUPS = {
    "data": "build, import and inspect corpora",
    "text": "text normalisation and the BPE text tokenizer",
    "train": "train a stage",
    "eval": "independent judges: pocketsphinx WER, resemblyzer similarity",
}


def _info(args) -> int:
    from minicosy import __version__
    from minicosy.utils import machine_info, pick_device

    print(f"minicosy {__version__}")
    for k, v in machine_info().items():
        print(f"  {k}: {v}")
    print(f"  device: {pick_device(args.device)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minicosy", description="CosyVoice 2, small and readable.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    top = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = top.add_parser("info", help="versions and the device minicosy would use")
    info.add_argument("--device", default=None)
    info.set_defaults(func=_info)
    groups = {}
    for name, help_ in GROUPS.items():
        p = top.add_parser(name, help=help_)
        groups[name] = p.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")
        p.set_defaults(func=lambda args, p=p: (p.print_help(), 2)[1])
    groups["top"] = top
    _register_synth(top)
    for mod_name in CLI_MODULES:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            if exc.name and (mod_name == exc.name or mod_name.startswith(exc.name + ".")):
                continue
            raise
        register = getattr(mod, "register_cli", None)
        if register is not None:
            register(groups)
    parser.epilog = "commands:\n" + "\n".join(f"  {name:26s} {help_}" for name, help_ in command_table(parser))
    parser.epilog += "\n\n`minicosy COMMAND --help` explains each one's options."
    return parser


def command_table(parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    """Every runnable command (``"train tokenizer"``, ``"demo"``, ...) with its one-line help."""
    rows = []

    def walk(p, prefix):
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            return
        helps = {a.dest: a.help for a in subs[0]._choices_actions}
        for name, sub in subs[0].choices.items():
            inner = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
            if inner and inner[0].choices:
                walk(sub, prefix + [name])
            else:
                rows.append((" ".join(prefix + [name]), helps.get(name) or ""))

    walk(parser, [])
    return rows


# ----------------------------------------------------------------------------- synth, stream


def add_synth_args(parser, stream_flag: bool = True) -> None:
    """The options of ``minicosy synth`` / ``minicosy stream``."""
    parser.add_argument("--text", required=True, help="text to speak ('-': read standard input)")
    parser.add_argument("--prompt-wav", default=None, help="a 1–20 s recording of the voice to clone")
    parser.add_argument("--prompt-text", default=None, help="what the prompt says (zero-shot ICL); "
                        "without it only the flow imitates the voice")
    parser.add_argument("--speaker", default=None, help="an SFT voice the model was trained on")
    parser.add_argument("--voice", default=None, metavar="NAME", help="register --prompt-wav under NAME first "
                        "(processed once: tokens, mel, speaker vector, LM prefix) and synthesise with voice=NAME")
    parser.add_argument("--out", required=True, help="output .wav or .flac (its folder must exist)")
    if stream_flag:
        parser.add_argument("--stream", action="store_true", help="synthesise through the streaming path")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed of the LM (same seed, same audio)")
    parser.add_argument("--chunk-tokens", type=int, default=None, help="streaming: flow chunk M in tokens")
    parser.add_argument("--checkpoint", default=None, help="checkpoint folder (default data/pretrained/tiny)")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda[:N]")


def _cli_request(args):
    """Check the arguments (before any model loads); returns ``(out, partial file, model, voice, text)``."""
    from minicosy.system.frontend import VoiceReference
    from minicosy.system.model import MiniCosy

    out = Path(args.out)
    if out.suffix.lower() not in (".wav", ".flac"):
        raise ValueError(f"--out {out}: give a .wav or .flac file name.")
    if not out.parent.is_dir():
        raise ValueError(f"--out {out}: the folder {out.parent} does not exist; create it first.")
    if args.prompt_text is not None and args.prompt_wav is None:
        raise ValueError("--prompt-text needs --prompt-wav (the recording it transcribes).")
    if args.speaker is not None and args.prompt_wav is not None:
        raise ValueError("give --prompt-wav (zero-shot) or --speaker (SFT), not both.")
    if getattr(args, "voice", None) is not None and args.prompt_wav is None:
        raise ValueError("--voice NAME registers the recording of --prompt-wav under NAME: give --prompt-wav too.")
    model = MiniCosy.from_pretrained(args.checkpoint, args.device)
    voice = VoiceReference.from_file(args.prompt_wav, args.prompt_text) if args.prompt_wav else None
    if voice is not None and getattr(args, "voice", None) is not None:
        t0 = time.perf_counter()
        model.register_voice(args.voice, voice)
        print(f"registered voice {args.voice!r} in {time.perf_counter() - t0:.3f} s", flush=True)
        voice = args.voice
    partial = out.with_name(f".{out.stem}.partial{out.suffix}")  # same folder: the final rename is atomic
    return out, partial, model, voice, args.text


def cli_synth(args) -> int:
    """``minicosy synth``: the whole file, written to a temporary name, then renamed (never half written)."""
    import numpy as np
    import soundfile as sf

    from minicosy.system.frontend import SAMPLE_RATE

    out, partial, model, voice, text = _cli_request(args)
    text = sys.stdin.read() if text == "-" else text
    if getattr(args, "stream", False):
        wav = np.concatenate(list(model.stream(text, voice, args.speaker, args.seed, args.chunk_tokens)))
    else:
        wav, _ = model.synthesize(text, voice, args.speaker, args.seed)
    try:
        sf.write(str(partial), np.clip(wav, -1, 1), SAMPLE_RATE, subtype="PCM_16")
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    t = model.last_timing.summary()
    print(f"wrote {out}: {t['audio_s']:.2f} s of audio in {t['total_s']:.2f} s (RTF {t['rtf']}, "
          f"first packet {t['first_packet_s']} s)")
    return 0


def cli_stream(args) -> int:
    """``minicosy stream``: chunks are written as they come (``--text -``: lines of standard input)."""
    import numpy as np
    import soundfile as sf

    from minicosy.system.frontend import SAMPLE_RATE

    out, partial, model, voice, text = _cli_request(args)
    chunks = model.stream(iter(sys.stdin) if text == "-" else text, voice, args.speaker, args.seed, args.chunk_tokens)
    try:
        with sf.SoundFile(str(partial), "w", SAMPLE_RATE, 1, subtype="PCM_16") as f:
            for k, chunk in enumerate(chunks):
                f.write(np.clip(chunk, -1, 1))
                if k == 0:
                    t = model.last_timing
                    parts = ", ".join(f"{name} {v:.3f}" for name, v in t.first_packet.items() if name != "lm_tokens")
                    print(f"first packet after {t.first_packet_s:.3f} s ({parts} s; {t.first_packet['lm_tokens']} "
                          f"LM tokens{', LM ahead' if t.lm_ahead else ''})", flush=True)
        os.replace(partial, out)
    finally:
        chunks.close()
        partial.unlink(missing_ok=True)
    t = model.last_timing.summary()
    print(
        f"wrote {out}: {t['audio_s']:.2f} s of audio in {t['total_s']:.2f} s (RTF {t['rtf']}); LM "
        f"{t['lm_per_token_s']} s/token, flow {t['flow_per_chunk_s']} s/chunk, "
        f"vocoder {t['vocoder_per_chunk_s']} s/chunk"
    )
    return 0


def _register_synth(top) -> None:
    """``minicosy synth`` and ``minicosy stream`` (top-level commands)."""
    p = top.add_parser("synth", help="text (+ a voice prompt or an SFT speaker) → a speech file")
    add_synth_args(p)
    p.set_defaults(func=cli_synth)
    p = top.add_parser("stream", help="streaming synthesis: writes chunks as they come, prints latency")
    add_synth_args(p, stream_flag=False)
    p.set_defaults(func=cli_stream)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except ValueError as exc:  # bad input: one clear line, no traceback
        print(f"minicosy: error: {exc}", file=sys.stderr)
        return 2
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
