"""Training: the masked-token objective, a fault-tolerant trainer, DDP,
the four stages and the gates (chapter 6); the VQ tokenizer's trainer and
token caches (chapter 2) and the tiny CLIP's trainer (chapter 3).

The names below are the transformer's trainer; import the others by
module (`from meissonic_lite.training import vq_train`).
"""

from .checkpoint import load_checkpoint, save_checkpoint
from .objective import cfg_dropout, masked_ce, prepare_batch
from .trainer import TrainConfig, Trainer, batch_indices, param_groups

__all__ = ["TrainConfig", "Trainer", "batch_indices", "cfg_dropout",
           "load_checkpoint", "masked_ce", "param_groups", "prepare_batch",
           "save_checkpoint"]
