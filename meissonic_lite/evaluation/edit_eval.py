"""An edit benchmark with known answers, built from the Shapes world
(chapter 8).

Each task is a source image, a prompt and a region (or a canvas
extension), plus the ground-truth render of the edited scene:
- recolor: inpaint one object's box with a prompt naming its new colour;
- add: inpaint an empty box with a prompt naming one more object;
- outpaint: a strip was cut off one side; extend the canvas back (the
  prompt names only what the source shows, so the strip is background);
- img2img: the recolour edit with no mask, by re-masking a share of the
  tokens (`editing.img2img`).
The judge (`evaluation.detect`, model-free) calls an edit a success when
it sees exactly the target scene: every object with the right kind,
colour, size and place, and nothing else. The benchmark also reports
what the paper's Tables 7-9 report: L1 to the source, CLIP-I (source vs
edit), CLIP-T (edit vs prompt) and time per edit vs text to image, and
checks that inpainting kept every token outside the mask.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..editing import edits, masks
from ..models.text import from_pretrained
from ..sampling.decode import SamplerConfig
from ..sampling.pipeline import (
    DEFAULT_GUIDANCE,
    DEFAULT_STEPS,
    MeissonicLitePipeline,
)
from ..utils import to_pil
from ..world import vocab
from ..world.captions import caption
from ..world.dataset import to_tensor
from ..world.render import render
from ..world.scene import Group, Obj, Scene, make_scene
from .judge import detect, match_scene

TASKS = ("recolor", "add", "outpaint", "img2img")
INPAINT_STYLE = ("recolor", "add", "outpaint")


@dataclass
class EditTask:
    """One edit with its answer; `edited` is the object that changes
    (its old version for recolor / img2img, the new one for add)."""

    task: str
    source: Image.Image
    target: Image.Image
    target_scene: Scene
    prompt: str
    box: tuple[int, int, int, int] | None = None
    extend: dict[str, int] | None = None
    edited: Obj | None = None


def object_box(obj: Obj, width: int, height: int, pad: int = 2
               ) -> tuple[int, int, int, int]:
    """Pixel box (x0, y0, x1, y1) around a rendered object, padded."""
    side = vocab.SIZES[obj.size] * min(width, height)
    cx, cy = obj.cx * width, obj.cy * height
    return (max(0, math.floor(cx - side / 2) - pad),
            max(0, math.floor(cy - side / 2) - pad),
            min(width, math.ceil(cx + side / 2) + pad),
            min(height, math.ceil(cy + side / 2) + pad))


def _groups(rng, bg: str, n: int) -> list[Group]:
    colors = [c for c in vocab.COLORS if c != bg]
    out: list[Group] = []
    while len(out) < n:
        kind = str(rng.choice(vocab.SHAPES if rng.random() < 0.7
                              else vocab.LETTERS))
        g = Group(kind, str(rng.choice(colors)),
                  str(rng.choice(list(vocab.SIZES))))
        if all((g.kind, g.color) != (o.kind, o.color) for o in out):
            out.append(g)
    return out


def _scene(rng, n_groups: int, bg: str | None = None) -> Scene | None:
    bg = bg or str(rng.choice(list(vocab.BACKGROUNDS)))
    try:
        return make_scene(_groups(rng, bg, n_groups), bg,
                          seed=int(rng.integers(2**31)))
    except ValueError:                       # could not place: redraw
        return None


def _recolor(rng, size: int, pad: int, style: str) -> EditTask | None:
    src = _scene(rng, int(rng.integers(1, 3)))
    if src is None:
        return None
    j = int(rng.integers(len(src.groups)))
    old = src.groups[j]
    taken = {(g.kind, g.color) for g in src.groups}
    new = [c for c in vocab.COLORS if c not in (src.background, old.color)
           and (old.kind, c) not in taken]
    color = str(rng.choice(new))
    groups = tuple(replace(g, color=color) if i == j else g
                   for i, g in enumerate(src.groups))
    objs = tuple(replace(o, color=color) if i == j else o
                 for i, o in enumerate(src.objects))
    tgt = replace(src, groups=groups, objects=objs)
    return EditTask("recolor", render(src, size), render(tgt, size), tgt,
                    caption(tgt, rng, style),
                    object_box(src.objects[j], size, size, pad),
                    edited=src.objects[j])


def _add(rng, size: int, pad: int, style: str) -> EditTask | None:
    tgt = _scene(rng, 2)
    if tgt is None:
        return None
    src = replace(tgt, groups=tgt.groups[:1], objects=tgt.objects[:1],
                  relation=None)
    new = tgt.objects[1]
    return EditTask("add", render(src, size), render(tgt, size), tgt,
                    caption(tgt, rng, style),
                    object_box(new, size, size, pad), edited=new)


def _outpaint(rng, size: int, multiple: int, style: str
              ) -> EditTask | None:
    tgt = _scene(rng, int(rng.integers(1, 3)))
    if tgt is None:
        return None
    e = max(multiple, round(size / 4 / multiple) * multiple)
    side = str(rng.choice(["left", "right", "top", "bottom"]))
    keep = {"left": (e, 0, size, size), "right": (0, 0, size - e, size),
            "top": (0, e, size, size), "bottom": (0, 0, size, size - e)}
    x0, y0, x1, y1 = keep[side]
    for o in tgt.objects:                    # all objects in the kept part
        b = object_box(o, size, size, 1)
        if b[0] < x0 or b[1] < y0 or b[2] > x1 or b[3] > y1:
            return None
    full = render(tgt, size)
    return EditTask("outpaint", full.crop(keep[side]), full, tgt,
                    caption(tgt, rng, style), extend={side: e})


def make_edit_tasks(n: int, seed: int = 0, size: int = 128,
                    multiple: int = 8, tasks: tuple[str, ...] = TASKS,
                    caption_style: str = "long", pad: int = 2
                    ) -> list[EditTask]:
    """`n` tasks of each kind in `tasks`, deterministic from `seed`.

    `multiple`: the pipeline's side multiple (outpaint strips use it)."""
    bad = [t for t in tasks if t not in TASKS]
    if bad or not tasks:
        raise ValueError(f"tasks must be a non-empty subset of {TASKS}, "
                         f"got {tasks!r}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    vocab.check_pixels(size, size)
    out = []
    for t in tasks:
        tid = TASKS.index(t)
        for i in range(n):
            for attempt in range(1000):
                rng = np.random.default_rng([seed, tid, i, attempt])
                if t == "outpaint":
                    task = _outpaint(rng, size, multiple, caption_style)
                elif t == "add":
                    task = _add(rng, size, pad, caption_style)
                else:
                    task = _recolor(rng, size, pad, caption_style)
                if task is not None:
                    break
            else:   # pragma: no cover - the world always fits 1-2 objects
                raise RuntimeError(f"could not build a {t} task")
            task.task = t
            out.append(task)
    return out


def judge_edit(task: EditTask, image: Image.Image) -> bool:
    """True if the judge sees exactly the target scene: every object
    (kind, colour, size, place) and no other one."""
    dets = detect(image)
    matched, n_truth, n_det = match_scene(task.target_scene, dets)
    return matched == n_truth == n_det


# -- running a pipeline on the tasks ---------------------------------------
def _run(pipe, task: EditTask, steps: int, guidance: float,
         generator: torch.Generator, strength: float, remask: str
         ) -> edits.EditResult:
    kw = {"num_inference_steps": steps, "guidance_scale": guidance,
          "generator": generator}
    if task.task in ("recolor", "add"):
        return edits.inpaint(pipe, task.source, prompt=task.prompt,
                               box=task.box, **kw)
    if task.task == "outpaint":
        return edits.outpaint(pipe, task.source, task.prompt,
                                **task.extend, **kw)
    return edits.img2img(pipe, task.source, task.prompt, strength,
                           remask, **kw)


def _metrics(pipe, task: EditTask, res: edits.EditResult, clip) -> dict:
    f = pipe.vq.config.factor
    edit = to_tensor(res.image)                              # (3, H, W)
    src = to_tensor(task.source)
    recon = pipe.vq.decode(res.source_tokens[None]).float().cpu()[0]
    t, left = res.offset
    h, w = res.source_tokens.shape
    region = edit[:, t * f:(t + h) * f, left * f:(left + w) * f]
    kept = ~res.token_mask[t:t + h, left:left + w]
    kept = kept.repeat_interleave(f, 0).repeat_interleave(f, 1)
    diff = (region - recon).abs().mean(0)                    # (H, W)
    row = {
        "success": judge_edit(task, res.image),
        "tokens_changed_outside": res.changed_outside(),
        "pixel_l1_outside": (float(diff[kept].mean()) if kept.any()
                             else None),
        "l1_source": float((region - src).abs().mean()),
        "l1_target": float((edit - to_tensor(task.target)).abs().mean()),
    }
    if clip is not None:
        row["clip_i"] = float(clip.clip_i(src[None], edit[None])[0])
        row["clip_t"] = float(clip.clip_t(edit[None], [task.prompt])[0])
        row["clip_t_source"] = float(clip.clip_t(src[None],
                                                 [task.prompt])[0])
    return row


def _mean(rows: list[dict], key: str):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return round(float(np.mean(vals)), 4) if vals else None


def edit_benchmark(pipe, n: int = 8, seed: int = 0, size: int = 128,
                   tasks: tuple[str, ...] = TASKS, steps: int = DEFAULT_STEPS,
                   guidance: float = DEFAULT_GUIDANCE, strength: float = 0.5,
                   remask: str = "confidence", caption_style: str = "long",
                   clip="auto", t2i_runs: int = 3, keep_images: bool = False,
                   progress: bool = False) -> dict:
    """Run `n` edits of each task with `pipe` and judge them.

    Per task: success rate, the judge on the VQ reconstruction of the
    target (`ceiling`) and on the unedited source (`baseline`), tokens
    changed outside the mask (sum; must be 0), mean pixel L1 outside the
    mask vs the source's reconstruction, L1 to the source and to the
    target, CLIP-I / CLIP-T (`clip`: a TextEncoder, "auto" = the pipe's
    if it can score images, None = skip), seconds per edit. Also the
    seconds of one text-to-image call at the same size and steps.
    """
    SamplerConfig(steps=steps, guidance_scale=guidance)      # validates
    if not 0 <= strength <= 1 or remask not in edits.REMASK:
        raise ValueError(f"need strength in [0, 1] and remask in "
                         f"{edits.REMASK}, got {strength}, {remask!r}")
    masks.check_canvas(pipe, size, size, "size")
    if clip == "auto":     # the base CLIP: not the model being judged
        try:
            clip = from_pretrained()
        except (FileNotFoundError, RuntimeError):
            clip = None
    all_tasks = make_edit_tasks(n, seed, size, pipe.multiple, tasks,
                                caption_style)
    rows: dict[str, list[dict]] = {t: [] for t in tasks}
    examples = []
    for i, task in enumerate(tqdm(all_tasks, desc="edits",
                                  disable=not progress)):
        gen = torch.Generator().manual_seed(seed * 100003 + i)
        t0 = time.perf_counter()
        res = _run(pipe, task, steps, guidance, gen, strength, remask)
        secs = time.perf_counter() - t0
        row = _metrics(pipe, task, res, clip)
        row["seconds"] = secs
        row["ceiling"] = judge_edit(
            task, to_pil(pipe.vq.reconstruct(task.target)[0]))
        row["baseline"] = (None if task.task == "outpaint"
                           else judge_edit(task, task.source))
        rows[task.task].append(row)
        if keep_images:
            examples.append({"task": task.task, "prompt": task.prompt,
                             "source": task.source, "edited": res.image,
                             "target": task.target, "box": task.box,
                             "extend": task.extend,
                             "success": row["success"]})
    report: dict = {"tasks": {}}
    for t, rs in rows.items():
        report["tasks"][t] = {
            "n": len(rs),
            "tokens_changed_outside": sum(r["tokens_changed_outside"]
                                          for r in rs),
            **{k: _mean(rs, k) for k in (
                "success", "ceiling", "baseline", "pixel_l1_outside",
                "l1_source", "l1_target", "clip_i", "clip_t",
                "clip_t_source", "seconds")}}
    ins = [r["success"] for t in INPAINT_STYLE if t in rows
           for r in rows[t]]
    report["inpaint_style_success"] = (round(float(np.mean(ins)), 4)
                                       if ins else None)
    report["img2img_success"] = report["tasks"].get(
        "img2img", {}).get("success")
    t2i = []
    for k in range(max(0, t2i_runs)):
        t0 = time.perf_counter()
        pipe(all_tasks[k % len(all_tasks)].prompt, num_inference_steps=steps,
             guidance_scale=guidance, height=size, width=size,
             generator=torch.Generator().manual_seed(k))
        t2i.append(time.perf_counter() - t0)
    edit_secs = [r["seconds"] for rs in rows.values() for r in rs]
    report["t2i_seconds"] = round(float(np.mean(t2i)), 4) if t2i else None
    report["edit_seconds"] = round(float(np.mean(edit_secs)), 4)
    report["edit_vs_t2i"] = (round(report["edit_seconds"]
                                   / report["t2i_seconds"], 3)
                             if t2i else None)
    report["settings"] = {
        "n": n, "seed": seed, "size": size, "steps": steps,
        "guidance": guidance, "strength": strength, "remask": remask,
        "caption_style": caption_style, "tasks": list(tasks)}
    if keep_images:
        report["examples"] = examples
    return report


def run_benchmark(n: int = 40, seed: int = 0, tasks: tuple[str, ...] = TASKS,
                  steps: int = DEFAULT_STEPS,
                  guidance: float = DEFAULT_GUIDANCE, strength: float = 0.5,
                  remask: str = "confidence", command: str = "") -> dict:
    """The edit benchmark on the shipped pipeline at 128 px, as
    `meissonic-lite eval edits` runs it: the report of `edit_benchmark`
    with the `command` that made it and the wall time."""
    pipe = MeissonicLitePipeline.from_pretrained(device="cpu")
    t0 = time.perf_counter()
    rep = edit_benchmark(pipe, n, seed, 128, tuple(tasks), steps, guidance,
                         strength, remask, progress=True)
    rep["command"] = command
    rep["wall_time_s"] = round(time.perf_counter() - t0, 1)
    return rep
