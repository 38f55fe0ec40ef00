"""Training: the masked-token objective, a fault-tolerant trainer, DDP
(chapter 6)."""

from .checkpoint import load_checkpoint, save_checkpoint
from .objective import cfg_dropout, masked_ce, prepare_batch
from .trainer import TrainConfig, Trainer, batch_indices, param_groups

__all__ = ["TrainConfig", "Trainer", "batch_indices", "cfg_dropout",
           "load_checkpoint", "masked_ce", "param_groups", "prepare_batch",
           "save_checkpoint"]
