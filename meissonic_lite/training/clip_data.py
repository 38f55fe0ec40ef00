"""CLIP's data (chapter 3): hard negatives one attribute away, mirrored
scenes, caption pairs, the image stream and the held-out probes.

A hard negative (as NegCLIP, Yuksekgonul et al. 2023) is the same caption
with the two colours swapped, the relation flipped, one colour changed or
(if asked) one kind changed: everything else identical, so a text tower
must read word order and binding to tell it from the truth. For a scene
with a relation, the image mirrored along the relation's axis is the
image-side negative (or, with its caption's relation flipped, a positive).
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch
from tqdm.auto import tqdm

from ..world import vocab
from ..world.captions import caption
from ..world.dataset import make_example, to_tensor
from ..world.scene import Scene

OPPOSITE = {"left of": "right of", "right of": "left of",
            "above": "below", "below": "above"}
EVAL_SEED = 777_000          # held-out world stream (training uses 1000)


# -- hard negatives: one attribute changed, everything else identical -------
def swap_colors(scene: Scene) -> Scene | None:
    """The two groups trade colours (None if that could still be true)."""
    if len(scene.groups) != 2:
        return None
    a, b = scene.groups
    if a.color == b.color or a.kind == b.kind:
        return None
    m = {(a.kind, a.color): b.color, (b.kind, b.color): a.color}
    groups = (dataclasses.replace(a, color=b.color),
              dataclasses.replace(b, color=a.color))
    objs = tuple(dataclasses.replace(o, color=m[(o.kind, o.color)])
                 for o in scene.objects)
    return dataclasses.replace(scene, groups=groups, objects=objs)


def flip_relation(scene: Scene) -> Scene | None:
    """The relation replaced by its opposite (None without a relation)."""
    if scene.relation is None:
        return None
    return dataclasses.replace(scene, relation=OPPOSITE[scene.relation])


def _change_group(scene: Scene, i: int, **change) -> Scene:
    """Group i and each of its objects with `change` (kind= or color=)."""
    g = scene.groups[i]
    groups = tuple(dataclasses.replace(h, **change) if n == i else h
                   for n, h in enumerate(scene.groups))
    objs = tuple(dataclasses.replace(o, **change)
                 if (o.kind, o.color) == (g.kind, g.color) else o
                 for o in scene.objects)
    return dataclasses.replace(scene, groups=groups, objects=objs)


def change_kind(scene: Scene, rng: np.random.Generator | None = None
                ) -> Scene:
    """One group drawn as another kind of its family (shape -> shape,
    letter -> letter). Without `rng`: the first group, as the next kind
    (circle -> square), the kind probe; with it: a random group and kind,
    a hard negative."""
    i = 0 if rng is None else int(rng.integers(len(scene.groups)))
    g = scene.groups[i]
    family = vocab.SHAPES if g.kind in vocab.SHAPES else vocab.LETTERS
    used = {(h.kind, h.color) for h in scene.groups}
    j = family.index(g.kind)
    free = [k for k in family[j + 1:] + family[:j]
            if (k, g.color) not in used]
    new = free[0] if rng is None else str(rng.choice(free))
    return _change_group(scene, i, kind=new)


def recolor(scene: Scene, rng: np.random.Generator) -> Scene:
    """One group painted another colour (not the background's)."""
    i = int(rng.integers(len(scene.groups)))
    g = scene.groups[i]
    used = {(h.kind, h.color) for h in scene.groups}
    choices = [c for c in vocab.COLORS if c != scene.background
               and (g.kind, c) not in used]
    return _change_group(scene, i, color=str(rng.choice(choices)))


def hard_negative(scene: Scene, rng: np.random.Generator,
                  p_kind: float = 0.0) -> Scene:
    """A false scene one attribute away: with probability `p_kind` another
    kind, else swap, flip, or recolour."""
    if p_kind > 0 and rng.random() < p_kind:
        return change_kind(scene, rng)
    options = [s for s in (swap_colors(scene), flip_relation(scene))
               if s is not None]
    if options:
        return options[int(rng.integers(len(options)))]
    return recolor(scene, rng)


def mirrored(images: torch.Tensor, scenes: list[Scene]
             ) -> torch.Tensor:
    """Hard-negative images: each relation scene mirrored along its
    relation's axis, so "A left of B" becomes "A right of B" (K, 3, S, S).
    """
    out = [im.flip(-1 if s.relation in ("left of", "right of") else -2)
           for im, s in zip(images, scenes) if s.relation is not None]
    return torch.stack(out) if out else images[:0]


def mirror_pairs(images: torch.Tensor, scenes: list[Scene], seed: int,
                 step: int) -> tuple[torch.Tensor, list[str], list[str]]:
    """Extra *positive* pairs: relation scenes without letters, mirrored,
    with a short caption whose relation is flipped (true for the mirror)
    and, as its hard negative, the original relation (K pairs)."""
    keep = [j for j, s in enumerate(scenes) if s.relation is not None
            and all(g.kind in vocab.SHAPES for g in s.groups)]
    pos, neg = [], []
    for j in keep:
        rng = np.random.default_rng([seed, step, j, 9])
        flipped = flip_relation(scenes[j])
        p, q = caption_pair(flipped, scenes[j], rng, "short")
        pos.append(p)
        neg.append(q)
    return mirrored(images[keep], [scenes[j] for j in keep]), pos, neg


def mirror_scene(scene: Scene) -> Scene:
    """The scene as `mirrored` draws it: object centres reflected along
    the relation's axis and the relation flipped."""
    horizontal = scene.relation in ("left of", "right of")
    objs = tuple(dataclasses.replace(o, cx=1 - o.cx) if horizontal
                 else dataclasses.replace(o, cy=1 - o.cy)
                 for o in scene.objects)
    return dataclasses.replace(flip_relation(scene), objects=objs)


def caption_pair(scene: Scene, negative: Scene, rng: np.random.Generator,
                 style: str = "mixed") -> tuple[str, str]:
    """True and false captions drawn with the same template choices."""
    twin = copy.deepcopy(rng)
    return caption(scene, rng, style), caption(negative, twin, style)



# -- data --------------------------------------------------------------------
def make_images(seed: int, n: int, size: int = 64, progress: bool = False
                ) -> tuple[torch.Tensor, list[Scene]]:
    """World examples 0..n-1 of stream `seed`: uint8 (n, 3, S, S), scenes."""
    imgs = torch.empty(n, 3, size, size, dtype=torch.uint8)
    scenes = []
    for i in tqdm(range(n), desc="render", disable=not progress):
        ex = make_example(seed, i, size)
        imgs[i] = (to_tensor(ex.image) * 255).round().to(torch.uint8)
        scenes.append(ex.scene)
    return imgs, scenes


def heldout_pairs(seed: int, n: int, size: int = 64
                  ) -> tuple[torch.Tensor, list[str]]:
    """n fresh (image, caption) pairs: images (n, 3, S, S) in [0, 1]."""
    imgs, scenes = make_images(seed, n, size)
    caps = [caption(s, np.random.default_rng([seed, i, 1]))
            for i, s in enumerate(scenes)]
    return imgs.float() / 255, caps


def probe_set(seed: int, n: int, kind: str, size: int = 64
              ) -> tuple[torch.Tensor, list[str], list[str]]:
    """n held-out images with true and swapped captions.

    kind 'colors': two groups trade colours; 'relation': left/right or
    above/below flipped; 'kinds': one group drawn as another kind. Scenes
    without such a swap are skipped.
    """
    swap = {"colors": swap_colors, "relation": flip_relation,
            "kinds": change_kind}[kind]
    imgs, pos, neg, i = [], [], [], 0
    while len(imgs) < n:
        ex = make_example(seed, i, size)
        bad = swap(ex.scene)
        if bad is not None:
            rng = np.random.default_rng([seed, i, 2])
            p, q = caption_pair(ex.scene, bad, rng)
            imgs.append(to_tensor(ex.image))
            pos.append(p)
            neg.append(q)
        i += 1
    return torch.stack(imgs), pos, neg


def batch_pairs(scenes: list[Scene], idx: torch.Tensor, seed: int,
                step: int, p_kind: float = 0.0
                ) -> tuple[list[str], list[str], list[Scene]]:
    """Fresh true captions, their hard negatives, and the false scenes."""
    pos, neg, false = [], [], []
    for j, i in enumerate(idx.tolist()):
        rng = np.random.default_rng([seed, step, j])
        bad = hard_negative(scenes[i], rng, p_kind)
        p, q = caption_pair(scenes[i], bad, rng)
        pos.append(p)
        neg.append(q)
        false.append(bad)
    return pos, neg, false


def batch_captions(scenes: list[Scene], idx: torch.Tensor, seed: int,
                   step: int) -> tuple[list[str], list[str]]:
    """Fresh true captions and their hard negatives for one batch."""
    return batch_pairs(scenes, idx, seed, step)[:2]

