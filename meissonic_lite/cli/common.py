"""What the `meissonic-lite` subcommands share (chapters 7 and 8): the
output-path check, the pipeline's own defaults, the model arguments and
one way to load the pipeline. Subcommand modules import this, never each
other or `cli.main`, so the command-line face has no import circle.
"""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

__all__ = ["IMAGE_SUFFIXES", "add_model_arguments", "add_switches",
           "load_pipeline", "out_path", "pipeline_defaults"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def out_path(path: str) -> Path:
    """An image path to write: checked suffix, parent folder created."""
    p = Path(path)
    if p.suffix.lower() not in IMAGE_SUFFIXES:
        raise SystemExit(f"error: output {path!r} must end in .png, .jpg "
                         "or .webp")
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def pipeline_defaults() -> dict:
    """Default arguments of the pipeline's __call__ (one source of truth
    for the CLI's defaults and the Python API's)."""
    from ..sampling.pipeline import MeissonicLitePipeline
    sig = inspect.signature(MeissonicLitePipeline.__call__)
    return {k: v.default for k, v in sig.parameters.items()
            if v.default is not inspect.Parameter.empty}


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """--device and the weight-path overrides (generate and edit share)."""
    p.add_argument("--device", default="auto")
    p.add_argument("--transformer", default=None, metavar="PATH",
                   help="transformer .safetensors (default: shipped)")
    p.add_argument("--vq", default=None, metavar="PATH",
                   help="VQ .safetensors (default: shipped)")
    p.add_argument("--text-encoder", default=None, metavar="PATH",
                   help="text encoder .safetensors (default: shipped)")


def add_switches(p: argparse.ArgumentParser, **helps: str) -> None:
    """On/off options, off by default: `ship_only="..."` adds
    `--ship-only` with that help."""
    for name, text in helps.items():
        p.add_argument("--" + name.replace("_", "-"), action="store_true",
                       help=text)


def load_pipeline(args: argparse.Namespace):
    """The pipeline from shipped weights or the paths in `args`; a missing
    or corrupt file exits with its message (which names the rebuild
    command), models that do not fit together raise ValueError."""
    from ..sampling.pipeline import MeissonicLitePipeline
    try:
        return MeissonicLitePipeline.from_pretrained(
            args.device, transformer_path=args.transformer,
            vq_path=args.vq, text_encoder_path=args.text_encoder)
    except (FileNotFoundError, RuntimeError) as e:  # missing / corrupt
        raise SystemExit(f"error: {e}") from e
