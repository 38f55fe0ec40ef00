"""A tiny training run used by the trainer tests (also under torchrun).

Usage: python tests/train_worker.py OUT_DIR STEPS [--resume]
Writes OUT_DIR/final_rank{R}.pt (each rank's state dict) at the end.
"""

import sys
from pathlib import Path

import torch

from meissonic_lite.models.transformer import (
    MeissonicTransformer,
    TransformerConfig,
)
from meissonic_lite.training import TrainConfig, Trainer
from meissonic_lite.training import distributed as dist


class PatternData(torch.utils.data.Dataset):
    """8 classes; each has a fixed 4x4 token pattern and text state."""

    def __init__(self, n=64, cfg=None, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.patterns = torch.randint(0, cfg.codebook_size, (8, 4, 4),
                                      generator=g)
        self.states = torch.randn(8, 3, cfg.text_dim, generator=g)
        self.pooled = torch.randn(8, cfg.pooled_dim, generator=g)
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        c = i % 8
        return {"tokens": self.patterns[c],
                "micro_conds": torch.tensor([64., 64., 0., 0., 9.]),
                "states": self.states[c], "pooled": self.pooled[c]}


def make_trainer(out, steps, **overrides):
    """The tiny model, data and trainer every trainer test uses."""
    torch.manual_seed(0)
    mcfg = TransformerConfig.preset("tiny")
    model = MeissonicTransformer(mcfg)
    data = PatternData(cfg=mcfg)
    null = (torch.zeros(1, 3, mcfg.text_dim), torch.zeros(1,
                                                          mcfg.pooled_dim))
    cfg = TrainConfig(steps=steps, batch_size=8, lr=2e-3, warmup=2,
                      bf16=False, log_every=1, ckpt_every=2, seed=1,
                      **overrides)
    return Trainer(model, data, cfg, out, null,
                   model_config={"preset": "tiny"})


if __name__ == "__main__":
    torch.set_num_threads(1)
    out, steps = Path(sys.argv[1]), int(sys.argv[2])
    dist.init(torch.device("cpu"))
    tr = make_trainer(out, steps)
    tr.fit(resume="--resume" in sys.argv)
    torch.save(tr.raw.state_dict(), out / f"final_rank{dist.rank()}.pt")
    dist.shutdown()
