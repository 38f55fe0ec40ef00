"""Training examples with Meissonic's micro-conditions, and a Dataset
(chapter 1).

Each example follows Meissonic's preprocessing (spec 4.4): the scene is
rendered at a random *original* size, the shorter side is resized to the
training size S, and a random S x S crop is taken. The objects are laid out
inside that crop so the caption stays true. Then random degradations are
applied and the aesthetic score is *measured*. The micro-conditions are
[orig_w, orig_h, crop_top, crop_left, score], as the paper feeds them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from . import quality, vocab
from .captions import caption
from .render import render
from .scene import Obj, Scene, sample_scene

ASPECTS = (1.0, 1.0, 4 / 3, 3 / 4, 3 / 2, 2 / 3)


@dataclass
class Example:
    """One training example: image, caption, micro-conditions, truth."""

    image: Image.Image
    caption: str
    micro_conds: tuple[float, float, float, float, float]
    scene: Scene                 # objects in the final (cropped) image
    strengths: dict


def _original_size(rng, size: int) -> tuple[int, int]:
    short = int(np.clip(round(size * rng.uniform(0.5, 4.0)),
                        vocab.MIN_PX, vocab.MAX_PX))
    aspect = float(rng.choice(ASPECTS))
    long = int(min(vocab.MAX_PX, round(short * max(aspect, 1 / aspect))))
    return (long, short) if aspect >= 1 else (short, long)


def make_example(seed: int, index: int, size: int = 64,
                 caption_style: str = "mixed", p_clean: float = 0.3,
                 degrade: bool = True) -> Example:
    """Example `index` of the stream `seed`: deterministic from both."""
    vocab.check_pixels(size, size)
    rng = np.random.default_rng([seed, index])
    scene = sample_scene(rng)                       # in the crop window
    W0, H0 = _original_size(rng, size)
    k = size / min(W0, H0)                          # resize factor
    W1, H1 = max(size, round(W0 * k)), max(size, round(H0 * k))
    top = int(rng.integers(0, H1 - size + 1))
    left = int(rng.integers(0, W1 - size + 1))
    win = min(W0, H0)                               # crop side, original px
    x0, y0 = left / k, top / k
    canvas_objs = tuple(
        Obj(o.kind, o.color, o.size, (x0 + o.cx * win) / W0,
            (y0 + o.cy * win) / H0) for o in scene.objects)
    canvas = Scene(scene.background, scene.groups, canvas_objs,
                   scene.relation, aspect=W0 / H0)
    ss = 4 if max(W0, H0) <= 128 else 2
    img = render(canvas, W0, H0, supersample=ss)
    img = img.resize((W1, H1), Image.Resampling.BILINEAR)
    img = img.crop((left, top, left + size, top + size))
    strengths = quality.random_strengths(rng, p_clean) if degrade else {}
    img = quality.degrade(img, strengths, rng)
    score = quality.aesthetic_score(img)
    text = caption(scene, rng, caption_style)
    return Example(img, text, (float(W0), float(H0), float(top),
                               float(left), score), scene, strengths)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> float tensor (3, H, W) in [0, 1]."""
    x = torch.from_numpy(np.asarray(img.convert("RGB"), np.uint8).copy())
    return x.permute(2, 0, 1).float() / 255.0


class ShapesDataset(torch.utils.data.Dataset):
    """`length` deterministic examples of the world at `size` pixels.

    Items are dicts {"image": (3, S, S) float in [0, 1], "caption": str,
    "micro_conds": (5,) float}, the format Meissonic's trainer expects.
    """

    def __init__(self, length: int, size: int = 64, seed: int = 0,
                 caption_style: str = "mixed", p_clean: float = 0.3,
                 degrade: bool = True):
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        vocab.check_pixels(size, size)
        self.length, self.size, self.seed = length, size, seed
        self.caption_style, self.p_clean = caption_style, p_clean
        self.degrade = degrade

    def __len__(self) -> int:
        return self.length

    def example(self, i: int) -> Example:
        """The full Example (with its scene) behind item i."""
        if not 0 <= i < self.length:
            raise IndexError(f"index {i} out of range 0..{self.length - 1}")
        return make_example(self.seed, i, self.size, self.caption_style,
                            self.p_clean, self.degrade)

    def __getitem__(self, i: int) -> dict:
        ex = self.example(i)
        return {"image": to_tensor(ex.image), "caption": ex.caption,
                "micro_conds": torch.tensor(ex.micro_conds)}
