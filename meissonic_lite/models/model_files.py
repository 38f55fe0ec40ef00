"""One way to save and load every model: a safetensors file with its
config in the metadata (chapters 2, 3 and 5).

nanoGPT stores `model_args` beside the weights so a checkpoint always
rebuilds the model it was trained as; diffusers gives every model
`from_pretrained` / `save_pretrained`. The VQ, the text encoder and the
transformer all read and write through `write_model_file` and
`read_model_file`, so a missing or corrupt file gives the same errors
everywhere, each naming the file and the command that rebuilds it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save

from ..utils import atomic_write_bytes

__all__ = ["ModelFileError", "read_model_file", "write_model_file"]


class ModelFileError(ValueError, RuntimeError):
    """A weights file that exists but cannot be read as the model it
    claims to be (corrupt, truncated or from another model). A ValueError
    like every bad input here; also a RuntimeError, which the text
    encoder's loader raised before the loaders were unified."""


def write_model_file(path: str | Path, state: dict[str, torch.Tensor],
                     config: dict, dtype: torch.dtype = torch.float16
                     ) -> None:
    """Write `state` (floating tensors cast to `dtype`) and `config` (JSON
    in the metadata) to `path` atomically: a crash leaves the old file."""
    sd = {k: (v.to(dtype) if v.is_floating_point() else v)
          .detach().cpu().contiguous() for k, v in state.items()}
    atomic_write_bytes(path, save(sd, metadata={"config":
                                                 json.dumps(config)}))


def read_model_file(path: str | Path, what: str, rebuild: str
                    ) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config, state) from a file written by `write_model_file`.

    `what` names the model in errors ("VQ", "transformer", ...), `rebuild`
    is the command that makes the file again. A missing file raises
    FileNotFoundError, an unreadable one ModelFileError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} weights not found: {path}. "
                                f"Rebuild them with: {rebuild}")
    try:
        with safe_open(str(path), framework="pt") as f:
            config = json.loads((f.metadata() or {})["config"])
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except Exception as e:  # truncated, not safetensors, no config
        raise corrupt(path, what, rebuild, e) from e
    return config, state


def corrupt(path: str | Path, what: str, rebuild: str,
            cause: BaseException) -> ModelFileError:
    """The error for a file that reads but does not fit its model."""
    return ModelFileError(f"{what} weights file {path} is corrupt or "
                          f"incompatible ({cause}). Rebuild it with: "
                          f"{rebuild}")


def to_float32(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating tensors up to fp32 (files ship fp16; models run fp32)."""
    return {k: v.float() if v.is_floating_point() else v
            for k, v in state.items()}
