"""Image quality in the Shapes world: degradations and an aesthetic score
(chapter 1).

Meissonic conditions on a human-preference score (HPS). Our stand-in is a
real, no-reference measurement: clean renders use only the world's palette,
and noise, blur, JPEG artefacts and colour casts all push pixels away from
it. The score maps the mean distance to the palette onto [0, 10], so it can
be measured on any image, including the model's own outputs.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

from . import vocab

PALETTE = np.array(sorted(set(vocab.BACKGROUNDS.values())), np.float32)
SCALE = 15.0  # mean palette distance (0..255) that costs ~6.3 points
DEGRADATIONS = ("noise", "blur", "jpeg", "cast")


def palette_distance(img: Image.Image | np.ndarray) -> np.ndarray:
    """Per-pixel RGB distance to the nearest palette colour, (H, W)."""
    x = np.asarray(img, np.float32)[..., :3]
    d = np.linalg.norm(x[..., None, :] - PALETTE, axis=-1)   # (H, W, P)
    return d.min(-1)


def aesthetic_score(img: Image.Image | np.ndarray) -> float:
    """Score in [0, 10]: 10 for a clean render, lower when degraded."""
    d = float(palette_distance(img).mean())
    return float(10.0 * np.exp(-d / SCALE))


def degrade(img: Image.Image, strengths: dict[str, float],
            rng: np.random.Generator) -> Image.Image:
    """Apply degradations {name: strength in [0, 1]} in a fixed order."""
    for name, s in strengths.items():
        if name not in DEGRADATIONS:
            raise ValueError(f"unknown degradation {name!r}; allowed: "
                             f"{', '.join(DEGRADATIONS)}")
        if not 0.0 <= s <= 1.0:
            raise ValueError(f"strength of {name} must be in [0, 1], "
                             f"got {s}")
    scale = min(img.size) / 64
    s = {k: float(strengths.get(k, 0.0)) for k in DEGRADATIONS}
    if s["blur"] > 0:
        img = img.filter(ImageFilter.GaussianBlur(1.5 * s["blur"] * scale))
    x = np.asarray(img, np.float32)
    if s["cast"] > 0:
        direction = rng.normal(size=3)
        x = x + 40 * s["cast"] * direction / np.linalg.norm(direction)
    if s["noise"] > 0:
        x = x + rng.normal(0, 30 * s["noise"], size=x.shape)
    img = Image.fromarray(np.clip(x, 0, 255).round().astype(np.uint8))
    if s["jpeg"] > 0:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=int(round(90 - 85 * s["jpeg"])))
        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return img


def random_strengths(rng: np.random.Generator,
                     p_clean: float = 0.3) -> dict[str, float]:
    """Random degradation strengths: clean with prob p_clean, else 1-4."""
    if rng.random() < p_clean:
        return {}
    level = rng.uniform(0.05, 1.0)
    names = [n for n in DEGRADATIONS if rng.random() < 0.5]
    names = names or [str(rng.choice(DEGRADATIONS))]
    return {n: float(level * rng.uniform(0.5, 1.0)) for n in names}
