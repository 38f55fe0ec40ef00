"""Shipped transformer weights: safetensors + config, loaded by name.

The VQ and the text encoder load their own files (`vq.from_pretrained`,
`text.from_pretrained`); this module does the same for the transformer,
with the config stored in the file's metadata (nanoGPT's `model_args`
idea), so a checkpoint always rebuilds the model it was trained as.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from .transformer import MeissonicTransformer, TransformerConfig
from .utils import atomic_write_bytes

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT = WEIGHTS_DIR / "transformer.safetensors"
TEXT_ENCODER = WEIGHTS_DIR / "text_encoder.safetensors"   # stage-4 tuned
REBUILD = "meissonic-lite train --stage all --ship"


def save_transformer(model: MeissonicTransformer, path: str | Path,
                     dtype: torch.dtype = torch.float16) -> None:
    """Write weights (cast to `dtype`) and config, atomically."""
    from safetensors.torch import save
    sd = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous()
          for k, v in model.state_dict().items()}
    cfg = asdict(model.config)
    meta = {"config": json.dumps(cfg)}
    atomic_write_bytes(path, save(sd, metadata=meta))


def transformer_from_config(cfg: dict) -> MeissonicTransformer:
    """A fresh transformer from a config dict as JSON stores it (lists
    where the dataclass has tuples): safetensors metadata, checkpoints."""
    cfg = dict(cfg)
    for k in ("rope_axes", "max_grid"):
        cfg[k] = tuple(cfg[k])
    return MeissonicTransformer(TransformerConfig(**cfg))


def load_transformer(path: str | Path | None = None,
                     device: str | torch.device = "cpu"
                     ) -> MeissonicTransformer:
    """Load the shipped transformer (or `path`) in eval mode, fp32."""
    from safetensors import safe_open
    path = Path(path) if path is not None else DEFAULT
    if not path.is_file():
        raise FileNotFoundError(f"transformer weights not found: {path}. "
                                f"Rebuild them with: {REBUILD}")
    try:
        with safe_open(str(path), framework="pt") as f:
            cfg = json.loads((f.metadata() or {})["config"])
            sd = {k: f.get_tensor(k) for k in f.keys()}
        model = transformer_from_config(cfg)
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in sd.items()}, strict=True)
    except Exception as e:
        raise ValueError(f"transformer weights {path} are corrupt or "
                         f"incompatible ({e}). Rebuild them with: "
                         f"{REBUILD}") from e
    return model.to(device).eval()


def load_text_encoder(path: str | Path | None = None,
                      device: str | torch.device = "cpu"):
    """The text encoder the shipped transformer was fine-tuned with (stage
    4 unfreezes it); falls back to the base CLIP (`clip.safetensors`) when
    no tuned copy ships. The book's CLIP *evaluator* always uses the base
    CLIP, so scores never come from the model being judged."""
    from . import text
    if path is None and TEXT_ENCODER.is_file():
        path = TEXT_ENCODER
    return text.from_pretrained(path, device=str(device))
