"""Captions for Shapes-world scenes: many templates, all true (chapter 1).

Short captions name the objects ("red circle."); long ones add sizes,
background, positions and relations in several clauses, so a text encoder
must bind attributes to the right object. Held-out evaluation prompts use
GenEval's own phrasing ("a photo of ..."), which training never produces.
"""

from __future__ import annotations

import numpy as np

from . import vocab
from .scene import Group, Obj, Scene

NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}
SHAPE_SYNONYMS = {
    "circle": ["circle", "disc", "round dot"],
    "square": ["square", "box"],
    "triangle": ["triangle"],
    "star": ["star", "five-pointed star"],
    "cross": ["cross", "plus sign"],
    "diamond": ["diamond", "rhombus"],
}
BG_PHRASES = ["on a {bg} background", "against a plain {bg} background",
              "on {bg}", "over a solid {bg} backdrop"]
REL_SYNONYMS = {
    "left of": ["to the left of", "left of", "on the left of"],
    "right of": ["to the right of", "right of", "on the right of"],
    "above": ["above", "over", "on top of"],
    "below": ["below", "under", "beneath"],
}


def _noun(kind: str, rng: np.random.Generator, plural: bool) -> str:
    if kind in vocab.LETTERS:
        return f"letter{'s' if plural else ''} {kind}"
    word = str(rng.choice(SHAPE_SYNONYMS[kind]))
    if not plural:
        return word
    if word.endswith(("x", "s")):
        return word + "es"
    return word + "s"


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def group_phrase(g: Group, rng: np.random.Generator,
                 with_size: bool = False, with_color: bool = True) -> str:
    """Name a group: 'a red circle', 'three small blue stars'."""
    words = []
    if with_size:
        words.append(g.size)
    if with_color:
        words.append(g.color)
    words.append(_noun(g.kind, rng, g.count > 1))
    body = " ".join(words)
    if g.count == 1:
        return f"{_article(body)} {body}"
    return f"{NUMBER_WORDS[g.count]} {body}"


def region(obj: Obj) -> str:
    """Where an object sits on a 3x3 grid: 'top left', 'centre', ..."""
    row = ("top", "middle", "bottom")[min(2, int(obj.cy * 3))]
    col = ("left", "centre", "right")[min(2, int(obj.cx * 3))]
    if row == "middle" and col == "centre":
        return "centre"
    if row == "middle":
        return f"middle {col}"
    return f"{row} {col}" if col != "centre" else f"{row} centre"


def short_caption(scene: Scene, rng: np.random.Generator) -> str:
    """A terse caption: 'red circle.' or 'two blue stars and a square.'"""
    parts = [group_phrase(g, rng) for g in scene.groups]
    if scene.relation is not None:
        rel = str(rng.choice(REL_SYNONYMS[scene.relation]))
        text = f"{parts[0]} {rel} {parts[1]}"
    else:
        text = " and ".join(parts)
    if rng.random() < 0.5 and len(scene.groups) == 1 \
            and scene.groups[0].count == 1:
        text = text.split(" ", 1)[1]           # drop the article
    return text + "."


def long_caption(scene: Scene, rng: np.random.Generator) -> str:
    """A descriptive caption naming sizes, background and positions."""
    bg = str(rng.choice(BG_PHRASES)).format(bg=scene.background)
    parts = [group_phrase(g, rng, with_size=True) for g in scene.groups]
    if scene.relation is not None:
        rel = str(rng.choice(REL_SYNONYMS[scene.relation]))
        first = f"{_cap(parts[0])} sits {rel} {parts[1]} {bg}."
    else:
        verb = "is" if scene.groups[0].count == 1 else "are"
        first = f"{_cap(parts[0])} {verb} shown {bg}"
        first += (f", together with {parts[1]}." if len(parts) > 1
                  else ".")
    clauses = [first]
    for g in scene.groups:
        objs = [o for o in scene.objects
                if (o.kind, o.color) == (g.kind, g.color)]
        if g.count == 1:
            noun = _noun(g.kind, rng, False)
            clauses.append(f"The {g.color} {noun} is in the "
                           f"{region(objs[0])} of the image.")
        elif rng.random() < 0.5:
            clauses.append(f"There are exactly {NUMBER_WORDS[g.count]} "
                           f"{g.color} {_noun(g.kind, rng, True)}.")
    if rng.random() < 0.5:
        n = len(scene.objects)
        clauses.append(f"In total the picture holds {NUMBER_WORDS.get(n, n)}"
                       f" object{'s' if n > 1 else ''}.")
    return " ".join(clauses)


def caption(scene: Scene, rng: np.random.Generator,
            style: str = "mixed") -> str:
    """A caption of `style` 'short', 'long' or 'mixed' (either, 50/50)."""
    if style not in ("short", "long", "mixed"):
        raise ValueError(f"unknown caption style {style!r}; allowed: "
                         "short, long, mixed")
    if style == "mixed":
        style = "short" if rng.random() < 0.5 else "long"
    return (short_caption if style == "short" else long_caption)(scene, rng)
