"""`meissonic-lite generate`: the README's main job, a thin face over the
pipeline (chapter 7).

    meissonic-lite generate "two red circles above a blue square" -o out.png

Defaults (steps, guidance, size, aesthetic score) are read from
`MeissonicLitePipeline.__call__`, so the CLI and the Python API always
agree. With `-n N` (N > 1) the N images of the prompt are saved as one
captioned grid PNG at the output path; `--separate` writes `out-0.png`,
`out-1.png`, ... instead. Cheap checks (steps, guidance, n, aesthetic
score, output path) run before any model loads; the pipeline checks the
size against the loaded model before any generation starts.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .common import (
    add_model_arguments,
    load_pipeline,
    out_path,
    pipeline_defaults,
)

PACKAGE_DIR = Path(__file__).resolve().parents[1]


def _check_args(args: argparse.Namespace) -> None:
    """Checks that need no model: fail before anything loads."""
    from ..sampling.decode import SamplerConfig
    SamplerConfig(steps=args.steps, guidance_scale=args.cfg)  # validates
    if args.n < 1:
        raise ValueError(f"-n must be >= 1, got {args.n}")
    if args.cols < 0:
        raise ValueError(f"--cols must be >= 1, got {args.cols}")
    if not 0 <= args.aesthetic <= 10:
        raise ValueError(f"--aesthetic must be in [0, 10], got "
                         f"{args.aesthetic}")
    for name in ("height", "width"):
        if getattr(args, name) < 1:
            raise ValueError(f"{name} must be positive, got "
                             f"{getattr(args, name)}")
    out = Path(args.output).resolve()
    if PACKAGE_DIR == out or PACKAGE_DIR in out.parents:
        raise ValueError(f"refusing to write {args.output} inside the "
                         f"package directory {PACKAGE_DIR}")


def cmd_generate(args: argparse.Namespace) -> None:
    """Generate images for one prompt and save them (or their grid)."""
    args.height = args.height or args.size
    args.width = args.width or args.size
    _check_args(args)
    out = out_path(args.output)
    t0 = time.perf_counter()
    pipe = load_pipeline(args)
    t1 = time.perf_counter()
    import torch
    images = pipe(args.prompt, negative_prompt=args.negative_prompt,
                  num_inference_steps=args.steps, guidance_scale=args.cfg,
                  height=args.height, width=args.width,
                  num_images_per_prompt=args.n,
                  generator=torch.Generator().manual_seed(args.seed),
                  aesthetic_score=args.aesthetic,
                  token_temperature=args.token_temperature)
    t2 = time.perf_counter()
    if args.n == 1:
        images[0].save(out)
        written = [out]
    elif args.separate:
        written = [out.with_name(f"{out.stem}-{i}{out.suffix}")
                   for i in range(args.n)]
        for img, p in zip(images, written):
            img.save(p)
    else:
        from ..world.grid import captioned_grid
        cap = args.prompt or "(unconditional)"
        grid = captioned_grid(images, [f"#{i} {cap}" for i in range(args.n)],
                              cols=args.cols or min(args.n, 4))
        grid.save(out)
        written = [out]
    w, h = images[0].size
    what = f"{args.n} images" if args.n > 1 else "1 image"
    for p in written:
        print(f"wrote {p}")
    print(f"{what} of {w}x{h} px, {args.steps} steps, cfg {args.cfg}, "
          f"seed {args.seed}, on {pipe.device}: {t2 - t1:.2f} s "
          f"(+ {t1 - t0:.2f} s loading)")


def add_parser(sub) -> argparse.ArgumentParser:
    """Register `meissonic-lite generate PROMPT -o out.png`."""
    d = pipeline_defaults()
    p = sub.add_parser(
        "generate", help="text to image with the shipped model",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Generate images from a prompt ('' = unconditional). "
        "With -n > 1 the images are saved as one captioned grid at the "
        "output path (or, with --separate, as OUT-0.png, OUT-1.png, ...).")
    p.add_argument("prompt", help="text prompt; '' for unconditional")
    p.add_argument("-o", "--output", default="out.png",
                   help="output .png/.jpg/.webp (overwritten if present)")
    p.add_argument("--negative-prompt", default=None,
                   help="CFG's unconditional prompt (default: empty)")
    p.add_argument("--steps", type=int, default=d["num_inference_steps"],
                   help="decoding steps")
    p.add_argument("--cfg", type=float, default=d["guidance_scale"],
                   help="classifier-free guidance scale (1 = none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=d["height"],
                   help="square side in px (a multiple of the model's)")
    p.add_argument("--height", type=int, default=None,
                   help="overrides --size")
    p.add_argument("--width", type=int, default=None,
                   help="overrides --size")
    p.add_argument("-n", type=int, default=d["num_images_per_prompt"],
                   help="images for the prompt (N > 1: one grid PNG)")
    p.add_argument("--separate", action="store_true",
                   help="with -n > 1, one file per image, not a grid")
    p.add_argument("--cols", type=int, default=0,
                   help="grid columns (default min(n, 4))")
    p.add_argument("--aesthetic", type=float, default=d["aesthetic_score"],
                   help="aesthetic-score micro-condition in [0, 10]")
    p.add_argument("--token-temperature", type=float,
                   default=d["token_temperature"],
                   help="divides the logits each token is drawn from; "
                        "below 1: fewer stray colours (chapter 7)")
    add_model_arguments(p)
    p.set_defaults(func=cmd_generate)
    return p
