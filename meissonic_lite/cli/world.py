"""`meissonic-lite world` and `meissonic-lite judge`: the Shapes world and
its referee (chapter 1).

    meissonic-lite world -o world.png -n 16 --size 128
    meissonic-lite judge -n 2000
"""

from __future__ import annotations

import argparse
import json

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
