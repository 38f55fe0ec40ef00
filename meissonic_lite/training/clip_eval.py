"""Measuring a CLIP on held-out Shapes-world data (chapter 3): top-1
retrieval among 100 candidates and attribute binding (true caption above
its swap), as the train-clip manifest and chapter 3 report them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.text import TextEncoder
from .clip_data import EVAL_SEED, heldout_pairs, probe_set


@torch.no_grad()
def retrieval(enc: TextEncoder, images: torch.Tensor, captions: list[str],
              group: int = 100) -> dict:
    """Top-1 retrieval among `group` candidates, both directions.

    A pick counts as right when its caption is the same text as the
    query's (two scenes can share a short caption such as 'red star.').
    """
    t2i = i2t = total = 0
    for s in range(0, len(captions) - group + 1, group):
        caps = captions[s:s + group]
        sim = enc.similarity(images[s:s + group], caps)   # (img, txt)
        same = torch.tensor([[a == b for b in caps] for a in caps])
        idx = torch.arange(group)
        i2t += int(same[idx, sim.argmax(1)].sum())
        t2i += int(same[idx, sim.argmax(0)].sum())
        total += group
    if total == 0:
        raise ValueError(f"need at least {group} pairs, got {len(captions)}")
    return {"t2i_top1": t2i / total, "i2t_top1": i2t / total, "n": total}


@torch.no_grad()
def binding(enc: TextEncoder, images: torch.Tensor, pos: list[str],
            neg: list[str]) -> float:
    """Fraction of images scoring their true caption above the swap."""
    im = F.normalize(enc.encode_image(images).float(), dim=-1)
    p = F.normalize(enc.encode(pos)[1].float(), dim=-1)
    q = F.normalize(enc.encode(neg)[1].float(), dim=-1)
    return float(((im * p).sum(-1) > (im * q).sum(-1)).float().mean())


def evaluate(enc: TextEncoder, seed: int = EVAL_SEED, n_pairs: int = 1000,
             n_probe: int = 300) -> dict:
    """Held-out retrieval (groups of 100) and binding: colours swapped,
    relation flipped (the bars, averaged as `binding`) and one kind
    changed (a probe without a bar)."""
    size = enc.cfg.image_size
    out = retrieval(enc, *heldout_pairs(seed, n_pairs, size))
    for kind in ("colors", "relation", "kinds"):
        out[f"binding_{kind}"] = binding(
            enc, *probe_set(seed + 1, n_probe, kind, size))
    out["binding"] = (out["binding_colors"] + out["binding_relation"]) / 2
    return {k: round(v, 4) for k, v in out.items()}

