"""Draw a Scene to pixels: anti-aliased, deterministic, any size (chapter 1).

Shapes are polygons drawn at `supersample` times the target size and
box-filtered down, which gives anti-aliased edges with no randomness.
Letters use Pillow's bundled scalable font (offline, no system fonts).
"""

from __future__ import annotations

import math
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from . import vocab
from .scene import Obj, Scene


def _star(n: int = 5, inner: float = 0.42) -> list[tuple[float, float]]:
    pts = []
    for i in range(2 * n):
        r = 1.0 if i % 2 == 0 else inner
        a = -math.pi / 2 + i * math.pi / n
        pts.append((r * math.cos(a), r * math.sin(a)))
    return pts


_ARM = 1 / 3
POLYGONS: dict[str, list[tuple[float, float]]] = {
    "square": [(-1, -1), (1, -1), (1, 1), (-1, 1)],
    "triangle": [(0, -1), (1, 1), (-1, 1)],
    "diamond": [(0, -1), (0.75, 0), (0, 1), (-0.75, 0)],
    "star": _star(),
    "cross": [(-_ARM, -1), (_ARM, -1), (_ARM, -_ARM), (1, -_ARM),
              (1, _ARM), (_ARM, _ARM), (_ARM, 1), (-_ARM, 1),
              (-_ARM, _ARM), (-1, _ARM), (-1, -_ARM), (-_ARM, -_ARM)],
}


def _fit(points, cx: float, cy: float, side: float):
    """Scale a polygon so its larger bbox side is `side`, centred."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    w, h = max(xs) - min(xs), max(ys) - min(ys)
    k = side / max(w, h)
    mx, my = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    return [(cx + (x - mx) * k, cy + (y - my) * k) for x, y in points]


@lru_cache(maxsize=256)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


@lru_cache(maxsize=4096)
def _glyph(letter: str, side: int) -> Image.Image:
    """A bold glyph mask whose larger bbox side is `side` pixels."""
    ref = 200
    stroke = max(1, round(ref * 0.05))
    font = _font(ref)
    box = font.getbbox(letter, stroke_width=stroke)
    img = Image.new("L", (box[2] - box[0] + 4, box[3] - box[1] + 4), 0)
    ImageDraw.Draw(img).text((2 - box[0], 2 - box[1]), letter, fill=255,
                             font=font, stroke_width=stroke,
                             stroke_fill=255)
    img = img.crop(img.getbbox())
    k = side / max(img.size)
    size = (max(1, round(img.width * k)), max(1, round(img.height * k)))
    return img.resize(size, Image.Resampling.LANCZOS)


def _draw(canvas: Image.Image, obj: Obj, short: float) -> None:
    W, H = canvas.size
    cx, cy = obj.cx * W, obj.cy * H
    side = vocab.SIZES[obj.size] * short
    rgb = vocab.COLORS[obj.color]
    draw = ImageDraw.Draw(canvas)
    if obj.kind == "circle":
        r = side / 2
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=rgb)
    elif obj.kind in POLYGONS:
        draw.polygon(_fit(POLYGONS[obj.kind], cx, cy, side), fill=rgb)
    else:
        mask = _glyph(obj.kind, max(1, round(side)))
        x0 = round(cx - mask.width / 2)
        y0 = round(cy - mask.height / 2)
        canvas.paste(Image.new("RGB", mask.size, rgb), (x0, y0), mask)


def render(scene: Scene, width: int = 64, height: int | None = None,
           supersample: int = 4) -> Image.Image:
    """Render `scene` to an RGB PIL image of `width` x `height` pixels."""
    height = width if height is None else height
    vocab.check_pixels(width, height)
    if abs(width / height - scene.aspect) > 0.02:
        raise ValueError(
            f"scene was laid out for aspect {scene.aspect:.3f} (w/h) but "
            f"asked to render {width}x{height}")
    W, H = width * supersample, height * supersample
    canvas = Image.new("RGB", (W, H), vocab.BACKGROUNDS[scene.background])
    for obj in scene.objects:
        _draw(canvas, obj, min(W, H))
    if supersample == 1:
        return canvas
    return canvas.resize((width, height), Image.Resampling.BOX)
