"""`meissonic-lite eval`: the text-to-image measurements (chapter 7) and
the edit benchmark (chapter 8), printed as JSON that records the command.

    meissonic-lite eval geneval --limit 64
    meissonic-lite eval sweep --steps 8,16 --cfg 2,3
    meissonic-lite eval edits --n 30 --out edit_bench.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..editing import REMASK
from ..evaluation import edit_eval, t2i_eval
from ..sampling.pipeline import (
    DEFAULT_BLOB_NOISE,
    DEFAULT_GUIDANCE,
    DEFAULT_STEPS,
)
from ..utils import atomic_write_bytes, report_json


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def cmd_t2i(args: argparse.Namespace) -> None:
    """Run one text-to-image measurement; print (and with --out save) it."""
    res = t2i_eval.measure(
        args.what, [int(s) for s in args.steps.split(",")],
        _floats(args.cfg), _floats(args.blob), _floats(args.token_temp),
        args.transformer, args.limit, args.seed, args.command_line)
    report_json(res, args.out)


def cmd_edits(args: argparse.Namespace) -> None:
    """Run the edit benchmark; print (and with --out save) its JSON."""
    rep = edit_eval.run_benchmark(args.n, args.seed,
                                  tuple(args.tasks.split(",")), args.steps,
                                  args.cfg, args.strength, args.remask,
                                  args.command_line)
    text = json.dumps(rep, indent=1, default=float)
    print(text)
    if args.out:
        atomic_write_bytes(Path(args.out), (text + "\n").encode())


def add_t2i_arguments(p: argparse.ArgumentParser) -> None:
    """The options of every text-to-image measurement (the measurement
    itself is the `eval` subcommand's name)."""
    p.add_argument("--steps", default=str(DEFAULT_STEPS),
                   help="comma list for sweep (default: the pipeline's)")
    p.add_argument("--cfg", default=str(DEFAULT_GUIDANCE),
                   help="comma list for sweep (default: the pipeline's)")
    p.add_argument("--blob", default=str(DEFAULT_BLOB_NOISE),
                   help="sampler blob_noise, comma list for sweep")
    p.add_argument("--token-temp", default="1.0",
                   help="sampler token_temperature, comma list for sweep")
    p.add_argument("--transformer", default=None,
                   help="transformer weights (default: the shipped ones)")
    p.add_argument("--limit", type=int, default=None,
                   help="evaluate every k-th prompt, this many in all")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the JSON here")


def add_edit_arguments(p: argparse.ArgumentParser) -> None:
    """The edit benchmark's options."""
    p.add_argument("--n", type=int, default=40, help="edits per task")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    p.add_argument("--cfg", type=float, default=DEFAULT_GUIDANCE)
    p.add_argument("--strength", type=float, default=0.5)
    p.add_argument("--remask", default="confidence", choices=REMASK)
    p.add_argument("--tasks", default=",".join(edit_eval.TASKS))
    p.add_argument("--out", default=None, help="write the JSON here")


def add_parser(sub) -> None:
    """`eval`: the text-to-image measurements and the edit benchmark."""
    e = sub.add_parser("eval", help="measure the shipped model (GenEval-"
                       "lite, sweeps, floor, phrasing, edits)")
    kinds = e.add_subparsers(dest="what", required=True)
    for what, helptext in t2i_eval.MEASURES.items():
        q = kinds.add_parser(what, help=helptext)
        add_t2i_arguments(q)
        q.set_defaults(func=cmd_t2i)
    q = kinds.add_parser("edits", help="the edit benchmark (chapter 8)")
    add_edit_arguments(q)
    q.set_defaults(func=cmd_edits)
