"""How much does a trained transformer use its context? A probe.

Mask a share of the tokens of clean held-out world images, ask the model
for them in one pass (argmax), and compare with two baselines that need
no model: the image's most common code (what a model that only knows "the
background" gets) and the code of the left neighbour (pure local copying).
A model that has learned shapes beats both by a wide margin when most of
the image is visible; an undertrained one sits on the first baseline.
"""

from __future__ import annotations

import torch

from ..masking import mask_rate_level
from ..world.dataset import ShapesDataset, to_tensor


@torch.no_grad()
def masked_token_accuracy(model, vq, text_encoder, n: int = 32,
                          size: int = 128,
                          rates: tuple[float, ...] = (0.1, 0.5, 0.9, 1.0),
                          seed: int = 77) -> list[dict]:
    """One row per mask rate: the model's argmax accuracy on the masked
    tokens and both baselines on the same tokens (n clean images)."""
    if not all(0 < r <= 1 for r in rates):
        raise ValueError("mask rates must lie in (0, 1]")
    ds = ShapesDataset(n, size=size, seed=seed, caption_style="short",
                       p_clean=1.0)
    examples = [ds.example(i) for i in range(n)]
    device = next(model.parameters()).device
    images = torch.stack([to_tensor(e.image) for e in examples])
    tokens = vq.encode(images.to(device))                     # (n, h, w)
    states, pooled = text_encoder.encode([e.caption for e in examples])
    micro = torch.tensor([e.micro_conds for e in examples],
                         dtype=torch.float32, device=device)
    mode = torch.stack([t.flatten().mode().values for t in tokens])
    # left neighbour's code (column 0 takes its right neighbour's)
    left = torch.cat([tokens[:, :, 1:2], tokens[:, :, :-1]], dim=2)
    rows = []
    for r in rates:
        g = torch.Generator().manual_seed(seed)
        mask = (torch.rand(tokens.shape, generator=g) < r).to(device)
        inp = torch.where(mask, model.config.mask_id, tokens)
        level = mask_rate_level(mask.flatten(1).float().mean(1).double()
                                .cpu()).to(device)
        pred = model(inp, states, pooled, micro, level).argmax(1)

        def hit(guess: torch.Tensor) -> float:
            return float((guess == tokens)[mask].float().mean())
        rows.append({"mask_rate": r, "model": hit(pred),
                     "image_mode": hit(mode[:, None, None].expand_as(tokens)),
                     "left_neighbour": hit(left),
                     "masked_tokens": int(mask.sum())})
    return rows
