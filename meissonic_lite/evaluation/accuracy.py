"""How well the judge reads fresh renders: precision, recall, exact match.

The judge is only useful as a referee if it is right on images whose truth
is known. This measures it on freshly sampled scenes at several sizes.
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from ..world.render import render
from ..world.scene import sample_scene
from .judge import detect, match_scene


def judge_accuracy(n: int = 2000, sizes=(64, 128, 256), seed: int = 1,
                   progress: bool = True) -> dict[int, dict[str, float]]:
    """{size: {precision, recall, exact, n}} on `n` fresh scenes a size."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    out = {}
    for size in sizes:
        rng = np.random.default_rng([seed, size])
        matched = truth = seen = exact = 0
        for _ in tqdm(range(n), desc=f"judge @ {size}px",
                      disable=not progress):
            scene = sample_scene(rng)
            m, t, d = match_scene(scene, detect(render(scene, size)))
            matched, truth, seen = matched + m, truth + t, seen + d
            exact += int(m == t == d)
        out[size] = {"precision": matched / max(seen, 1),
                     "recall": matched / truth, "exact": exact / n,
                     "n": n}
    return out
