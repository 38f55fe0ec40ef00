"""Loading the shipped models by name (chapters 5 and 7).

Every model reads and writes one safetensors file with its config in the
metadata (`model_files`): `VQModel`, `TextEncoder` and
`MeissonicTransformer` each have `from_pretrained` / `save_pretrained`.
These functions are the names the trainers and the book used before, kept
as thin aliases, plus the rule for which text encoder goes with the
shipped transformer.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .text import TextEncoder
from .transformer import (
    REBUILD,
    WEIGHTS,
    MeissonicTransformer,
    TransformerConfig,
)

WEIGHTS_DIR = WEIGHTS.parent
DEFAULT = WEIGHTS
TEXT_ENCODER = WEIGHTS_DIR / "text_encoder.safetensors"   # stage-4 tuned

__all__ = ["DEFAULT", "REBUILD", "TEXT_ENCODER", "load_text_encoder",
           "load_transformer", "save_transformer", "transformer_from_config"]


def save_transformer(model: MeissonicTransformer, path: str | Path,
                     dtype: torch.dtype = torch.float16) -> None:
    """Write weights (cast to `dtype`) and config: `save_pretrained`."""
    model.save_pretrained(path, dtype)


def transformer_from_config(cfg: dict) -> MeissonicTransformer:
    """A fresh transformer from a config dict as JSON stores it (lists
    where the dataclass has tuples): safetensors metadata, checkpoints."""
    return MeissonicTransformer(TransformerConfig(**cfg))


def load_transformer(path: str | Path | None = None,
                     device: str | torch.device = "cpu"
                     ) -> MeissonicTransformer:
    """Load the shipped transformer (or `path`): `from_pretrained`."""
    return MeissonicTransformer.from_pretrained(path, device)


def load_text_encoder(path: str | Path | None = None,
                      device: str | torch.device = "cpu",
                      text_only: bool = True) -> TextEncoder:
    """The text encoder the shipped transformer was fine-tuned with (stage
    4 unfreezes it); falls back to the base CLIP (`clip.safetensors`) when
    no tuned copy ships. Text only by default: generation reads prompts,
    and open_clip's import is skipped. The book's CLIP *evaluator* always
    uses the base CLIP, so scores never come from the model being judged."""
    if path is None and TEXT_ENCODER.is_file():
        path = TEXT_ENCODER
    return TextEncoder.from_pretrained(path, device=str(device),
                                       text_only=text_only)
