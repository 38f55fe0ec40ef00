"""Small run-time helpers, used by every chapter: seeding, device / dtype
choice, atomic writes, the learning-rate schedule, tensors to images,
timing.

Device, dtype and attention backend are chosen at run time (CUDA when
present, CPU otherwise), never hard-coded, so the same code serves a laptop
and a GPU.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import math
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) in one call."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def pick_device(device: str | torch.device | None = "auto") -> torch.device:
    """Return `device`, or CUDA when available and CPU otherwise for 'auto'."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True if this CPU computes bf16 in hardware (AVX-512 BF16 or AMX).

    Without it (e.g. AVX2-only CPUs) oneDNN emulates bf16 and autocast
    makes training several times slower instead of 1.5x faster
    (measured on an AVX2 EPYC: VQ training 3.1 s/step in bf16, 0.28 in
    fp32). PyTorch has no public query; its own CPU tests use this op."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):   # pragma: no cover - old torch
        return False


def autocast_dtype(device: torch.device) -> torch.dtype:
    """bf16 on CUDA (fp16 where bf16 is unsupported) and on CPUs with
    native bf16: both measured to help."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def autocast_helps(device: torch.device) -> bool:
    """Whether mixed precision speeds `device` up: any CUDA GPU, and a
    CPU only if it has native bf16."""
    return device.type == "cuda" or (device.type == "cpu"
                                      and cpu_has_native_bf16())


def autocast(device: torch.device, enabled: bool = True):
    """A torch.autocast context for `device` when `enabled` and it helps
    there (`autocast_helps`); otherwise a no-op, so `bf16=True` in a
    config means "mixed precision where the hardware has it"."""
    if not (enabled and autocast_helps(device)):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=autocast_dtype(device))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` via a temp file + rename: no partial files."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)          # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_torch_save(path: str | os.PathLike, obj) -> None:
    """`torch.save` to `path` atomically: a crash mid-write (or kill -9)
    leaves the previous file intact. Every resume point uses it."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def warmup_cosine(step: int, steps: int, warmup: int, floor: float = 0.1,
                  schedule: str = "cosine") -> float:
    """The LR multiplier of every trainer (chapters 2, 3 and 6): linear
    warmup over `warmup` steps, then constant, or a cosine from 1 down to
    `floor` at `steps`."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    if schedule != "cosine":
        raise ValueError(f"schedule must be 'cosine' or 'constant', got "
                         f"{schedule!r}")
    t = (step - warmup) / max(1, steps - warmup)
    return floor + (1.0 - floor) * 0.5 * (1 + math.cos(math.pi * min(t,
                                                                      1.0)))


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) or (3, H, W) floats in [0, 1] -> (B, H, W, 3) or
    (H, W, 3) uint8 (clamped, rounded): what the judge and PIL read."""
    x = images.detach().float().cpu().clamp(0, 1)
    x = x.permute(*range(x.dim() - 3), -2, -1, -3)
    return (x * 255).round().to(torch.uint8).numpy()


def to_pil(images: torch.Tensor) -> Image.Image | list[Image.Image]:
    """Images in [0, 1] as PIL: one image for (3, H, W), a list for
    (B, 3, H, W)."""
    arr = to_uint8(images)
    if arr.ndim == 3:
        return Image.fromarray(arr)
    return [Image.fromarray(a) for a in arr]


def report_json(obj, out: str | os.PathLike | None = None) -> None:
    """Print `obj` as indented JSON and, with `out`, also write it there
    atomically (the measurement commands' common last step)."""
    text = json.dumps(obj, indent=1)
    print(text)
    if out:
        atomic_write_bytes(Path(out), (text + "\n").encode())


def sync(device: torch.device | str) -> None:
    """Wait for queued CUDA work on `device` (no-op elsewhere): a timer
    read before it would time kernel launches, not the work."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(fn, repeats: int, device: torch.device | str,
                 warmup: int = 0) -> float:
    """Best wall time of `repeats` calls of fn after `warmup` calls, the
    device synchronised around each (robust on a shared CPU; chapter 7)."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(max(1, repeats)):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best

