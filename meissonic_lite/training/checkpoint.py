"""Atomic, resumable checkpoints: a crash never leaves a partial file
(chapter 6).

A checkpoint holds the model, optimizer and scheduler states, the step, the
run's config and the bad-step counter. It is written to a temp file and
renamed (`os.replace` is atomic on POSIX), so after a kill -9 the previous
checkpoint is intact. Loading checks the model config and names the file
and the fix when something does not match.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..utils import atomic_torch_save

LATEST = "latest.pt"


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Serialise `state` and write it atomically to `path`."""
    try:
        atomic_torch_save(path, state)
    except OSError as e:
        raise OSError(f"could not write checkpoint {path}: {e}; the "
                      "previous checkpoint (if any) is intact") from e


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint written by `save_checkpoint`, with clear errors."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: start without "
                                "--resume, or point --out at the run dir")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # corrupt or truncated file
        raise ValueError(f"checkpoint {path} is corrupt ({e}); delete it "
                         "and resume from an older one or retrain") from e


def check_same_model(saved: dict, current: dict, path: str | Path,
                     defaults: dict | None = None) -> None:
    """Refuse to resume when the model config differs from the saved one.
    A field the checkpoint predates counts as its default (`defaults`), so
    adding an option to a config does not orphan older checkpoints."""
    saved = {**{k: v for k, v in (defaults or {}).items() if k in current},
             **saved}
    diff = {k: (saved.get(k), current.get(k))
            for k in set(saved) | set(current)
            if saved.get(k) != current.get(k)}
    if diff:
        pretty = ", ".join(f"{k}: saved {a!r} vs now {b!r}"
                           for k, (a, b) in sorted(diff.items()))
        raise ValueError(f"checkpoint {path} was made with a different "
                         f"model config ({pretty}); use the same config "
                         "or a new --out directory")


def remove_stale_temps(directory: str | Path) -> None:
    """Delete temp files a killed writer may have left behind."""
    for p in Path(directory).glob("*.tmp*"):
        if p.is_file():
            os.unlink(p)
