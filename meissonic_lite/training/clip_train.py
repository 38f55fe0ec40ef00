"""Train the tiny CLIP contrastively on Shapes-world pairs (`train-clip`)
(chapter 3).

CLIP's symmetric InfoNCE loss (Radford et al. 2021) over a batch of image
-caption pairs, plus hard negatives (as NegCLIP, Yuksekgonul et al. 2023):
one false caption per image (the same caption with the two colours
swapped, the relation flipped, or one colour changed) and, for scenes with
a relation, the image mirrored along the relation's axis. Without them a
bag-of-words encoder already wins retrieval but cannot tell "a red circle
left of a blue square" from its swap. Hard negatives alone leave the
relation at chance: a text tower that ignores "left"/"right" and an image
tower that ignores mirroring sit at a saddle where their gradients cancel.
Optional auxiliary heads (`--aux`, training only, never shipped) break it:
the caption embedding must name its relation and the image embedding must
say where each colour is. Also here: the held-out retrieval and
attribute-binding measurements.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..models.text import (
    WEIGHTS,
    TextEncoder,
    TextEncoderConfig,
    build_clip,
    from_pretrained,
    save,
)
from ..utils import (
    atomic_torch_save,
    atomic_write_bytes,
    autocast,
    set_seed,
    warmup_cosine,
)
from ..world import vocab
from ..world.captions import caption
from ..world.dataset import make_example, to_tensor
from ..world.scene import Scene

OPPOSITE = {"left of": "right of", "right of": "left of",
            "above": "below", "below": "above"}
EVAL_SEED = 777_000          # held-out world stream (training uses 1000)


# -- hard negatives: one attribute changed, everything else identical -------
def swap_colors(scene: Scene) -> Scene | None:
    """The two groups trade colours (None if that could still be true)."""
    if len(scene.groups) != 2:
        return None
    a, b = scene.groups
    if a.color == b.color or a.kind == b.kind:
        return None
    m = {(a.kind, a.color): b.color, (b.kind, b.color): a.color}
    groups = (dataclasses.replace(a, color=b.color),
              dataclasses.replace(b, color=a.color))
    objs = tuple(dataclasses.replace(o, color=m[(o.kind, o.color)])
                 for o in scene.objects)
    return dataclasses.replace(scene, groups=groups, objects=objs)


def flip_relation(scene: Scene) -> Scene | None:
    """The relation replaced by its opposite (None without a relation)."""
    if scene.relation is None:
        return None
    return dataclasses.replace(scene, relation=OPPOSITE[scene.relation])


def _change_group(scene: Scene, i: int, **change) -> Scene:
    """Group i and each of its objects with `change` (kind= or color=)."""
    g = scene.groups[i]
    groups = tuple(dataclasses.replace(h, **change) if n == i else h
                   for n, h in enumerate(scene.groups))
    objs = tuple(dataclasses.replace(o, **change)
                 if (o.kind, o.color) == (g.kind, g.color) else o
                 for o in scene.objects)
    return dataclasses.replace(scene, groups=groups, objects=objs)


def change_kind(scene: Scene, rng: np.random.Generator | None = None
                ) -> Scene:
    """One group drawn as another kind of its family (shape -> shape,
    letter -> letter). Without `rng`: the first group, as the next kind
    (circle -> square), the kind probe; with it: a random group and kind,
    a hard negative."""
    i = 0 if rng is None else int(rng.integers(len(scene.groups)))
    g = scene.groups[i]
    family = vocab.SHAPES if g.kind in vocab.SHAPES else vocab.LETTERS
    used = {(h.kind, h.color) for h in scene.groups}
    j = family.index(g.kind)
    free = [k for k in family[j + 1:] + family[:j]
            if (k, g.color) not in used]
    new = free[0] if rng is None else str(rng.choice(free))
    return _change_group(scene, i, kind=new)


def recolor(scene: Scene, rng: np.random.Generator) -> Scene:
    """One group painted another colour (not the background's)."""
    i = int(rng.integers(len(scene.groups)))
    g = scene.groups[i]
    used = {(h.kind, h.color) for h in scene.groups}
    choices = [c for c in vocab.COLORS if c != scene.background
               and (g.kind, c) not in used]
    return _change_group(scene, i, color=str(rng.choice(choices)))


def hard_negative(scene: Scene, rng: np.random.Generator,
                  p_kind: float = 0.0) -> Scene:
    """A false scene one attribute away: with probability `p_kind` another
    kind, else swap, flip, or recolour."""
    if p_kind > 0 and rng.random() < p_kind:
        return change_kind(scene, rng)
    options = [s for s in (swap_colors(scene), flip_relation(scene))
               if s is not None]
    if options:
        return options[int(rng.integers(len(options)))]
    return recolor(scene, rng)


def mirrored(images: torch.Tensor, scenes: list[Scene]
             ) -> torch.Tensor:
    """Hard-negative images: each relation scene mirrored along its
    relation's axis, so "A left of B" becomes "A right of B" (K, 3, S, S).
    """
    out = [im.flip(-1 if s.relation in ("left of", "right of") else -2)
           for im, s in zip(images, scenes) if s.relation is not None]
    return torch.stack(out) if out else images[:0]


def mirror_pairs(images: torch.Tensor, scenes: list[Scene], seed: int,
                 step: int) -> tuple[torch.Tensor, list[str], list[str]]:
    """Extra *positive* pairs: relation scenes without letters, mirrored,
    with a short caption whose relation is flipped (true for the mirror)
    and, as its hard negative, the original relation (K pairs)."""
    keep = [j for j, s in enumerate(scenes) if s.relation is not None
            and all(g.kind in vocab.SHAPES for g in s.groups)]
    pos, neg = [], []
    for j in keep:
        rng = np.random.default_rng([seed, step, j, 9])
        flipped = flip_relation(scenes[j])
        p, q = caption_pair(flipped, scenes[j], rng, "short")
        pos.append(p)
        neg.append(q)
    return mirrored(images[keep], [scenes[j] for j in keep]), pos, neg


def mirror_scene(scene: Scene) -> Scene:
    """The scene as `mirrored` draws it: object centres reflected along
    the relation's axis and the relation flipped."""
    horizontal = scene.relation in ("left of", "right of")
    objs = tuple(dataclasses.replace(o, cx=1 - o.cx) if horizontal
                 else dataclasses.replace(o, cy=1 - o.cy)
                 for o in scene.objects)
    return dataclasses.replace(flip_relation(scene), objects=objs)


# -- auxiliary heads: symmetry breakers for the relation ----------------------
RELATION_CLASSES: tuple[str | None, ...] = (None, *vocab.RELATIONS)
AUX_COLORS: tuple[str, ...] = tuple(vocab.COLORS)


def relation_labels(scenes: list[Scene]) -> torch.Tensor:
    """Class of each scene's relation, 0 for none (B,) long."""
    return torch.tensor([RELATION_CLASSES.index(s.relation) for s in scenes])


def kind_presence(scenes: list[Scene]) -> torch.Tensor:
    """Which of the world's kinds each scene shows, multi-hot (B, K)."""
    out = torch.zeros(len(scenes), len(vocab.KINDS))
    for i, s in enumerate(scenes):
        for g in s.groups:
            out[i, vocab.KINDS.index(g.kind)] = 1.0
    return out


def color_layout(scenes: list[Scene]) -> torch.Tensor:
    """Per object colour: present, mean centre x, mean centre y (B, C, 3)."""
    out = torch.zeros(len(scenes), len(AUX_COLORS), 3)
    for i, s in enumerate(scenes):
        for c, name in enumerate(AUX_COLORS):
            xy = [(o.cx, o.cy) for o in s.objects if o.color == name]
            if xy:
                out[i, c] = torch.tensor([1.0, *np.mean(xy, axis=0)])
    return out


class AuxHeads(torch.nn.Module):
    """Linear heads on the embeddings: relation from a caption, colour
    layout from an image, and (if `kind_weight` > 0) the kinds named by a
    caption and shown in an image. Training only; never shipped."""

    def __init__(self, embed_dim: int, kind_weight: float = 0.0) -> None:
        super().__init__()
        self.kind_weight = kind_weight
        # Batch-standardised inputs: the embeddings of different captions
        # share one large common direction (cosines near 1), so a plain
        # linear head would see differences too small to learn from.
        self.text_norm = torch.nn.BatchNorm1d(embed_dim, affine=False)
        self.image_norm = torch.nn.BatchNorm1d(embed_dim, affine=False)
        self.relation = torch.nn.Linear(embed_dim, len(RELATION_CLASSES))
        self.layout = torch.nn.Linear(embed_dim, 3 * len(AUX_COLORS))
        if kind_weight > 0:
            self.text_kinds = torch.nn.Linear(embed_dim, len(vocab.KINDS))
            self.image_kinds = torch.nn.Linear(embed_dim, len(vocab.KINDS))

    def loss(self, txt: torch.Tensor, rel: torch.Tensor, img: torch.Tensor,
             layout: torch.Tensor, txt_kinds: torch.Tensor | None = None,
             img_kinds: torch.Tensor | None = None) -> torch.Tensor:
        """CE on relations + BCE on presence + MSE on present centres
        (+ kind_weight * BCE on the kinds of captions and images)."""
        rel_loss = F.cross_entropy(self.relation(self.text_norm(txt)), rel)
        pred = self.layout(self.image_norm(img)).unflatten(-1, (-1, 3))
        present = layout[..., 0]
        bce = F.binary_cross_entropy_with_logits(pred[..., 0], present)
        err = ((pred[..., 1:].sigmoid() - layout[..., 1:]) ** 2).sum(-1)
        mse = (err * present).sum() / present.sum().clamp(min=1)
        total = rel_loss + bce + 10 * mse
        if self.kind_weight > 0:
            bce_k = F.binary_cross_entropy_with_logits
            total = total + self.kind_weight * (
                bce_k(self.text_kinds(self.text_norm(txt)), txt_kinds)
                + bce_k(self.image_kinds(self.image_norm(img)), img_kinds))
        return total


def caption_pair(scene: Scene, negative: Scene, rng: np.random.Generator,
                 style: str = "mixed") -> tuple[str, str]:
    """True and false captions drawn with the same template choices."""
    twin = copy.deepcopy(rng)
    return caption(scene, rng, style), caption(negative, twin, style)


# -- data --------------------------------------------------------------------
def make_images(seed: int, n: int, size: int = 64, progress: bool = False
                ) -> tuple[torch.Tensor, list[Scene]]:
    """World examples 0..n-1 of stream `seed`: uint8 (n, 3, S, S), scenes."""
    from tqdm.auto import tqdm
    imgs = torch.empty(n, 3, size, size, dtype=torch.uint8)
    scenes = []
    for i in tqdm(range(n), desc="render", disable=not progress):
        ex = make_example(seed, i, size)
        imgs[i] = (to_tensor(ex.image) * 255).round().to(torch.uint8)
        scenes.append(ex.scene)
    return imgs, scenes


def heldout_pairs(seed: int, n: int, size: int = 64
                  ) -> tuple[torch.Tensor, list[str]]:
    """n fresh (image, caption) pairs: images (n, 3, S, S) in [0, 1]."""
    imgs, scenes = make_images(seed, n, size)
    caps = [caption(s, np.random.default_rng([seed, i, 1]))
            for i, s in enumerate(scenes)]
    return imgs.float() / 255, caps


def probe_set(seed: int, n: int, kind: str, size: int = 64
              ) -> tuple[torch.Tensor, list[str], list[str]]:
    """n held-out images with true and swapped captions.

    kind 'colors': two groups trade colours; 'relation': left/right or
    above/below flipped; 'kinds': one group drawn as another kind. Scenes
    without such a swap are skipped.
    """
    swap = {"colors": swap_colors, "relation": flip_relation,
            "kinds": change_kind}[kind]
    imgs, pos, neg, i = [], [], [], 0
    while len(imgs) < n:
        ex = make_example(seed, i, size)
        bad = swap(ex.scene)
        if bad is not None:
            rng = np.random.default_rng([seed, i, 2])
            p, q = caption_pair(ex.scene, bad, rng)
            imgs.append(to_tensor(ex.image))
            pos.append(p)
            neg.append(q)
        i += 1
    return torch.stack(imgs), pos, neg


# -- loss and metrics ------------------------------------------------------
def clip_loss(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor,
              neg: torch.Tensor | None = None,
              neg_img: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE on embeddings (B, E), plus hard negatives.

    Image i must pick caption i among the B captions (+ `neg`, (B, E)
    false captions); caption i must pick image i among the B images
    (+ `neg_img`, (K, E) false images such as mirrored scenes).
    """
    img, txt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    texts, imgs = txt, img
    if neg is not None:
        texts = torch.cat([txt, F.normalize(neg, dim=-1)])
    if neg_img is not None:
        imgs = torch.cat([img, F.normalize(neg_img, dim=-1)])
    logits_i = scale * img @ texts.T                # (B, B) or (B, 2B)
    logits_t = scale * txt @ imgs.T                 # (B, B) or (B, B+K)
    target = torch.arange(img.shape[0], device=img.device)
    return (F.cross_entropy(logits_i, target)
            + F.cross_entropy(logits_t, target)) / 2


@torch.no_grad()
def retrieval(enc: TextEncoder, images: torch.Tensor, captions: list[str],
              group: int = 100) -> dict:
    """Top-1 retrieval among `group` candidates, both directions.

    A pick counts as right when its caption is the same text as the
    query's (two scenes can share a short caption such as 'red star.').
    """
    t2i = i2t = total = 0
    for s in range(0, len(captions) - group + 1, group):
        caps = captions[s:s + group]
        sim = enc.similarity(images[s:s + group], caps)   # (img, txt)
        same = torch.tensor([[a == b for b in caps] for a in caps])
        idx = torch.arange(group)
        i2t += int(same[idx, sim.argmax(1)].sum())
        t2i += int(same[idx, sim.argmax(0)].sum())
        total += group
    if total == 0:
        raise ValueError(f"need at least {group} pairs, got {len(captions)}")
    return {"t2i_top1": t2i / total, "i2t_top1": i2t / total, "n": total}


@torch.no_grad()
def binding(enc: TextEncoder, images: torch.Tensor, pos: list[str],
            neg: list[str]) -> float:
    """Fraction of images scoring their true caption above the swap."""
    im = F.normalize(enc.encode_image(images).float(), dim=-1)
    p = F.normalize(enc.encode(pos)[1].float(), dim=-1)
    q = F.normalize(enc.encode(neg)[1].float(), dim=-1)
    return float(((im * p).sum(-1) > (im * q).sum(-1)).float().mean())


def evaluate(enc: TextEncoder, seed: int = EVAL_SEED, n_pairs: int = 1000,
             n_probe: int = 300) -> dict:
    """Held-out retrieval (groups of 100) and binding: colours swapped,
    relation flipped (the bars, averaged as `binding`) and one kind
    changed (a probe without a bar)."""
    size = enc.cfg.image_size
    out = retrieval(enc, *heldout_pairs(seed, n_pairs, size))
    for kind in ("colors", "relation", "kinds"):
        out[f"binding_{kind}"] = binding(
            enc, *probe_set(seed + 1, n_probe, kind, size))
    out["binding"] = (out["binding_colors"] + out["binding_relation"]) / 2
    return {k: round(v, 4) for k, v in out.items()}


# -- training ----------------------------------------------------------------
def batch_pairs(scenes: list[Scene], idx: torch.Tensor, seed: int,
                step: int, p_kind: float = 0.0
                ) -> tuple[list[str], list[str], list[Scene]]:
    """Fresh true captions, their hard negatives, and the false scenes."""
    pos, neg, false = [], [], []
    for j, i in enumerate(idx.tolist()):
        rng = np.random.default_rng([seed, step, j])
        bad = hard_negative(scenes[i], rng, p_kind)
        p, q = caption_pair(scenes[i], bad, rng)
        pos.append(p)
        neg.append(q)
        false.append(bad)
    return pos, neg, false


def batch_captions(scenes: list[Scene], idx: torch.Tensor, seed: int,
                   step: int) -> tuple[list[str], list[str]]:
    """Fresh true captions and their hard negatives for one batch."""
    return batch_pairs(scenes, idx, seed, step)[:2]


def _lr(step: int, args) -> float:
    return args.lr * warmup_cosine(step, args.steps, args.warmup, floor=0.0)


def _optimizer(clip, args, aux: AuxHeads | None = None
               ) -> torch.optim.Optimizer:
    # No decay on gains, biases, the scale and the token table: rows of
    # tokens our captions never use must stay exactly at their init.
    decay, keep = [], []
    for n, p in clip.named_parameters():
        no = p.ndim < 2 or "token_embedding" in n or "logit_scale" in n
        (keep if no else decay).append(p)
    if aux is not None:
        keep += list(aux.parameters())
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.wd},
         {"params": keep, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.98), eps=1e-6)


def _data(args, out: Path) -> tuple[torch.Tensor, list[Scene]]:
    cache = out / "data.pt"
    if cache.is_file():
        d = torch.load(cache, weights_only=False)
        if d["key"] == [args.world_seed, args.n_images, args.size]:
            return d["images"], d["scenes"]
    imgs, scenes = make_images(args.world_seed, args.n_images, args.size,
                               progress=True)
    atomic_torch_save(cache, {"key": [args.world_seed, args.n_images,
                                      args.size],
                              "images": imgs, "scenes": scenes})
    return imgs, scenes


def _init_from(enc: TextEncoder, cfg: TextEncoderConfig, path: Path
               ) -> dict:
    """Start from a saved CLIP (fresh optimizer and schedule); returns
    the manifest that made it ({} if none), for this run's manifest."""
    if not path.is_file():
        raise FileNotFoundError(f"--init-from: no such file {path}")
    src = from_pretrained(path)
    if src.cfg != cfg:
        raise ValueError(f"--init-from {path}: its config {src.cfg} differs "
                         f"from this run's {cfg}")
    enc.clip.load_state_dict(src.clip.state_dict())
    manifest = path.with_suffix(".json")
    if manifest.is_file():
        return json.loads(manifest.read_text())
    return {}


def _previous_command(args) -> list[str]:
    """The command of the run we resume, from its manifest if any."""
    path = (WEIGHTS if args.ship else Path(args.out) / "x").with_name(
        "clip.json")
    if path.is_file():
        return [json.loads(path.read_text())["command"]]
    return []


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines written after the checkpoint we resume from."""
    if path.is_file():
        keep = [x for x in path.read_text().splitlines()
                if json.loads(x)["step"] <= step]
        atomic_write_bytes(path, "".join(k + "\n" for k in keep).encode())


def train(args: argparse.Namespace) -> dict:
    """The training run behind `meissonic-lite train-clip`."""
    from tqdm.auto import tqdm
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    set_seed(args.seed)
    cfg = TextEncoderConfig(
        embed_dim=args.embed_dim, text_width=args.width,
        text_layers=args.layers, text_heads=args.width // 32,
        context_length=args.context, image_size=args.size,
        vision_width=args.width, vision_layers=args.vision_layers,
        init_seed=args.seed)
    enc = TextEncoder(build_clip(cfg), cfg, trainable=True)
    aux = AuxHeads(cfg.embed_dim, args.aux_kinds) if args.aux > 0 else None
    opt = _optimizer(enc.clip, args, aux)
    step, wall, ckpt = 0, 0.0, out / "ckpt.pt"
    args.history, args.base = [], None      # base: the --init-from run
    if args.resume and ckpt.is_file():
        st = torch.load(ckpt, weights_only=False)
        enc.clip.load_state_dict(st["model"])
        if aux is not None:
            aux.load_state_dict(st["aux"])
        opt.load_state_dict(st["opt"])
        step, wall = st["step"], st["wall"]
        args.history = st.get("commands") or _previous_command(args)
        args.base = st.get("base")
        _truncate_log(out / "log.jsonl", step)
    elif not args.resume:
        (out / "log.jsonl").unlink(missing_ok=True)
        if args.init_from:
            base = _init_from(enc, cfg, Path(args.init_from))
            args.base = {k: base[k] for k in ("command", "steps",
                         "wall_time_s", "final_metrics", "curve", "evals",
                         "init") if k in base}     # "init": its own source
            args.history = [base["command"]] if base else []
        with torch.no_grad():       # see --pos-scale
            enc.clip.visual.positional_embedding.mul_(args.pos_scale)
    images, scenes = _data(args, out)
    bar = tqdm(total=args.steps, initial=step, desc="train-clip")
    t0 = time.time() - wall
    stop = min(args.steps, args.stop_at or args.steps)
    while step < stop:
        g = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
        idx = torch.randint(len(scenes), (args.batch,), generator=g)
        pos, neg, false = batch_pairs(scenes, idx, args.seed, step,
                                      args.kind_negatives)
        x = images[idx].float() / 255                    # (B, 3, S, S)
        batch = [scenes[i] for i in idx]
        if args.mirror_positives:
            mx, mp, mn = mirror_pairs(x, batch, args.seed, step)
            x, pos, neg = torch.cat([x, mx]), pos + mp, neg + mn
            kept = [s for s in batch if s.relation is not None
                    and all(g.kind in vocab.SHAPES for g in s.groups)]
            batch += [mirror_scene(s) for s in kept]
            false += kept          # a mirror's false caption: the original
        B = len(pos)
        ids = enc.tokenize(pos + neg)
        for grp in opt.param_groups:
            grp["lr"] = _lr(step, args)
        if args.mirror_negatives:
            x = torch.cat([x, mirrored(x, batch)])
        with autocast(torch.device("cpu"), args.bf16):
            im = enc.encode_image(x).float()
            tx = enc.text_forward(ids, trim=True)[1].float()
            scale = enc.clip.logit_scale.exp().clamp(max=100)
            loss = clip_loss(im[:B], tx[:B], scale, tx[B:], im[B:])
            if aux is not None:
                aux_loss = aux.loss(tx, relation_labels(batch + false),
                                    im[:B], color_layout(batch),
                                    kind_presence(batch + false),
                                    kind_presence(batch))
                loss = loss + args.aux * aux_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        bar.update()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        rec = {"step": step, "loss": round(loss.item(), 4),
               "lr": _lr(step - 1, args), "scale": round(scale.item(), 2),
               "time_s": round(time.time() - t0, 1)}
        if step % args.eval_every == 0 or step == args.steps:
            enc.set_trainable(False)
            rec.update(evaluate(enc, n_pairs=args.eval_pairs // 5,
                                n_probe=args.eval_probes // 3))
            enc.set_trainable(True)
            tqdm.write(json.dumps(rec))
        if step % 10 == 0 or "t2i_top1" in rec:
            with open(out / "log.jsonl", "a") as log:
                log.write(json.dumps(rec) + "\n")
        if step % args.ckpt_every == 0 or step in (args.steps, stop):
            atomic_torch_save(ckpt, {
                "model": enc.clip.state_dict(),
                "aux": aux.state_dict() if aux else None,
                "opt": opt.state_dict(), "step": step,
                "wall": time.time() - t0,
                "commands": args.history + [args.command_line],
                "base": args.base})
    bar.close()
    if step < args.steps:                    # --stop-at: resume later
        return {"stopped_at": step}
    wall = time.time() - t0
    return _finish(enc, cfg, args, out, wall)


def _finish(enc, cfg, args, out: Path, wall: float) -> dict:
    """Save fp16 weights, re-measure them as shipped, write the manifest."""
    path = WEIGHTS if args.ship else out / "clip.safetensors"
    save(enc.clip, cfg, path)
    shipped = from_pretrained(path)
    metrics = evaluate(shipped, n_pairs=args.eval_pairs,
                       n_probe=args.eval_probes)
    curve = [json.loads(x) for x in
             (out / "log.jsonl").read_text().splitlines()]
    manifest = {
        "command": " && ".join(args.history + [args.command_line]),
        "config": dataclasses.asdict(cfg),
        "seed": args.seed,
        "data": {"world_seed": args.world_seed, "n_images": args.n_images,
                 "size": args.size, "captions": "mixed short/long, fresh "
                 "per step, + 1 hard-negative caption per image",
                 "mirror_negatives": args.mirror_negatives,
                 "mirror_positives": args.mirror_positives,
                 "aux_weight": args.aux, "pos_scale": args.pos_scale,
                 "aux_kinds_weight": args.aux_kinds,
                 "kind_negatives": args.kind_negatives,
                 "init_from": args.init_from or None,
                 "heldout": f"world seed {EVAL_SEED} (pairs) and "
                 f"{EVAL_SEED + 1} (binding probes)"},
        "steps": args.steps, "batch": args.batch, "lr": args.lr,
        "wall_time_s": round(wall, 1),
        "params": sum(p.numel() for p in enc.clip.parameters()),
        "final_metrics": metrics,
        "curve": [{k: r[k] for k in ("step", "loss", "scale")}
                  for r in curve if r["step"] % 50 == 0],
        "evals": [r for r in curve if "t2i_top1" in r],
        "init": args.base,                     # the run we started from
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "dtype": "float16",
    }
    atomic_write_bytes(path.with_suffix(".json"),
                       (json.dumps(manifest, indent=1) + "\n").encode())
    print(json.dumps(metrics))
    return manifest


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the `train-clip` subcommand on an argparse subparsers."""
    p = sub.add_parser("train-clip", help="train the tiny CLIP text "
                       "encoder on the Shapes world")
    a = p.add_argument
    a("--out", default="runs/clip", help="run dir (ckpt, log, data)")
    a("--steps", type=int, default=3000)
    a("--batch", type=int, default=64)
    a("--lr", type=float, default=5e-4)
    a("--wd", type=float, default=0.2)
    a("--warmup", type=int, default=200)
    a("--width", type=int, default=128, help="text and vision width")
    a("--embed-dim", type=int, default=128, help="pooled width E")
    a("--layers", type=int, default=4, help="text layers")
    a("--vision-layers", type=int, default=4)
    a("--context", type=int, default=77)
    a("--size", type=int, default=64, help="image pixels")
    a("--n-images", type=int, default=40000)
    a("--world-seed", type=int, default=1000)
    a("--seed", type=int, default=0)
    a("--eval-every", type=int, default=500)
    a("--ckpt-every", type=int, default=250)
    a("--eval-pairs", type=int, default=1000, help="final held-out pairs")
    a("--eval-probes", type=int, default=300,
      help="final binding probes per swap kind")
    a("--no-bf16", dest="bf16", action="store_false")
    a("--no-mirror-negatives", dest="mirror_negatives",
      action="store_false", help="no mirrored relation images")
    a("--mirror-positives", action="store_true",
      help="also add mirrored relation scenes as positive pairs")
    a("--aux", type=float, default=0.0,
      help="weight of the auxiliary relation/colour-layout heads (0: off)")
    a("--aux-kinds", type=float, default=0.0,
      help="with --aux: weight of two more heads naming the kinds in a "
      "caption and in an image (0: off)")
    a("--kind-negatives", type=float, default=0.0,
      help="share of hard negatives that change one group's kind "
      "(circle -> star) instead of a colour or the relation")
    a("--init-from", default="",
      help="start from these CLIP weights (.safetensors), fresh optimizer")
    a("--pos-scale", type=float, default=1.0,
      help="multiply the image tower's position embedding at the start: "
      "open_clip draws it at width^-0.5 (norm ~1) while a flat-colour "
      "patch embeds at norm ~8, so position starts as a faint signal")
    a("--resume", action="store_true", help="continue from --out/ckpt.pt")
    a("--stop-at", type=int, default=0,
      help="checkpoint and stop at this step (keeps the lr schedule)")
    a("--ship", action="store_true",
      help=f"write the package's weights ({WEIGHTS.name} + manifest)")
    p.set_defaults(func=_cmd)
    return p


def _cmd(args: argparse.Namespace) -> None:
    import sys
    argv = sys.argv[1:]
    if argv[:1] == ["train-clip"]:
        argv = argv[1:]
    args.command_line = " ".join(["meissonic-lite train-clip", *argv])
    train(args)


if __name__ == "__main__":
    _p = argparse.ArgumentParser(prog="python -m meissonic_lite.clip_train")
    _sub = _p.add_subparsers(dest="command", required=True)
    add_parser(_sub)
    _args = _p.parse_args(["train-clip"] + __import__("sys").argv[1:])
    _args.func(_args)
