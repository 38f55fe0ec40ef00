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


def _clean_examples(model, vq, n: int, size: int, seed: int):
    """n clean held-out examples, their tokens and micro-conditions, on
    the model's device."""
    ds = ShapesDataset(n, size=size, seed=seed, caption_style="short",
                       p_clean=1.0)
    examples = [ds.example(i) for i in range(n)]
    device = next(model.parameters()).device
    images = torch.stack([to_tensor(e.image) for e in examples])
    tokens = vq.encode(images.to(device))                     # (n, h, w)
    micro = torch.tensor([e.micro_conds for e in examples],
                         dtype=torch.float32, device=device)
    return examples, tokens, micro


@torch.no_grad()
def masked_token_accuracy(model, vq, text_encoder, n: int = 32,
                          size: int = 128,
                          rates: tuple[float, ...] = (0.1, 0.5, 0.9, 1.0),
                          seed: int = 77) -> list[dict]:
    """One row per mask rate: the model's argmax accuracy on the masked
    tokens and both baselines on the same tokens (n clean images)."""
    if not all(0 < r <= 1 for r in rates):
        raise ValueError("mask rates must lie in (0, 1]")
    examples, tokens, micro = _clean_examples(model, vq, n, size, seed)
    device = tokens.device
    states, pooled = text_encoder.encode([e.caption for e in examples])
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


@torch.no_grad()
def prompt_use(model, vq, text_encoder, n: int = 64, size: int = 128,
               rate: float = 1.0, seed: int = 78) -> dict:
    """How much the prompt, and its kind words, lower the loss.

    Masked-token cross-entropy (nats) on the object tokens (those that are
    not the image's most common code, the flat background) of n clean
    held-out images, with the
    true short caption, with the same caption naming another kind (one
    group's circle -> square, A -> B: `clip_train.change_kind`), and with
    the empty prompt. A model that draws what it is told has
    `kind_gain` = CE(other kind) - CE(true) well above 0; one that ignores
    the kind word sits at 0 however much `text_gain` the colours give.
    """
    import numpy as np
    import torch.nn.functional as F

    from ..clip_train import change_kind
    from ..world.captions import caption
    if not 0 < rate <= 1:
        raise ValueError(f"mask rate must lie in (0, 1], got {rate}")
    examples, tokens, micro = _clean_examples(model, vq, n, size, seed)
    device = tokens.device
    prompts = {"true": [], "other_kind": []}
    for i, e in enumerate(examples):
        for name, scene in (("true", e.scene),
                            ("other_kind", change_kind(e.scene))):
            rng = np.random.default_rng([seed, i])   # same template
            prompts[name].append(caption(scene, rng, "short"))
    prompts["empty"] = [""] * n
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(tokens.shape, generator=g) < rate).to(device)
    inp = torch.where(mask, model.config.mask_id, tokens)
    mode = torch.stack([t.flatten().mode().values for t in tokens])
    obj = mask & (tokens != mode[:, None, None])
    labels = torch.where(obj, tokens, -100)
    level = mask_rate_level(mask.flatten(1).float().mean(1).double()
                            .cpu()).to(device)
    ce = {}
    for name, texts in prompts.items():
        states, pooled = text_encoder.encode(texts)
        logits = model(inp, states, pooled, micro, level)
        ce[name] = float(F.cross_entropy(logits.float(), labels,
                                         ignore_index=-100))
    return {"ce_true": ce["true"], "ce_other_kind": ce["other_kind"],
            "ce_empty": ce["empty"],
            "kind_gain": ce["other_kind"] - ce["true"],
            "text_gain": ce["empty"] - ce["true"],
            "mask_rate": rate, "n": n, "object_tokens": int(obj.sum())}
