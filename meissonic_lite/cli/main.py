"""The `meissonic-lite` command: one face over the package (every chapter).

Each subcommand parses arguments and calls one package function; no logic
lives here. Subcommands are registered lazily: only the module of the
command being run is imported, so `meissonic-lite world` does not load
CLIP, and `generate` does not load the trainers.

    meissonic-lite world | judge | generate | edit          (chapters 1, 7, 8)
    meissonic-lite train-vq | train-clip | extract | train | gate
    meissonic-lite eval geneval|aesthetic|sweep|phrasing|floor|edits
    meissonic-lite bench transformer|generate
    meissonic-lite diagnose PROBE CHECKPOINT
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from .common import out_path


def cmd_world(args: argparse.Namespace) -> None:
    """Render a captioned sample grid of the Shapes world."""
    from ..world.grid import sample_grid
    img = sample_grid(args.n, args.size, args.seed, args.cols)
    out = out_path(args.output)
    img.save(out)
    print(f"wrote {out} ({img.width}x{img.height})")


def cmd_judge(args: argparse.Namespace) -> None:
    """Measure the judge on fresh renders and print the figures."""
    from ..evaluation import judge_accuracy
    sizes = tuple(int(s) for s in args.sizes.split(","))
    res = judge_accuracy(args.n, sizes, args.seed)
    print(json.dumps(res, indent=1))


def add_world(sub) -> None:
    """`world`: a captioned grid of the Shapes world (chapter 1)."""
    w = sub.add_parser("world", help="render a sample grid of the world")
    w.add_argument("-o", "--output", default="world.png")
    w.add_argument("-n", type=int, default=16, help="number of samples")
    w.add_argument("--size", type=int, default=128, help="pixels")
    w.add_argument("--cols", type=int, default=4)
    w.add_argument("--seed", type=int, default=0)
    w.set_defaults(func=cmd_world)


def add_judge(sub) -> None:
    """`judge`: the referee measured on fresh renders (chapter 1)."""
    j = sub.add_parser("judge", help="measure the judge on fresh renders")
    j.add_argument("-n", type=int, default=2000)
    j.add_argument("--sizes", default="64,128,256")
    j.add_argument("--seed", type=int, default=1)
    j.set_defaults(func=cmd_judge)


def add_eval(sub) -> None:
    """`eval`: the text-to-image measurements and the edit benchmark."""
    from ..evaluation import edit_eval, t2i_eval
    e = sub.add_parser("eval", help="measure the shipped model (GenEval-"
                       "lite, sweeps, floor, phrasing, edits)")
    kinds = e.add_subparsers(dest="what", required=True)
    for what, helptext in t2i_eval.MEASURES.items():
        q = kinds.add_parser(what, help=helptext)
        t2i_eval.add_arguments(q)
        q.set_defaults(func=lambda a: t2i_eval.run(a, a.command_line))
    q = kinds.add_parser("edits", help="the edit benchmark (chapter 8)")
    edit_eval.add_arguments(q)
    q.set_defaults(func=lambda a: edit_eval.run(a, a.command_line))


def add_bench(sub) -> None:
    """`bench`: throughput, latency and memory (chapter 7)."""
    from ..bench import transformer as bench
    b = sub.add_parser("bench", help="benchmarks: transformer throughput, "
                       "generation latency and memory")
    bench.add_subcommands(b.add_subparsers(dest="cmd", required=True))


def add_diagnose(sub) -> None:
    """`diagnose`: probes of a training checkpoint (chapter 6)."""
    from ..evaluation import diagnose
    d = sub.add_parser("diagnose", help="probe a training checkpoint "
                       "(fill, prompt use, loss split)")
    diagnose.add_arguments(d)
    d.set_defaults(func=lambda a: diagnose.run(a, a.command_line))


# name -> (module, function that adds its parser, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "world": (".main", "add_world", "render a sample grid"),
    "judge": (".main", "add_judge", "measure the judge"),
    "train-vq": ("..training.vq_train", "add_parser",
                 "train the VQ tokenizer"),
    "extract": ("..training.token_cache", "add_parser",
                "tokenize a training set"),
    "train-clip": ("..training.clip_train", "add_parser",
                   "train the tiny CLIP"),
    "train": ("..training.stages", "add_parser", "train the transformer"),
    "gate": ("..training.gates", "add_parser", "train and judge a gate"),
    "edit": (".edit", "add_parser", "inpaint/outpaint/img2img"),
    "generate": (".generate", "add_parser", "text to image"),
    "eval": (".main", "add_eval", "measure the shipped model"),
    "bench": (".main", "add_bench", "benchmarks"),
    "diagnose": (".main", "add_diagnose", "probe a checkpoint"),
}


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


if __name__ == "__main__":
    main()
