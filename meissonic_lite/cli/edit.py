"""`meissonic-lite edit`: inpaint, outpaint or img2img one image file
(chapter 8).

    meissonic-lite edit --mode inpaint --image in.png --box 8,8,40,40 \\
        --prompt "a blue circle on white" -o out.png
    meissonic-lite edit --mode outpaint --image in.png --extend 0,32,0,0 \\
        --prompt "..." -o wide.png
    meissonic-lite edit --mode img2img --image in.png --strength 0.6 \\
        --prompt "..." -o out.png

A thin face over `meissonic_lite.editing`. Argument checks that need no
model run before any model loads; the input file is never overwritten.
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

SIDES = ("left", "right", "top", "bottom")


def _ints(text: str, n: int, what: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in text.split(","))
    except ValueError:
        vals = ()
    if len(vals) != n:
        raise ValueError(f"{what} must be {n} comma-separated integers, "
                         f"got {text!r}")
    return vals


def _check_args(args: argparse.Namespace) -> dict:
    """Mode-specific checks before anything loads; returns edit kwargs."""
    src, out = Path(args.image), Path(args.output)
    if not src.is_file():
        raise ValueError(f"input image {args.image!r} not found")
    if out.resolve() == src.resolve() or (
            out.exists() and out.samefile(src)):
        raise ValueError("refusing to overwrite the input image: choose "
                         "another -o")
    given = {"--mask": args.mask, "--box": args.box,
             "--extend": args.extend, "--strength": args.strength,
             "--remask": args.remask}
    allowed = {"inpaint": ("--mask", "--box"), "outpaint": ("--extend",),
               "img2img": ("--strength", "--remask")}[args.mode]
    extra = [k for k, v in given.items() if v is not None
             and k not in allowed]
    if extra:
        raise ValueError(f"{', '.join(extra)} do(es) not apply to "
                         f"--mode {args.mode}")
    kw: dict = {}
    if args.mode == "inpaint":
        if (args.mask is None) == (args.box is None):
            raise ValueError("inpaint needs exactly one of --mask or --box")
        if args.box is not None:
            kw["box"] = _ints(args.box, 4, "--box")
        elif not Path(args.mask).is_file():
            raise ValueError(f"mask file {args.mask!r} not found")
        kw.update(rule=args.rule, dilate=args.dilate)
    elif args.mode == "outpaint":
        if args.extend is None:
            raise ValueError("outpaint needs --extend left,right,top,bottom")
        kw.update(zip(SIDES, _ints(args.extend, 4, "--extend")))
    else:
        kw["strength"] = 0.5 if args.strength is None else args.strength
        kw["remask"] = args.remask or "random"
        if not 0 <= kw["strength"] <= 1:
            raise ValueError(f"--strength must be in [0, 1], got "
                             f"{kw['strength']}")
    return kw


def _open(path: str, what: str):
    from PIL import Image
    try:
        img = Image.open(path)
        img.load()
    except OSError as e:
        raise ValueError(f"cannot read {what} {path!r}: {e}") from e
    return img


def cmd_edit(args: argparse.Namespace) -> None:
    """Run one edit and save the result."""
    import torch

    from .. import editing
    kw = _check_args(args)
    image = _open(args.image, "image")
    if image.mode in ("P", "LA", "1"):         # palette PNGs etc.
        image = image.convert("RGBA")
    if args.mode == "inpaint" and args.mask is not None:
        kw["mask"] = _open(args.mask, "mask").convert("L")
    out = out_path(args.output)
    t0 = time.perf_counter()
    pipe = load_pipeline(args)
    t1 = time.perf_counter()
    fn = {"inpaint": editing.inpaint, "outpaint": editing.outpaint,
          "img2img": editing.img2img}[args.mode]
    res = fn(pipe, image, prompt=args.prompt,
             negative_prompt=args.negative_prompt,
             num_inference_steps=args.steps, guidance_scale=args.cfg,
             generator=torch.Generator().manual_seed(args.seed), **kw)
    res.image.save(out)
    n, L = int(res.token_mask.sum()), res.token_mask.numel()
    print(f"wrote {out} ({res.image.width}x{res.image.height}); "
          f"{args.mode}: {n}/{L} tokens generated, "
          f"{res.changed_outside()} kept tokens changed, "
          f"{time.perf_counter() - t1:.2f} s (+ {t1 - t0:.2f} s loading)")


def add_parser(sub) -> argparse.ArgumentParser:
    """Register `meissonic-lite edit`."""
    p = sub.add_parser(
        "edit", help="zero-shot inpaint / outpaint / img2img an image",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Edit an image with the text-to-image model, no "
        "editing training: mask tokens, decode them under a new prompt.")
    p.add_argument("--mode", required=True,
                   choices=("inpaint", "outpaint", "img2img"))
    p.add_argument("--image", required=True, help="input image file")
    p.add_argument("-o", "--output", required=True,
                   help="output .png/.jpg/.webp (never the input)")
    p.add_argument("--prompt", required=True,
                   help="describes the whole edited image")
    p.add_argument("--negative-prompt", default=None)
    p.add_argument("--mask", default=None,
                   help="inpaint: mask image, white = repaint")
    p.add_argument("--box", default=None, metavar="X0,Y0,X1,Y1",
                   help="inpaint: box to repaint, px, half-open")
    p.add_argument("--rule", default="any", choices=("any", "fraction",
                                                     "official"),
                   help="inpaint: pixel-mask to token coverage rule")
    p.add_argument("--dilate", type=int, default=0,
                   help="inpaint: grow the token mask by N tokens")
    p.add_argument("--extend", default=None, metavar="L,R,T,B",
                   help="outpaint: px to add left,right,top,bottom")
    p.add_argument("--strength", type=float, default=None,
                   help="img2img: share of tokens re-masked (default 0.5)")
    p.add_argument("--remask", default=None,
                   choices=("random", "confidence"),
                   help="img2img: which tokens (default random)")
    d = pipeline_defaults()
    p.add_argument("--steps", type=int, default=d["num_inference_steps"])
    p.add_argument("--cfg", type=float, default=d["guidance_scale"])
    p.add_argument("--seed", type=int, default=0)
    add_model_arguments(p)
    p.set_defaults(func=cmd_edit)
    return p
