"""How well the judge reads fresh renders: precision, recall, exact match
(chapter 1).

The judge is only useful as a referee if it is right on images whose truth
is known. This measures it on freshly sampled scenes at several sizes.
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from ..world.dataset import make_example
from ..world.render import render
from ..world.scene import sample_scene
from .judge import ACCEPT_SCORE, detect, match_scene


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


def true_score_envelope(n: int = 300, sizes=(64, 128, 256), seed: int = 5,
                        p_clean: float = 0.0, progress: bool = True
                        ) -> dict[int, dict[str, float]]:
    """Template distances of the judge's *correct* detections on world
    images (degraded unless `p_clean`): {size: {max, p99, median, kept,
    n}}, `kept` the share at or below `judge.ACCEPT_SCORE`.

    This is how the judge's acceptance threshold (`judge.ACCEPT_SCORE`)
    is set: from images whose truth is known, never from a model's
    output. Every component is scored (no threshold) and kept when it
    matches a true object by kind, colour and place."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    out = {}
    for size in sizes:
        scores = []
        for i in tqdm(range(n), desc=f"scores @ {size}px",
                      disable=not progress):
            ex = make_example(seed, i, size, "short", p_clean)
            for d in detect(ex.image, max_score=None):
                if match_scene(ex.scene, [d], size_matters=False)[0]:
                    scores.append(d.score)
        a = np.array(scores)
        out[size] = {"max": float(a.max()),
                     "p99": float(np.percentile(a, 99)),
                     "median": float(np.median(a)),
                     "kept": float((a <= ACCEPT_SCORE).mean()), "n": len(a)}
    return out
