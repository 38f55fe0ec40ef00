"""Sample grids: many world examples with their captions, as one image
(chapter 1)."""

from __future__ import annotations

import textwrap

from PIL import Image, ImageDraw, ImageFont

from .dataset import make_example


def captioned_grid(images, captions, cols: int = 4,
                   text_lines: int = 4) -> Image.Image:
    """Paste images in a grid with a wrapped caption under each."""
    images = list(images)
    if not images:
        raise ValueError("no images to put in a grid")
    if len(captions) != len(images):
        raise ValueError(f"{len(images)} images but {len(captions)} "
                         "captions")
    if cols < 1:
        raise ValueError(f"cols must be >= 1, got {cols}")
    w, h = images[0].size
    font = ImageFont.load_default(size=max(9, w // 14))
    line_h = font.size + 2
    chars = max(8, int(w / (font.size * 0.55)))
    cell_h = h + text_lines * line_h + 4
    rows = -(-len(images) // cols)
    grid = Image.new("RGB", (cols * w, rows * cell_h), "white")
    draw = ImageDraw.Draw(grid)
    for i, (img, cap) in enumerate(zip(images, captions)):
        x, y = (i % cols) * w, (i // cols) * cell_h
        grid.paste(img.convert("RGB").resize((w, h)), (x, y))
        lines = textwrap.wrap(cap, chars)[:text_lines]
        for k, line in enumerate(lines):
            draw.text((x + 2, y + h + 2 + k * line_h), line, fill="black",
                      font=font)
    return grid


def sample_grid(n: int = 16, size: int = 128, seed: int = 0,
                cols: int = 4) -> Image.Image:
    """A grid of `n` training examples of the world with captions."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    exs = [make_example(seed, i, size) for i in range(n)]
    return captioned_grid([e.image for e in exs],
                          [e.caption for e in exs], cols)
