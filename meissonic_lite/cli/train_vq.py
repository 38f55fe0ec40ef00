"""`meissonic-lite train-vq`: train the VQ image tokenizer, and with
--export measure and ship it (chapter 2).

    meissonic-lite train-vq --out runs/vq --export
    meissonic-lite train-vq --finetune-decoder runs/vq.safetensors --export

The options are `VQTrainConfig`'s fields, with its defaults. The manifest
records the run as the command that repeats it: `meissonic-lite train-vq`
and the options that differ from their defaults.
"""

from __future__ import annotations

import argparse
from dataclasses import fields, replace

from ..training.vq_train import DECODER_LOSSES, VQTrainConfig, run

# flags that switch a default-True option off
NEGATIONS = {"bf16": "--no-bf16", "fp16": "--fp32"}


def command_line(cfg: VQTrainConfig) -> str:
    """The run as a command: the options that differ from the defaults,
    in the order the parser lists them."""
    default = VQTrainConfig()
    parts = ["meissonic-lite", "train-vq"]
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        if f.name == "command" or v == getattr(default, f.name):
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(v, bool):
            parts.append(NEGATIONS.get(f.name, flag))
        else:
            parts += [flag, str(v)]
    return " ".join(parts)


def config_from_args(args: argparse.Namespace) -> VQTrainConfig:
    """The parsed options as a `VQTrainConfig` that records its command."""
    cfg = VQTrainConfig(**{f.name: getattr(args, f.name)
                           for f in fields(VQTrainConfig)
                           if f.name != "command"})
    return replace(cfg, command=command_line(cfg))


def cmd_train_vq(args: argparse.Namespace) -> None:
    """Train (and with --export ship) the tokenizer."""
    run(config_from_args(args))


def add_parser(sub) -> None:
    """Register `train-vq`; its defaults are `VQTrainConfig`'s."""
    d = VQTrainConfig()
    p = sub.add_parser("train-vq", help="train the VQ image tokenizer")
    p.add_argument("--out", default=d.out, help="run dir (ckpt, log)")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--crop", type=int, default=d.crop,
                   help="training crop px (0: the smallest ladder size)")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--factor", type=int, default=d.factor)
    p.add_argument("--num-codes", type=int, default=d.num_codes)
    p.add_argument("--code-dim", type=int, default=d.code_dim)
    p.add_argument("--channels", default=d.channels)
    p.add_argument("--encoder", default=d.encoder, choices=("patch", "conv"),
                   help="patch: each token from its own f x f pixels only "
                   "(the shipped kind); conv: VQGAN-like encoder (3x3 "
                   "convs, GroupNorm)")
    p.add_argument("--pool", type=int, default=d.pool,
                   help="training renders per ladder size")
    p.add_argument("--p-clean", type=float, default=d.p_clean,
                   help="share of clean renders (1.0: no degradations)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--no-bf16", dest="bf16", action="store_false")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    p.add_argument("--ckpt-every", type=int, default=d.ckpt_every)
    p.add_argument("--export", action="store_true",
                   help="write weights + manifest after training")
    p.add_argument("--weights", default=d.weights)
    p.add_argument("--fp32", dest="fp16", action="store_false",
                   help="ship fp32 weights instead of fp16")
    p.add_argument("--final-n", type=int, default=d.final_n)
    p.add_argument("--final-judge", type=int, default=d.final_judge)
    p.add_argument("--final-usage", type=int, default=d.final_usage)
    p.add_argument("--finetune-decoder", default=d.finetune_decoder,
                   metavar="WEIGHTS",
                   help="start from these VQ weights and train only the "
                   "decoder (see --decoder-loss); tokens stay identical")
    p.add_argument("--decoder-loss", default=d.decoder_loss,
                   choices=tuple(DECODER_LOSSES),
                   help="decoder fine-tune loss: 'sharp' = MSE + L1 + edge "
                   "L1, 'mse' = MSE only")
    p.set_defaults(func=cmd_train_vq)
