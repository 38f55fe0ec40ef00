"""The `meissonic-lite` command: one face over the package (every chapter).

Each subcommand parses its arguments and calls package functions that
take plain arguments or config dataclasses; argparse lives in this folder
only. Subcommands are registered lazily: only the file of the command
being run is imported, so `meissonic-lite world` does not load CLIP, and
`generate` does not load the trainers.

    meissonic-lite world | judge | generate | edit          (chapters 1, 7, 8)
    meissonic-lite train-vq | train-clip | extract | train | gate
    meissonic-lite eval geneval|aesthetic|sweep|phrasing|floor|edits
    meissonic-lite bench transformer|generate
    meissonic-lite diagnose PROBE CHECKPOINT
"""

from __future__ import annotations

import argparse
import importlib
import sys

# One row per subcommand: its name, the file in this folder and the
# function there that adds its parser, and its one-line help.
_TABLE = """
world       .world       add_world    render a sample grid
judge       .world       add_judge    measure the judge
train-vq    .train_vq    add_parser   train the VQ tokenizer
extract     .extract     add_parser   tokenize a training set
train-clip  .train_clip  add_parser   train the tiny CLIP
train       .train       add_parser   train the transformer
gate        .gate        add_parser   train and judge a gate
edit        .edit        add_parser   inpaint/outpaint/img2img
generate    .generate    add_parser   text to image
eval        .eval        add_parser   measure the shipped model
bench       .bench       add_parser   benchmarks
diagnose    .diagnose    add_parser   probe a checkpoint
"""
# name -> (module, function, help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    name: (module, adder, " ".join(helptext))
    for name, module, adder, *helptext in map(str.split,
                                              _TABLE.strip().splitlines())}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser. With `only`, that subcommand is built in full and the
    others as names with their help (nothing else imported)."""
    p = argparse.ArgumentParser(
        prog="meissonic-lite",
        description="Meissonic, built small: world, models, sampling.")
    sub = p.add_subparsers(dest="command", required=True)
    for name, (module, adder, helptext) in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=helptext)
        else:
            getattr(importlib.import_module(module, __package__),
                    adder)(sub)
    return p


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `meissonic-lite` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(first if first in COMMANDS else None
                        ).parse_args(argv)
    args.command_line = " ".join(["meissonic-lite"] + argv)  # for records
    try:
        args.func(args)
    except ValueError as e:
        sys.exit(f"error: {e}")

