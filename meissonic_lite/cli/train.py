"""`meissonic-lite train`: the four progressive stages, shipping and
re-measuring the shipped model (chapter 6).

    meissonic-lite train --stage all --ship
    meissonic-lite train --stage 3 --resume
    meissonic-lite train --remeasure
"""

from __future__ import annotations

import argparse
import json

from ..training.ship import remeasure, ship
from ..training.stages import run_stage
from .common import add_switches


def cmd_train(args: argparse.Namespace) -> None:
    """Train the stages asked for; ship or re-measure as asked."""
    if args.remeasure:
        m = remeasure()
        print(json.dumps(m["final_metrics"], indent=1))
        return
    if args.ship_only:
        m = ship(args.runs, evaluate=not args.skip_eval, vq=args.vq)
        print(json.dumps(m.get("final_metrics"), indent=1))
        return
    stages = [1, 2, 3, 4] if args.stage == "all" else [int(args.stage)]
    for s in stages:
        m = run_stage(s, args.runs, args.caches, args.steps,
                      args.resume, args.seed, args.device,
                      vq_path=args.vq, command=args.command_line)
        print(f"stage {s}: {m['steps']} steps in {m['wall_time_s']} s,"
              f" loss {m['final_metrics']['train_loss_last20']:.3f}")
    if args.ship:
        m = ship(args.runs, evaluate=not args.skip_eval, vq=args.vq)
        print(json.dumps(m.get("final_metrics"), indent=1))


def add_parser(sub) -> None:
    """Register `train` (one stage, or all four)."""
    p = sub.add_parser("train", help="train the text-to-image transformer"
                       " (the four progressive stages)")
    p.add_argument("--stage", default="all",
                   choices=("1", "2", "3", "4", "all"))
    p.add_argument("--steps", type=int, default=None,
                   help="override the stage's step count")
    p.add_argument("--runs", default="runs/t2i", help="run directory")
    p.add_argument("--caches", default="cache", help="token caches")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--vq", default=None, help="tokenizer weights to train "
                   "on, and with --ship/--ship-only to ship with the model "
                   "(default: the shipped VQ)")
    add_switches(
        p,
        ship="after training, ship stage 4 as the package's default model "
        "(measures it with the judge and writes the manifest)",
        ship_only="ship the stages already trained in --runs",
        skip_eval="with --ship/--ship-only: copy files, measure later",
        remeasure="measure the shipped model again (after a judge or VQ "
        "decoder change) and rewrite its manifest's metrics")
    p.set_defaults(func=cmd_train)
