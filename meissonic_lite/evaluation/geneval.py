"""GenEval-lite: GenEval's six categories, on the Shapes world (chapter 7).

GenEval (Ghosh et al., 2023) asks an object detector whether an image shows
what its prompt says: single object, two objects, counting, colours,
position and colour attribution. We keep its categories, its prompt
phrasing ("a photo of ...") and its per-category counts (553 prompts;
505 here, as we have only 32 kinds for GenEval's 80 single-object
classes), and use the judge as the detector. Training captions never
use this phrasing, so no held-out prompt is ever seen in training.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..world import vocab
from ..world.scene import Group, Scene, make_scene, relation_holds
from .judge import Detection, count, detect

# GenEval has 80 single-object prompts (one per COCO class); we have
# 32 kinds, so one prompt per kind: 505 prompts in all.
CATEGORIES = {"single_object": len(vocab.KINDS), "two_object": 99,
              "counting": 80, "colors": 94, "position": 100,
              "color_attr": 100}
NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four"}
PROMPT_FILE = "geneval_lite.jsonl"


def _name(kind: str, plural: bool = False) -> str:
    if kind in vocab.LETTERS:
        return f"letter{'s' if plural else ''} {kind}"
    if not plural:
        return kind
    return kind + ("es" if kind.endswith("s") else "s")


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _prompt(tag: str, inc: list[dict], rel: str | None) -> str:
    def obj(d):
        words = ([d["color"]] if "color" in d else []) + [_name(d["kind"])]
        return _a(" ".join(words))
    if tag == "counting":
        d = inc[0]
        return (f"a photo of {NUMBERS[d['count']]} "
                f"{_name(d['kind'], d['count'] > 1)}")
    if tag == "position":
        return f"a photo of {obj(inc[0])} {rel} {obj(inc[1])}"
    return "a photo of " + " and ".join(obj(d) for d in inc)


def make_geneval_prompts(seed: int = 2025) -> list[dict]:
    """The fixed held-out prompt set, with GenEval-style metadata."""
    rng = np.random.default_rng(seed)
    kinds = list(vocab.KINDS)
    weights = np.array([4.0 if k in vocab.SHAPES else 1.0 for k in kinds])
    weights /= weights.sum()
    colors = list(vocab.COLORS)
    out, seen = [], set()
    for tag, n in CATEGORIES.items():
        made = 0
        while made < n:
            k1, k2 = (str(k) for k in rng.choice(kinds, 2, replace=False,
                                                 p=weights))
            c1, c2 = (str(c) for c in rng.choice(colors, 2))
            rel = None
            if tag == "single_object":
                inc = [{"kind": kinds[made], "count": 1}]
            elif tag == "two_object":
                inc = [{"kind": k1, "count": 1}, {"kind": k2, "count": 1}]
            elif tag == "counting":
                inc = [{"kind": k1, "count": int(rng.integers(1, 5))}]
            elif tag == "colors":
                inc = [{"kind": k1, "color": c1, "count": 1}]
            elif tag == "position":
                rel = str(rng.choice(vocab.RELATIONS))
                inc = [{"kind": k1, "count": 1}, {"kind": k2, "count": 1}]
            else:
                if c1 == c2:
                    continue
                inc = [{"kind": k1, "color": c1, "count": 1},
                       {"kind": k2, "color": c2, "count": 1}]
            text = _prompt(tag, inc, rel)
            if text in seen:
                continue
            seen.add(text)
            item = {"tag": tag, "prompt": text, "include": inc}
            if rel:
                item["relation"] = rel
            out.append(item)
            made += 1
    return out


def default_prompt_path() -> Path:
    """data/geneval_lite.jsonl in a source checkout."""
    return Path(__file__).resolve().parents[2] / "data" / PROMPT_FILE


def load_geneval_prompts(path: str | Path | None = None) -> list[dict]:
    """Read the prompt file (default: the repo's data/ copy, else the
    identical set regenerated from its seed)."""
    path = Path(path) if path is not None else default_prompt_path()
    if not path.exists():
        return make_geneval_prompts()
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def prompt_scene(item: dict, seed: int = 0) -> Scene:
    """A Shapes-world scene that satisfies a GenEval-lite prompt."""
    rng = np.random.default_rng(seed)
    used = {d["color"] for d in item["include"] if "color" in d}
    groups = []
    for d in item["include"]:
        free = [c for c in vocab.COLORS if c not in used]
        color = d.get("color") or str(rng.choice(free))
        used.add(color)
        size = str(rng.choice(list(vocab.SIZES)))
        groups.append(Group(d["kind"], color, size, d["count"]))
    bgs = [b for b in vocab.BACKGROUNDS if b not in used]
    return make_scene(groups, str(rng.choice(bgs)), item.get("relation"),
                      seed=int(rng.integers(1 << 31)))


def score_item(item: dict, dets: list[Detection]) -> bool:
    """Does the image (as the judge saw it) satisfy the prompt?"""
    tag, inc = item["tag"], item["include"]
    by_kind = {}
    for d in dets:
        by_kind.setdefault(d.kind, []).append(d)
    if tag == "counting":
        return len(by_kind.get(inc[0]["kind"], [])) == inc[0]["count"]
    if any(not by_kind.get(d["kind"]) for d in inc):
        return False
    if tag in ("colors", "color_attr"):
        return all(count(by_kind[d["kind"]])[(d["kind"], d["color"])] > 0
                   and len({x.color for x in by_kind[d["kind"]]}) == 1
                   for d in inc)
    if tag == "position":
        a, b = by_kind[inc[0]["kind"]][0], by_kind[inc[1]["kind"]][0]
        return relation_holds(item["relation"], (a.cx, a.cy), (b.cx, b.cy))
    return True


def geneval_lite(images, prompts: list[dict]) -> dict[str, float]:
    """Score images against their prompts: per category and overall
    (the mean of the six category scores, as GenEval reports)."""
    images = list(images)
    if len(images) != len(prompts):
        raise ValueError(f"{len(images)} images for {len(prompts)} "
                         "prompts: give one image per prompt")
    return score_detections([detect(img) for img in images], prompts)


def score_detections(detections: list[list[Detection]],
                     prompts: list[dict]) -> dict[str, float]:
    """GenEval-lite from what the judge saw in each image (so a harness
    that also counts the detections runs the judge once)."""
    if len(detections) != len(prompts):
        raise ValueError(f"{len(detections)} detection lists for "
                         f"{len(prompts)} prompts")
    hits: dict[str, list[bool]] = {t: [] for t in CATEGORIES}
    for dets, item in zip(detections, prompts):
        if item["tag"] not in hits:
            raise ValueError(f"unknown category {item['tag']!r}; allowed:"
                             f" {', '.join(CATEGORIES)}")
        hits[item["tag"]].append(score_item(item, dets))
    scores = {t: float(np.mean(h)) for t, h in hits.items() if h}
    scores["overall"] = float(np.mean(list(scores.values())))
    return scores
