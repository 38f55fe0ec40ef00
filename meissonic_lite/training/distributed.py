"""Data parallelism on an existing engine: torch.distributed + DDP (chapter 6).

`torchrun --nproc_per_node N` sets RANK / WORLD_SIZE / MASTER_ADDR; we then
join the process group (gloo on CPU, NCCL on GPU) and wrap the model in
DistributedDataParallel. Without torchrun everything is a no-op.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as td
from torch import nn


def launched() -> bool:
    """True when started by torchrun (WORLD_SIZE set and > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: torch.device) -> None:
    """Join the process group once, with the backend the device needs."""
    if launched() and not td.is_initialized():
        td.init_process_group("nccl" if device.type == "cuda" else "gloo")


def rank() -> int:
    """This process's rank (0 without torchrun)."""
    return td.get_rank() if td.is_initialized() else 0


def world_size() -> int:
    """How many processes train together (1 without torchrun)."""
    return td.get_world_size() if td.is_initialized() else 1


def barrier() -> None:
    """Wait for every process (no-op without torchrun)."""
    if td.is_initialized():
        td.barrier()


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DDP-wrap `model` when training with several processes."""
    if not td.is_initialized():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def shutdown() -> None:
    """Leave the process group."""
    if td.is_initialized():
        td.destroy_process_group()
