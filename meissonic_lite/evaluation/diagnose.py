"""Probes of a trained transformer: what does it use, what can it draw?
(chapter 6)

`masked_token_accuracy`: mask a share of the tokens of clean held-out
world images, ask the model for them in one pass (argmax), and compare
with two baselines that need no model: the image's most common code (the
background) and the left neighbour's code (pure local copying).
`prompt_use`: how much the prompt, and its kind words, lower the loss.
`hidden_object_fill`: can it draw an object none of whose tokens it sees
(what the sampler asks once the background is decoded)? `loss_split`: how
much of the loss is background, how much objects, and what the text
explains of each. `probe` runs any of them on a checkpoint and records
the command with the figures (`meissonic-lite diagnose`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..models import text
from ..models import vq as vq_mod
from ..models.pretrained import load_transformer, transformer_from_config
from ..sampling.masking import mask_rate_level
from ..training.checkpoint import load_checkpoint
from ..training.clip_data import change_kind
from ..world.captions import caption
from ..world.dataset import ShapesDataset, to_tensor


def _clean_examples(model, vq, n: int, size: int, seed: int,
                    caption_style: str = "short"):
    """n clean held-out examples, their tokens and micro-conditions, on
    the model's device."""
    ds = ShapesDataset(n, size=size, seed=seed, caption_style=caption_style,
                       p_clean=1.0)
    examples = [ds.example(i) for i in range(n)]
    device = next(model.parameters()).device
    images = torch.stack([to_tensor(e.image) for e in examples])
    tokens = vq.encode(images.to(device))                     # (n, h, w)
    micro = torch.tensor([e.micro_conds for e in examples],
                         dtype=torch.float32, device=device)
    return examples, tokens, micro


def _level(mask: torch.Tensor) -> torch.Tensor:
    """The mask-rate level each grid's realised share of masked tokens
    gives, on the mask's device."""
    return mask_rate_level(mask.flatten(1).float().mean(1).double()
                           .cpu()).to(mask.device)


