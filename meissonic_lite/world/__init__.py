"""The Shapes world: procedural, captioned, judgeable images (chapter 1).

Meissonic trained on filtered LAION plus curated data. We cannot download
any of that, so the book's world is drawn by code: shapes and letters in
eight colours, with captions that are true by construction, Meissonic's
micro-conditions, and a measurable aesthetic score.
"""

from .captions import caption, long_caption, short_caption
from .dataset import Example, ShapesDataset, make_example, to_tensor
from .quality import aesthetic_score, degrade
from .render import render
from .scene import Group, Obj, Scene, make_scene, relation_holds, \
    sample_scene
from .vocab import (BACKGROUNDS, COLORS, KINDS, LETTERS, RELATIONS,
                    SHAPES, SIZES)

__all__ = [
    "BACKGROUNDS", "COLORS", "KINDS", "LETTERS", "RELATIONS", "SHAPES",
    "SIZES", "Example", "Group", "Obj", "Scene", "ShapesDataset",
    "aesthetic_score", "caption", "degrade", "long_caption", "make_example",
    "make_scene", "relation_holds", "render", "sample_scene",
    "short_caption", "to_tensor",
]
