"""`meissonic-lite train-clip`: train the tiny CLIP text encoder on the
Shapes world (chapter 3).

    meissonic-lite train-clip --out runs/clip --steps 3000
    meissonic-lite train-clip --ship        # the package's clip.safetensors

The options are `ClipTrainConfig`'s fields, with its defaults; the
manifest records the command line as given.
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from ..models.text import WEIGHTS
from ..training.clip_train import ClipTrainConfig, train


def config_from_args(args: argparse.Namespace) -> ClipTrainConfig:
    """The parsed options as a `ClipTrainConfig`; its `command` is the
    command line `main` recorded."""
    return ClipTrainConfig(command=args.command_line,
                           **{f.name: getattr(args, f.name)
                              for f in fields(ClipTrainConfig)
                              if f.name != "command"})


def cmd_train_clip(args: argparse.Namespace) -> None:
    """Train (and with --ship, ship) the CLIP."""
    train(config_from_args(args))


def add_parser(sub) -> None:
    """Register `train-clip`; its defaults are `ClipTrainConfig`'s."""
    d = ClipTrainConfig()
    p = sub.add_parser("train-clip", help="train the tiny CLIP text "
                       "encoder on the Shapes world")
    a = p.add_argument
    a("--out", default=d.out, help="run dir (ckpt, log, data)")
    a("--steps", type=int, default=d.steps)
    a("--batch", type=int, default=d.batch)
    a("--lr", type=float, default=d.lr)
    a("--wd", type=float, default=d.wd)
    a("--warmup", type=int, default=d.warmup)
    a("--width", type=int, default=d.width, help="text and vision width")
    a("--embed-dim", type=int, default=d.embed_dim, help="pooled width E")
    a("--layers", type=int, default=d.layers, help="text layers")
    a("--vision-layers", type=int, default=d.vision_layers)
    a("--context", type=int, default=d.context)
    a("--size", type=int, default=d.size, help="image pixels")
    a("--n-images", type=int, default=d.n_images)
    a("--world-seed", type=int, default=d.world_seed)
    a("--seed", type=int, default=d.seed)
    a("--eval-every", type=int, default=d.eval_every)
    a("--ckpt-every", type=int, default=d.ckpt_every)
    a("--eval-pairs", type=int, default=d.eval_pairs,
      help="final held-out pairs")
    a("--eval-probes", type=int, default=d.eval_probes,
      help="final binding probes per swap kind")
    a("--no-bf16", dest="bf16", action="store_false")
    a("--no-mirror-negatives", dest="mirror_negatives",
      action="store_false", help="no mirrored relation images")
    a("--mirror-positives", action="store_true",
      help="also add mirrored relation scenes as positive pairs")
    a("--aux", type=float, default=d.aux,
      help="weight of the auxiliary relation/colour-layout heads (0: off)")
    a("--aux-kinds", type=float, default=d.aux_kinds,
      help="with --aux: weight of two more heads naming the kinds in a "
      "caption and in an image (0: off)")
    a("--kind-negatives", type=float, default=d.kind_negatives,
      help="share of hard negatives that change one group's kind "
      "(circle -> star) instead of a colour or the relation")
    a("--init-from", default=d.init_from,
      help="start from these CLIP weights (.safetensors), fresh optimizer")
    a("--pos-scale", type=float, default=d.pos_scale,
      help="multiply the image tower's position embedding at the start: "
      "open_clip draws it at width^-0.5 (norm ~1) while a flat-colour "
      "patch embeds at norm ~8, so position starts as a faint signal")
    a("--resume", action="store_true", help="continue from --out/ckpt.pt")
    a("--stop-at", type=int, default=d.stop_at,
      help="checkpoint and stop at this step (keeps the lr schedule)")
    a("--ship", action="store_true",
      help=f"write the package's weights ({WEIGHTS.name} + manifest)")
    p.set_defaults(func=cmd_train_clip)
