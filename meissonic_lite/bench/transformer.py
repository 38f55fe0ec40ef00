"""Throughput benchmarks: `meissonic-lite bench transformer` (chapter 7).

Measures how many images per second the transformer trains (forward,
masked-token cross-entropy as in MUSE / Meissonic, backward, AdamW step,
bf16 autocast) and infers (one forward, as one MaskGIT decoding step) at
the book's stage shapes. Returns numbers (the command prints them) and
asserts nothing. `generate` (latency, memory, masked vs autoregressive)
lives in `bench.generate`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.transformer import MeissonicTransformer, TransformerConfig
from ..sampling.masking import mask_tokens
from ..utils import (
    autocast,
    best_seconds,
    pick_device,
    set_seed,
)


def _inputs(cfg: TransformerConfig, batch: int, grid: int, text_len: int,
            device: torch.device, gen: torch.Generator):
    """Random tokens, text states, pooled and micro-conds of bench shapes."""
    tok = torch.randint(0, cfg.codebook_size, (batch, grid, grid),
                        generator=gen)
    m = mask_tokens(tok, gen, cfg.mask_id)
    text = torch.randn(batch, text_len, cfg.text_dim, generator=gen)
    pooled = torch.randn(batch, cfg.pooled_dim, generator=gen)
    micro = torch.tensor([[256.0, 256.0, 0.0, 0.0, 6.0]]).repeat(batch, 1)
    return [x.to(device) for x in (m.input_ids, m.labels, text, pooled,
                                    micro, m.level)]


def bench_transformer(cfg: TransformerConfig, batch: int = 32,
                      grid: int = 16, text_len: int = 32, iters: int = 5,
                      warmup: int = 2, bf16: bool = True,
                      device: str = "auto") -> dict[str, float]:
    """Train and inference images/s of one config at one token grid."""
    dev = pick_device(device)
    set_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = MeissonicTransformer(cfg).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    ids, labels, text, pooled, micro, level = _inputs(
        cfg, batch, grid, text_len, dev, gen)

    def train_step() -> None:
        with autocast(dev, bf16):
            logits = model(ids, text, pooled, micro, level)
        loss = F.cross_entropy(logits.float(), labels, ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    @torch.no_grad()
    def infer_step() -> None:
        with autocast(dev, bf16):
            model(ids, text, pooled, micro, level)

    model.train()
    t_train = best_seconds(train_step, iters, dev, warmup)
    model.eval()
    t_inf = best_seconds(infer_step, iters, dev, warmup)
    return {"params": sum(p.numel() for p in model.parameters()),
            "train_img_s": batch / t_train, "infer_img_s": batch / t_inf}
