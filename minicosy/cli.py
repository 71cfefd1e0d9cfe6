"""The ``minicosy`` command line.

Command groups (each stage's module registers its own subcommands):

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
import sys

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
    "minicosy.pipeline",
    "minicosy.tts_eval",
    "minicosy.train_all",
    "minicosy.demo",
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