def _mask_at_rate(tokens: torch.Tensor, rate: float, seed: int,
                  mask_id: int):
    """Mask each token with probability `rate` (draws seeded by `seed`):
    the mask, the model's input ids and their mask-rate levels."""
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(tokens.shape, generator=g) < rate).to(tokens.device)
    return mask, torch.where(mask, mask_id, tokens), _level(mask)


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
    states, pooled = text_encoder.encode([e.caption for e in examples])
    mode = torch.stack([t.flatten().mode().values for t in tokens])
    # left neighbour's code (column 0 takes its right neighbour's)
    left = torch.cat([tokens[:, :, 1:2], tokens[:, :, :-1]], dim=2)
    rows = []
    for r in rates:
        mask, inp, level = _mask_at_rate(tokens, r, seed,
                                         model.config.mask_id)
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
    group's circle -> square, A -> B: `clip_data.change_kind`), and with
    the empty prompt. A model that draws what it is told has
    `kind_gain` = CE(other kind) - CE(true) well above 0; one that ignores
    the kind word sits at 0 however much `text_gain` the colours give.
    """

    if not 0 < rate <= 1:
        raise ValueError(f"mask rate must lie in (0, 1], got {rate}")
    examples, tokens, micro = _clean_examples(model, vq, n, size, seed)
    prompts = {"true": [], "other_kind": []}
    for i, e in enumerate(examples):
        for name, scene in (("true", e.scene),
                            ("other_kind", change_kind(e.scene))):
            rng = np.random.default_rng([seed, i])   # same template
            prompts[name].append(caption(scene, rng, "short"))
    prompts["empty"] = [""] * n
    mask, inp, level = _mask_at_rate(tokens, rate, seed,
                                     model.config.mask_id)
    mode = torch.stack([t.flatten().mode().values for t in tokens])
    obj = mask & (tokens != mode[:, None, None])
    labels = torch.where(obj, tokens, -100)
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


@torch.no_grad()
def hidden_object_fill(model, vq, text_encoder, n: int = 64,
                       size: int = 128, seed: int = 79) -> dict:
    """Does the model draw an object it cannot see any part of?

    On n clean held-out images, mask every object token (all but the
    image's most common code, the flat background) and the ring of tokens
    around them, leave the background visible, and ask the model for the
    hidden tokens in one pass. Then the same number of tokens masked at
    random, for comparison. On the object tokens: the share the argmax
    gets right, the share it calls background, and the mean probability
    of the background code. A model trained only on uniformly random
    masks has rarely seen a whole object hidden, and answers
    "background": the sampler's confidence order creates exactly that
    state once the background is decoded (chapter 6)."""
    examples, tokens, micro = _clean_examples(model, vq, n, size, seed)
    states, pooled = text_encoder.encode([e.caption for e in examples])
    device = tokens.device
    mode = torch.stack([t.flatten().mode().values for t in tokens])
    obj = tokens != mode[:, None, None]
    region = F.max_pool2d(obj.float()[:, None], 3, 1, 1)[:, 0] > 0
    g = torch.Generator().manual_seed(seed)
    keys = torch.rand(tokens.shape, generator=g).to(device)
    k = region.flatten(1).sum(1)
    rank = keys.flatten(1).argsort(1).argsort(1).view_as(tokens)
    scattered = rank < k[:, None, None]
    out = {"n": n, "masked_share": float(region.float().mean())}
    for name, mask in (("region", region), ("scattered", scattered)):
        inp = torch.where(mask, model.config.mask_id, tokens)
        probs = model(inp, states, pooled, micro, _level(mask)).float() \
            .softmax(1)
        pred = probs.argmax(1)
        p_bg = probs.gather(1, mode[:, None, None, None].expand(
            -1, 1, *tokens.shape[1:]))[:, 0]
        hit = mask & obj
        out[name] = {
            "object_right": float((pred == tokens)[hit].float().mean()),
            "called_background": float(
                (pred == mode[:, None, None])[hit].float().mean()),
            "p_background": float(p_bg[hit].mean())}
    return out


@torch.no_grad()
def loss_split(model, vq, text_encoder, n: int = 64, size: int = 128,
               rates: tuple[float, ...] = (0.5, 0.9, 1.0),
               seed: int = 80) -> list[dict]:
    """Where the training loss goes: masked-token cross-entropy (nats) on
    the background tokens (the image's most common code) and on the object
    tokens, with the true long caption and with the empty prompt.

    The background is most of every image, so the mean loss can fall a long
    way while the object tokens, the part a prompt is about, stay
    unlearnt; the empty-prompt columns say how much of either the text
    explains. One row per mask rate, n clean held-out images."""
    if not all(0 < r <= 1 for r in rates):
        raise ValueError("mask rates must lie in (0, 1]")
    examples, tokens, micro = _clean_examples(model, vq, n, size, seed,
                                              caption_style="long")
    mode = torch.stack([t.flatten().mode().values for t in tokens])
    background = tokens == mode[:, None, None]
    prompts = {"text": text_encoder.encode([e.caption for e in examples]),
               "empty": text_encoder.encode([""] * n)}
    rows = []
    for r in rates:
        mask, inp, level = _mask_at_rate(tokens, r, seed,
                                         model.config.mask_id)
        row = {"mask_rate": r,
               "object_share": float((~background)[mask].float().mean())}
        for name, (states, pooled) in prompts.items():
            logits = model(inp, states, pooled, micro, level).float()
            ce = F.cross_entropy(logits, tokens, reduction="none")
            row[f"ce_background_{name}"] = float(ce[mask & background].mean())
            row[f"ce_object_{name}"] = float(ce[mask & ~background].mean())
        rows.append(row)
    return rows


def load_model(path):
    """A transformer from a trainer checkpoint (`latest.pt`: returns its
    step too) or a safetensors file (step None), in eval mode."""

    path = Path(path)
    if path.suffix == ".safetensors":
        return load_transformer(path), None
    ck = load_checkpoint(path)
    model = transformer_from_config(ck["model_config"])
    model.load_state_dict(ck["model"])
    return model.eval(), ck["step"]


PROBES = {"fill": hidden_object_fill, "context": masked_token_accuracy,
          "prompt": prompt_use, "split": loss_split}


def probe(name: str, checkpoint: str, vq: str | None = None, n: int = 64,
          command: str = "") -> dict:
    """Run probe `name` (one of `PROBES`) on a checkpoint with the VQ it
    was trained on (default: the shipped one); the record keeps `command`,
    so a stored figure says how it was made."""
    torch.set_num_threads(2)
    model, step = load_model(checkpoint)
    res = PROBES[name](model, vq_mod.from_pretrained(vq),
                       text.from_pretrained(), n=n)
    return {"probe": name, "result": res, "checkpoint": checkpoint,
            "step": step, "command": command}
