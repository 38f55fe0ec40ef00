"""Measure a text-to-image pipeline: GenEval-lite, the aesthetic check, sweeps
(chapter 7).

The judge (`evaluation`) only reads pixels; this module is the harness that
asks a pipeline for images of the held-out GenEval-lite prompts and hands
them to the judge, so the referee never sees a model. `meissonic-lite eval
geneval|aesthetic|sweep|phrasing|floor` runs `measure`.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from tqdm.auto import tqdm

from ..sampling.pipeline import (
    DEFAULT_BLOB_NOISE,
    DEFAULT_GUIDANCE,
    DEFAULT_STEPS,
    MeissonicLitePipeline,
)
from ..world.quality import aesthetic_score
from .geneval import geneval_lite, load_geneval_prompts, score_detections
from .judge import detect


def generate(pipe, prompts: list[str], steps: int = DEFAULT_STEPS,
             guidance: float = DEFAULT_GUIDANCE, seed: int = 0,
             batch: int = 32,
             size: int = 128, aesthetic: float = 9.0,
             progress: bool = True,
             blob_noise: float = DEFAULT_BLOB_NOISE,
             token_temperature: float = 1.0) -> list:
    """One image per prompt; batch k uses generator seed `seed + k`, so
    results depend only on (seed, batch), never on what ran before."""
    images = []
    chunks = range(0, len(prompts), batch)
    for k, i in enumerate(tqdm(chunks, desc="generate",
                               disable=not progress)):
        images += pipe(prompts[i:i + batch], num_inference_steps=steps,
                       guidance_scale=guidance, height=size, width=size,
                       aesthetic_score=aesthetic, blob_noise=blob_noise,
                       token_temperature=token_temperature,
                       generator=torch.Generator().manual_seed(seed + k))
    return images


def held_out_items(limit: int | None = None) -> list[dict]:
    """The GenEval-lite prompts, or every k-th of them, `limit` in all
    (the slice quick checks, sweeps and probes share)."""
    items = load_geneval_prompts()
    if limit is not None and limit < len(items):
        items = items[::max(1, len(items) // limit)][:limit]
    return items


def evaluate_geneval(pipe, steps: int = DEFAULT_STEPS,
                     guidance: float = DEFAULT_GUIDANCE,
                     seed: int = 0, limit: int | None = None,
                     batch: int = 32, progress: bool = True,
                     blob_noise: float = DEFAULT_BLOB_NOISE,
                     token_temperature: float = 1.0) -> dict:
    """GenEval-lite scores (six categories + overall) of `pipe` on the
    held-out prompts (`limit`: every k-th prompt, for quick looks), and
    `objects_per_image`: how many objects the judge saw in an image, on
    average (a prompt asks for 1-4; more means clutter)."""
    items = held_out_items(limit)
    t0 = time.perf_counter()
    images = generate(pipe, [it["prompt"] for it in items], steps, guidance,
                      seed, batch, progress=progress, blob_noise=blob_noise,
                      token_temperature=token_temperature)
    dets = [detect(im) for im in images]
    scores = score_detections(dets, items)
    scores["objects_per_image"] = float(np.mean([len(d) for d in dets]))
    scores = {k: round(v, 4) for k, v in scores.items()}
    scores["n"] = len(items)
    scores["seconds"] = round(time.perf_counter() - t0, 1)
    return scores


def aesthetic_gap(pipe, n: int = 64, high: float = 9.0, low: float = 2.0,
                  steps: int = DEFAULT_STEPS,
                  guidance: float = DEFAULT_GUIDANCE, seed: int = 0,
                  progress: bool = True,
                  blob_noise: float = DEFAULT_BLOB_NOISE) -> dict:
    """Mean measured aesthetic score of the same prompts and seeds
    generated at micro-condition `high` vs `low` (bar: gap >= 1.5)."""
    prompts = [it["prompt"] for it in held_out_items(n)]
    out = {}
    for name, cond in (("high", high), ("low", low)):
        imgs = generate(pipe, prompts, steps, guidance, seed,
                        aesthetic=cond, progress=progress,
                        blob_noise=blob_noise)
        out[name] = round(float(np.mean([aesthetic_score(im)
                                         for im in imgs])), 3)
    out["gap"] = round(out["high"] - out["low"], 3)
    out.update(condition_high=high, condition_low=low, n=len(prompts))
    return out


def shuffled_within_category(items: list[dict]) -> list[int]:
    """perm[i]: the index of the next prompt of item i's category
    (cyclically), so image perm[i] is scored against prompt i."""
    by: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        by.setdefault(it["tag"], []).append(i)
    perm = list(range(len(items)))
    for idx in by.values():
        for a, b in zip(idx, idx[1:] + idx[:1]):
            perm[a] = b
    return perm


def prompt_floor(images, items: list[dict]) -> dict:
    """GenEval-lite of the same images against their own prompts and
    against another prompt of the same category: a model that ignores
    its prompt scores the same on both (the chance floor of the metric)."""
    images = list(images)
    perm = shuffled_within_category(items)
    matched = geneval_lite(images, items)
    shuffled = geneval_lite([images[perm[i]] for i in range(len(items))],
                            items)
    return {"matched": {k: round(v, 4) for k, v in matched.items()},
            "shuffled": {k: round(v, 4) for k, v in shuffled.items()},
            "n": len(items)}


def sweep(pipe, steps_list: list[int], guidance_list: list[float],
          seed: int = 0, limit: int | None = None,
          progress: bool = True,
          blob_list: tuple[float, ...] = (DEFAULT_BLOB_NOISE,),
          temperature_list: tuple[float, ...] = (1.0,)) -> list[dict]:
    """GenEval-lite for every (steps, guidance, blob noise, token
    temperature) cell."""
    rows = []
    for s in steps_list:
        for g in guidance_list:
            for bn in blob_list:
                for tt in temperature_list:
                    r = evaluate_geneval(pipe, s, g, seed, limit,
                                         progress=progress, blob_noise=bn,
                                         token_temperature=tt)
                    rows.append({"steps": s, "guidance_scale": g,
                                 "blob_noise": bn, "token_temperature": tt,
                                 **r})
    return rows


def training_phrasing(prompt: str) -> str:
    """A GenEval-lite prompt in the training captions' short style: the
    same words without GenEval's "a photo of" opening, ending in a full
    stop ("a photo of a red star" -> "a red star.")."""
    return prompt.removeprefix("a photo of ") + "."


def _colour_use(images, items) -> dict:
    """Over the prompts that name colours: the share of images showing
    every named colour as some component, and the mean number of object
    colours shown that the prompt does not name (the judge's palette
    reading, every component counted, shaped or not)."""
    named, extra, n = 0, 0, 0
    for img, it in zip(images, items):
        want = {d["color"] for d in it["include"] if "color" in d}
        if not want:
            continue
        seen = {d.color for d in detect(img, max_score=None)}
        named += int(want <= seen)
        extra += len(seen - want)
        n += 1
    return {"named_colours_shown": round(named / max(n, 1), 4),
            "other_colours_per_image": round(extra / max(n, 1), 3),
            "n_colour_prompts": n}


def phrasing(pipe, steps: int = DEFAULT_STEPS,
             guidance: float = DEFAULT_GUIDANCE, seed: int = 0,
             limit: int | None = 96, progress: bool = True) -> dict:
    """GenEval-lite and colour use on the same held-out prompts in
    GenEval's phrasing and in the training captions' (`training_phrasing`):
    how much of the failure is the text encoder meeting a new phrasing."""
    items = held_out_items(limit)
    out = {"steps": steps, "guidance_scale": guidance, "seed": seed,
           "n": len(items)}
    for name, f in (("geneval", lambda p: p),
                    ("training", training_phrasing)):
        images = generate(pipe, [f(it["prompt"]) for it in items], steps,
                          guidance, seed, progress=progress)
        scores = {k: round(v, 4)
                  for k, v in geneval_lite(images, items).items()}
        out[name] = {**scores, **_colour_use(images, items)}
    return out


MEASURES = {"geneval": "GenEval-lite on held-out prompts",
            "aesthetic": "aesthetic-score gap (micro-condition 9 vs 3)",
            "sweep": "GenEval-lite over steps x CFG (x blob, x temp)",
            "phrasing": "canonical vs paraphrased prompts",
            "floor": "the metric's chance floor (shuffled prompts)"}


def measure(what: str, steps: list[int], cfgs: list[float],
            blobs: list[float], temps: list[float],
            transformer: str | None = None, limit: int | None = None,
            seed: int = 0, command: str = "") -> dict:
    """Measure the shipped pipeline (or its `transformer` weights) with
    one of `MEASURES`; the JSON-ready record says it was made by
    `command`. A sweep crosses the lists, the others take their first
    values."""
    if what not in MEASURES:
        raise ValueError(f"unknown measure {what!r}: one of "
                         f"{', '.join(MEASURES)}")
    pipe = MeissonicLitePipeline.from_pretrained(
        device="cpu", transformer_path=transformer)
    t0 = time.perf_counter()
    if what == "geneval":
        res = evaluate_geneval(pipe, steps[0], cfgs[0], seed, limit,
                               blob_noise=blobs[0],
                               token_temperature=temps[0])
    elif what == "phrasing":
        res = {"command": command, **phrasing(pipe, steps[0], cfgs[0],
                                              seed, limit or 96)}
    elif what == "floor":
        items = held_out_items(limit)
        images = generate(pipe, [it["prompt"] for it in items], steps[0],
                          cfgs[0], seed, blob_noise=blobs[0])
        res = {"command": command, **prompt_floor(images, items)}
    elif what == "aesthetic":
        res = aesthetic_gap(pipe, steps=steps[0], guidance=cfgs[0],
                            seed=seed, blob_noise=blobs[0])
    else:
        res = {"command": command,
               "rows": sweep(pipe, steps, cfgs, seed, limit,
                             blob_list=tuple(blobs),
                             temperature_list=tuple(temps))}
    if isinstance(res, dict):
        res["wall_time_s"] = round(time.perf_counter() - t0, 1)
    return res
