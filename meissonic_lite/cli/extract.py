"""`meissonic-lite extract`: tokenize a stage's training set once into a
token cache (chapter 2).

    meissonic-lite extract --stage 1 --out cache/stage1
"""

from __future__ import annotations

import argparse

from ..models.vq import from_pretrained
from ..training.token_cache import extract


def cmd_extract(args: argparse.Namespace) -> None:
    """Extract the cache and say where it went."""
    vq = from_pretrained(args.weights) if args.weights else None
    out = args.out or f"cache/stage{args.stage}"
    meta = extract(out, args.stage, args.n, args.seed, args.caption_style,
                   args.p_clean, not args.clean, vq, args.batch, args.bf16)
    print(f"wrote {meta['count']} token grids {meta['grid']}x"
          f"{meta['grid']} ({meta['size']} px) to {out} in "
          f"{meta['wall_time_s']} s")


def add_parser(sub) -> None:
    """Register `extract`."""
    p = sub.add_parser("extract", help="tokenize a stage's training set "
                       "once into a token cache")
    p.add_argument("--stage", type=int, default=1, choices=(1, 2, 3, 4))
    p.add_argument("-n", type=int, default=20000, help="images")
    p.add_argument("--out", default=None,
                   help="cache dir (default ./cache/stage<N>)")
    p.add_argument("--seed", type=int, default=0, help="world seed")
    p.add_argument("--caption-style", default="mixed",
                   choices=("short", "long", "mixed"))
    p.add_argument("--p-clean", type=float, default=0.3)
    p.add_argument("--clean", action="store_true",
                   help="no degradations at all")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--bf16", action="store_true",
                   help="bf16 autocast encoder (faster, a few tokens "
                   "may differ)")
    p.add_argument("--weights", default=None,
                   help="VQ safetensors (default: the shipped one)")
    p.set_defaults(func=cmd_extract)
