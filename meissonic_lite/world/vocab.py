"""The Shapes world's fixed vocabulary: kinds, colours, sizes, relations.

Later chapters (captions, the judge, GenEval-lite) depend on these exact
names and RGB values, so they live in one place and are validated here.
"""

from __future__ import annotations

import string

SHAPES: tuple[str, ...] = (
    "circle", "square", "triangle", "star", "cross", "diamond")
LETTERS: tuple[str, ...] = tuple(string.ascii_uppercase)
KINDS: tuple[str, ...] = SHAPES + LETTERS

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 30),
    "yellow": (240, 220, 40),
    "green": (40, 170, 70),
    "blue": (40, 90, 220),
    "purple": (140, 60, 190),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
# Backgrounds: white, black, gray, or any object colour (by name).
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    **COLORS, "gray": (128, 128, 128)}

SIZES: dict[str, float] = {"small": 0.2, "large": 0.32}
"""Object side as a fraction of the image's shorter side."""

RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
MAX_COUNT = 4
MIN_PX, MAX_PX = 32, 512


def _check(value: str, allowed, what: str) -> str:
    if value not in allowed:
        raise ValueError(
            f"unknown {what} {value!r}; allowed: {', '.join(allowed)}")
    return value


def check_kind(kind: str) -> str:
    """Validate an object kind: a shape name or one uppercase letter."""
    return _check(kind, KINDS, "kind")


def check_color(color: str) -> str:
    """Validate an object colour name."""
    return _check(color, tuple(COLORS), "colour")


def check_background(bg: str) -> str:
    """Validate a background colour name."""
    return _check(bg, tuple(BACKGROUNDS), "background")


def check_size(size: str) -> str:
    """Validate a size name ('small' or 'large')."""
    return _check(size, tuple(SIZES), "size")


def check_relation(rel: str) -> str:
    """Validate a two-object relation."""
    return _check(rel, RELATIONS, "relation")


def check_count(count: int) -> int:
    """Validate how many objects of one kind (1..MAX_COUNT)."""
    if not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise ValueError(
            f"count must be an int in 1..{MAX_COUNT}, got {count!r}")
    return count


def check_pixels(width: int, height: int) -> tuple[int, int]:
    """Validate an image size in pixels (MIN_PX..MAX_PX each side)."""
    for name, v in (("width", width), ("height", height)):
        if not isinstance(v, int) or not MIN_PX <= v <= MAX_PX:
            raise ValueError(
                f"{name} must be an int in {MIN_PX}..{MAX_PX} px, "
                f"got {v!r}")
    return width, height


def kind_phrase(kind: str) -> str:
    """How a caption names a kind: 'circle' or 'letter K'."""
    return f"letter {kind}" if kind in LETTERS else kind
