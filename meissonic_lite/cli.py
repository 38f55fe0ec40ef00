"""The `meissonic-lite` command: thin faces over the package.

Each subcommand parses arguments and calls one package function; no logic
lives here. Later chapters add subcommands (train-vq, generate, edit, ...).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _out_path(path: str) -> Path:
    p = Path(path)
    if p.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise SystemExit(f"error: output {path!r} must end in .png, .jpg "
                         "or .webp")
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def cmd_world(args: argparse.Namespace) -> None:
    """Render a captioned sample grid of the Shapes world."""
    from .world.grid import sample_grid
    img = sample_grid(args.n, args.size, args.seed, args.cols)
    out = _out_path(args.output)
    img.save(out)
    print(f"wrote {out} ({img.width}x{img.height})")


def cmd_judge(args: argparse.Namespace) -> None:
    """Measure the judge on fresh renders and print the figures."""
    from .evaluation import judge_accuracy
    sizes = tuple(int(s) for s in args.sizes.split(","))
    res = judge_accuracy(args.n, sizes, args.seed)
    print(json.dumps(res, indent=1))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    p = argparse.ArgumentParser(
        prog="meissonic-lite",
        description="Meissonic, built small: world, models, sampling.")
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("world", help="render a sample grid of the world")
    w.add_argument("-o", "--output", default="world.png")
    w.add_argument("-n", type=int, default=16, help="number of samples")
    w.add_argument("--size", type=int, default=128, help="pixels")
    w.add_argument("--cols", type=int, default=4)
    w.add_argument("--seed", type=int, default=0)
    w.set_defaults(func=cmd_world)
    j = sub.add_parser("judge", help="measure the judge on fresh renders")
    j.add_argument("-n", type=int, default=2000)
    j.add_argument("--sizes", default="64,128,256")
    j.add_argument("--seed", type=int, default=1)
    j.set_defaults(func=cmd_judge)
    # Subcommands that live beside the code they drive.
    from . import clip_train, editing_cli, generate_cli, token_cache, vq_train
    from .training import gates, stages
    vq_train.add_parser(sub)          # train-vq
    token_cache.add_parser(sub)       # extract
    clip_train.add_parser(sub)        # train-clip
    stages.add_parser(sub)            # train
    gates.add_parser(sub)             # gate
    editing_cli.add_parser(sub)       # edit
    generate_cli.add_parser(sub)      # generate
    return p


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `meissonic-lite` console script."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except ValueError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
