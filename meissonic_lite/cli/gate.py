"""`meissonic-lite gate`: train and judge a learnability gate on a curve
(chapter 6).

    meissonic-lite gate g0 --cond onehot --steps 400
    meissonic-lite gate g0 --out runs/gate_g0 --sweep 16,3,4.5
"""

from __future__ import annotations

import argparse

from ..training.gates import (
    JUDGE_SEED,
    GateConfig,
    export_gate,
    run_gate,
    sampler_sweep,
)


def _sweep_setting(text: str, every: list[str]) -> tuple:
    """'16,3,4.5', '16,3,0,halton' or '16,3,4.5,confidence,0.5' ->
    (16.0, 3.0, 4.5[, order[, token temperature]])."""
    parts = text.split(",")
    try:
        if len(parts) not in (3, 4, 5):
            raise ValueError
        nums = tuple(float(v) for v in parts[:3])
        tail = tuple(parts[3:4]) + tuple(float(v) for v in parts[4:])
    except ValueError as e:
        raise ValueError("--sweep takes STEPS,CFG,TEMP[,ORDER[,TOKEN_TEMP]]"
                         f" settings, got {every}") from e
    return nums + tail


def cmd_gate(args: argparse.Namespace) -> None:
    """Train and judge the gate, or (--sweep) judge its finished model,
    or (--export) write its latest checkpoint as a resume point."""
    if args.export:
        notes = export_gate(args.out, args.export, args.command_line)
        print(f"resume point {args.export}: {notes['images_seen']} images "
              f"seen; continue with --init {args.export}")
        return
    if args.sweep:
        settings = [_sweep_setting(s, args.sweep) for s in args.sweep]
        sampler_sweep(args.out, settings, args.command_line,
                      args.sweep_seed, args.sweep_weights)
        return
    cfg = GateConfig(**{k: getattr(args, k) for k in
                        GateConfig.__dataclass_fields__})
    run_gate(cfg, args.out, resume=args.resume, command=args.command_line)


def add_parser(sub) -> None:
    """Register `gate`; its defaults are `GateConfig`'s."""
    d = GateConfig()
    g = sub.add_parser("gate", help="train and judge a learnability gate "
                       "(G0: one object, kind x colour) on a curve")
    g.add_argument("gate", nargs="?", default=d.gate, choices=["g0"])
    g.add_argument("--out", default="runs/gate_g0")
    for name in ("size", "n_images", "steps", "batch_size", "warmup", "align",
                 "text_len", "heads", "conv_blocks", "compress_factor",
                 "eval_every", "eval_seeds", "sample_steps", "seed"):
        g.add_argument("--" + name.replace("_", "-"), type=int,
                       default=getattr(d, name))
    for name in ("lr", "blob_masks", "cfg_dropout", "guidance", "ema",
                 "beta2", "label_smoothing", "token_temperature"):
        g.add_argument("--" + name.replace("_", "-"), type=float,
                       default=getattr(d, name))
    g.add_argument("--gumbel", type=float, nargs=2, default=d.gumbel)
    g.add_argument("--schedule", default=d.schedule,
                   choices=["constant", "cosine"])
    g.add_argument("--cond", default=d.cond, choices=["clip", "onehot"])
    g.add_argument("--tokens", default=d.tokens, choices=["vq", "flat"])
    g.add_argument("--tokenizer", default=d.tokenizer, metavar="WEIGHTS",
                   help="VQ weights to tokenize with (default: the "
                   "shipped f=4 tokenizer), e.g. an f=8 one for 128 px "
                   "at 8x8 positions")
    g.add_argument("--no-compress", dest="compress", action="store_false")
    g.add_argument("--fp32", dest="bf16", action="store_false",
                   help="train in fp32 even where the CPU has native bf16 "
                   "(at the lite width fp32 measured faster there)")
    g.add_argument("--resume", action="store_true")
    g.add_argument("--init", default=d.init, metavar="PATH",
                   help="start from this resume point (fresh optimizer "
                   "with --warmup; images seen carry on; a 2x2 point is "
                   "widened to a larger --compress-factor)")
    g.add_argument("--export", metavar="PATH",
                   help="instead of training, write --out's latest "
                   "checkpoint as a resume point (fp16, one file)")
    g.add_argument("--order", default=d.order,
                   choices=["confidence", "random", "halton"])
    g.add_argument("--sweep", nargs="+",
                   metavar="STEPS,CFG,TEMP[,ORDER[,TOKEN_TEMP]]",
                   help="instead of training, judge --out's finished model"
                   " under these sampler settings (e.g. 16,3,4.5 or "
                   "16,3,0,halton or 16,3,4.5,confidence,0.5)")
    g.add_argument("--sweep-seed", type=int, default=JUDGE_SEED,
                   help="the sampler's seed in --sweep (another seed draws"
                   " fresh samples of the same captions)")
    g.add_argument("--sweep-weights", default="model",
                   choices=["model", "model_ema"],
                   help="judge the raw or the averaged (EMA) weights")
    g.set_defaults(func=cmd_gate)
