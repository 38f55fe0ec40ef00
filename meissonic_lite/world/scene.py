"""Scenes of the Shapes world: what is where, independent of pixels
(chapter 1).

A scene is a background plus groups of identical objects (kind, colour,
size, count) laid out without overlap, and optionally one spatial relation
between two single objects. Positions are fractions of width and height, so
one scene renders at any size or aspect ratio it was laid out for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import vocab

GAP = 0.05          # free space between objects, in short-side units
MARGIN = 0.03       # free space to the image border, in short-side units
MAX_TRIES = 400


@dataclass(frozen=True)
class Group:
    """`count` identical objects: same kind, colour and size."""

    kind: str
    color: str
    size: str = "large"
    count: int = 1

    def __post_init__(self):
        vocab.check_kind(self.kind)
        vocab.check_color(self.color)
        vocab.check_size(self.size)
        vocab.check_count(self.count)


@dataclass(frozen=True)
class Obj:
    """One placed object; (cx, cy) is its centre as fractions of W and H."""

    kind: str
    color: str
    size: str
    cx: float
    cy: float


@dataclass(frozen=True)
class Scene:
    """A laid-out scene: background, groups, placed objects, relation."""

    background: str
    groups: tuple[Group, ...]
    objects: tuple[Obj, ...]
    relation: str | None = None   # groups[0] <relation> groups[1]
    aspect: float = 1.0           # width / height it was laid out for
    meta: dict = field(default_factory=dict, compare=False)


def _extent(aspect: float) -> tuple[float, float]:
    """Canvas width and height in short-side units."""
    return (aspect, 1.0) if aspect >= 1 else (1.0, 1.0 / aspect)


def relation_holds(rel: str, a: tuple[float, float],
                   b: tuple[float, float], min_offset: float = 0.0,
                   dominance: float = 1.0) -> bool:
    """True if point a is `rel` point b: the offset along the relation's
    axis exceeds `min_offset` and is over `dominance` times the other."""
    if rel not in vocab.RELATIONS:
        raise ValueError(f"unknown relation {rel!r}; allowed: "
                         f"{', '.join(vocab.RELATIONS)}")
    dx, dy = b[0] - a[0], b[1] - a[1]
    main, other = (dx, dy) if rel in ("left of", "right of") else (dy, dx)
    if rel in ("right of", "below"):
        main = -main
    return abs(main) > dominance * abs(other) and main > min_offset


def _separated(p, s, q, t) -> bool:
    need = (s + t) / 2 + GAP
    return abs(p[0] - q[0]) >= need or abs(p[1] - q[1]) >= need


def layout(groups: tuple[Group, ...], rng: np.random.Generator,
           relation: str | None = None, aspect: float = 1.0
           ) -> tuple[Obj, ...]:
    """Place every object of `groups` without overlap (rejection sampling).

    Raises ValueError when the objects cannot fit, e.g. too many large ones.
    """
    if relation is not None:
        vocab.check_relation(relation)
        if len(groups) != 2 or any(g.count != 1 for g in groups):
            raise ValueError("a relation needs exactly two groups of one "
                             "object each")
    ew, eh = _extent(aspect)
    sides = [vocab.SIZES[g.size] for g in groups for _ in range(g.count)]
    area = sum((s + GAP) ** 2 for s in sides)
    if area > 0.6 * ew * eh:
        raise ValueError(
            f"impossible scene: {len(sides)} objects of total area "
            f"{area:.2f} do not fit a {ew:.2f}x{eh:.2f} canvas")
    for _ in range(MAX_TRIES):
        placed: list[tuple[tuple[float, float], float]] = []
        ok = True
        for s in sides:
            lo, hi = s / 2 + MARGIN, np.array([ew, eh]) - s / 2 - MARGIN
            for _ in range(60):
                p = tuple(rng.uniform(lo, hi))
                if all(_separated(p, s, q, t) for q, t in placed):
                    placed.append((p, s))
                    break
            else:
                ok = False
                break
        if ok and relation is not None:
            ok = relation_holds(relation, placed[0][0], placed[1][0],
                                min_offset=0.1, dominance=1.5)
        if ok:
            objs, i = [], 0
            for g in groups:
                for _ in range(g.count):
                    (x, y), _s = placed[i]
                    objs.append(Obj(g.kind, g.color, g.size,
                                    float(x / ew), float(y / eh)))
                    i += 1
            return tuple(objs)
    raise ValueError(
        f"impossible scene: could not place {len(sides)} objects "
        f"without overlap in {MAX_TRIES} tries")


def make_scene(groups, background: str = "white",
               relation: str | None = None, aspect: float = 1.0,
               seed: int = 0) -> Scene:
    """Build a scene from a description, e.g. for prompts and edits."""
    groups = tuple(g if isinstance(g, Group) else Group(**g)
                   for g in groups)
    vocab.check_background(background)
    for g in groups:
        if g.color == background:
            raise ValueError(f"a {g.color} object cannot sit on a "
                             f"{background} background")
    keys = [(g.kind, g.color) for g in groups]
    if len(set(keys)) != len(keys):
        raise ValueError("two groups with the same kind and colour: "
                         "merge them into one group with a count")
    rng = np.random.default_rng(seed)
    objs = layout(groups, rng, relation, aspect)
    return Scene(background, groups, objs, relation, aspect)


def sample_scene(rng: np.random.Generator, aspect: float = 1.0,
                 max_groups: int = 2) -> Scene:
    """Draw a random scene: 1-2 groups, counts 1-4, maybe a relation."""
    while True:
        n_groups = 1 if max_groups == 1 else int(rng.integers(1, 3))
        bg = str(rng.choice(list(vocab.BACKGROUNDS)))
        colors = [c for c in vocab.COLORS if c != bg]
        groups = []
        for _ in range(n_groups):
            shape_kind = rng.random() < 0.7
            kind = str(rng.choice(vocab.SHAPES if shape_kind
                                  else vocab.LETTERS))
            count = int(rng.choice([1, 1, 2, 3, 4]))
            if n_groups == 2 and rng.random() < 0.5:
                count = 1
            size = str(rng.choice(list(vocab.SIZES)))
            groups.append(Group(kind, str(rng.choice(colors)), size, count))
        if len({(g.kind, g.color) for g in groups}) < n_groups:
            continue
        relation = None
        if n_groups == 2 and all(g.count == 1 for g in groups) \
                and rng.random() < 0.7:
            relation = str(rng.choice(vocab.RELATIONS))
        try:
            objs = layout(tuple(groups), rng, relation, aspect)
        except ValueError:
            continue
        return Scene(bg, tuple(groups), objs, relation, aspect)
