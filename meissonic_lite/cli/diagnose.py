"""`meissonic-lite diagnose PROBE CHECKPOINT`: probes of a training
checkpoint (chapter 6), printed as JSON that records the command.

    meissonic-lite diagnose fill runs/t2i/stage3/latest.pt --n 64
"""

from __future__ import annotations

import argparse

from ..evaluation import diagnose
from ..utils import report_json


def cmd_diagnose(args: argparse.Namespace) -> None:
    """Run one probe; print (and with --out save) its JSON."""
    report_json(diagnose.probe(args.probe, args.checkpoint, args.vq, args.n,
                               args.command_line), args.out)


def add_parser(sub) -> None:
    """`diagnose`: the probe, the checkpoint and the options."""
    p = sub.add_parser("diagnose", help="probe a training checkpoint "
                       "(fill, prompt use, loss split)")
    p.add_argument("probe", choices=sorted(diagnose.PROBES))
    p.add_argument("checkpoint", help="trainer checkpoint (latest.pt) or "
                   "transformer .safetensors")
    p.add_argument("--vq", default=None, help="VQ weights the model was "
                   "trained on (default: the shipped one)")
    p.add_argument("--n", type=int, default=64, help="held-out images")
    p.add_argument("--out", default=None, help="also write the JSON here")
    p.set_defaults(func=cmd_diagnose)
