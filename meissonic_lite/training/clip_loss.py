"""CLIP's objective (chapter 3): symmetric InfoNCE with hard negatives, and
the auxiliary heads that break the relation's symmetry.

CLIP's symmetric InfoNCE loss (Radford et al. 2021) over a batch of image
-caption pairs, plus hard negatives (`clip_data`). Without them a
bag-of-words encoder already wins retrieval but cannot tell "a red circle
left of a blue square" from its swap. Hard negatives alone leave the
relation at chance: a text tower that ignores "left"/"right" and an image
tower that ignores mirroring sit at a saddle where their gradients cancel.
Optional auxiliary heads (`aux`, training only, never shipped) break it:
the caption embedding must name its relation and the image embedding must
say where each colour is.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..world import vocab
from ..world.scene import Scene


def clip_loss(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor,
              neg: torch.Tensor | None = None,
              neg_img: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE on embeddings (B, E), plus hard negatives.

    Image i must pick caption i among the B captions (+ `neg`, (B, E)
    false captions); caption i must pick image i among the B images
    (+ `neg_img`, (K, E) false images such as mirrored scenes).
    """
    img, txt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    texts, imgs = txt, img
    if neg is not None:
        texts = torch.cat([txt, F.normalize(neg, dim=-1)])
    if neg_img is not None:
        imgs = torch.cat([img, F.normalize(neg_img, dim=-1)])
    logits_i = scale * img @ texts.T                # (B, B) or (B, 2B)
    logits_t = scale * txt @ imgs.T                 # (B, B) or (B, B+K)
    target = torch.arange(img.shape[0], device=img.device)
    return (F.cross_entropy(logits_i, target)
            + F.cross_entropy(logits_t, target)) / 2


# -- auxiliary heads: symmetry breakers for the relation ----------------------
RELATION_CLASSES: tuple[str | None, ...] = (None, *vocab.RELATIONS)
AUX_COLORS: tuple[str, ...] = tuple(vocab.COLORS)


def relation_labels(scenes: list[Scene]) -> torch.Tensor:
    """Class of each scene's relation, 0 for none (B,) long."""
    return torch.tensor([RELATION_CLASSES.index(s.relation) for s in scenes])


def kind_presence(scenes: list[Scene]) -> torch.Tensor:
    """Which of the world's kinds each scene shows, multi-hot (B, K)."""
    out = torch.zeros(len(scenes), len(vocab.KINDS))
    for i, s in enumerate(scenes):
        for g in s.groups:
            out[i, vocab.KINDS.index(g.kind)] = 1.0
    return out


def color_layout(scenes: list[Scene]) -> torch.Tensor:
    """Per object colour: present, mean centre x, mean centre y (B, C, 3)."""
    out = torch.zeros(len(scenes), len(AUX_COLORS), 3)
    for i, s in enumerate(scenes):
        for c, name in enumerate(AUX_COLORS):
            xy = [(o.cx, o.cy) for o in s.objects if o.color == name]
            if xy:
                out[i, c] = torch.tensor([1.0, *np.mean(xy, axis=0)])
    return out


class AuxHeads(torch.nn.Module):
    """Linear heads on the embeddings: relation from a caption, colour
    layout from an image, and (if `kind_weight` > 0) the kinds named by a
    caption and shown in an image. Training only; never shipped."""

    def __init__(self, embed_dim: int, kind_weight: float = 0.0) -> None:
        super().__init__()
        self.kind_weight = kind_weight
        # Batch-standardised inputs: the embeddings of different captions
        # share one large common direction (cosines near 1), so a plain
        # linear head would see differences too small to learn from.
        self.text_norm = torch.nn.BatchNorm1d(embed_dim, affine=False)
        self.image_norm = torch.nn.BatchNorm1d(embed_dim, affine=False)
        self.relation = torch.nn.Linear(embed_dim, len(RELATION_CLASSES))
        self.layout = torch.nn.Linear(embed_dim, 3 * len(AUX_COLORS))
        if kind_weight > 0:
            self.text_kinds = torch.nn.Linear(embed_dim, len(vocab.KINDS))
            self.image_kinds = torch.nn.Linear(embed_dim, len(vocab.KINDS))

    def loss(self, txt: torch.Tensor, rel: torch.Tensor, img: torch.Tensor,
             layout: torch.Tensor, txt_kinds: torch.Tensor | None = None,
             img_kinds: torch.Tensor | None = None) -> torch.Tensor:
        """CE on relations + BCE on presence + MSE on present centres
        (+ kind_weight * BCE on the kinds of captions and images)."""
        rel_loss = F.cross_entropy(self.relation(self.text_norm(txt)), rel)
        pred = self.layout(self.image_norm(img)).unflatten(-1, (-1, 3))
        present = layout[..., 0]
        bce = F.binary_cross_entropy_with_logits(pred[..., 0], present)
        err = ((pred[..., 1:].sigmoid() - layout[..., 1:]) ** 2).sum(-1)
        mse = (err * present).sum() / present.sum().clamp(min=1)
        total = rel_loss + bce + 10 * mse
        if self.kind_weight > 0:
            bce_k = F.binary_cross_entropy_with_logits
            total = total + self.kind_weight * (
                bce_k(self.text_kinds(self.text_norm(txt)), txt_kinds)
                + bce_k(self.image_kinds(self.image_norm(img)), img_kinds))
        return total

