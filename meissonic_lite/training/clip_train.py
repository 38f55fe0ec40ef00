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


@dataclasses.dataclass
class ClipTrainConfig:
    """One train-clip run (the `meissonic-lite train-clip` options, with
    the same names and defaults)."""

    out: str = "runs/clip"         # run dir: checkpoint, log, data cache
    steps: int = 3000
    batch: int = 64
    lr: float = 5e-4
    wd: float = 0.2
    warmup: int = 200
    width: int = 128               # text and vision width
    embed_dim: int = 128           # pooled width E
    layers: int = 4                # text layers
    vision_layers: int = 4
    context: int = 77
    size: int = 64                 # image pixels
    n_images: int = 40000
    world_seed: int = 1000
    seed: int = 0
    eval_every: int = 500
    ckpt_every: int = 250
    eval_pairs: int = 1000         # final held-out pairs
    eval_probes: int = 300         # final binding probes per swap kind
    bf16: bool = True
    mirror_negatives: bool = True  # mirrored relation images as negatives
    mirror_positives: bool = False  # ... and as positive pairs
    aux: float = 0.0               # weight of the auxiliary heads (0: off)
    aux_kinds: float = 0.0         # with aux: weight of the kind heads
    kind_negatives: float = 0.0    # share of hard negatives changing a kind
    init_from: str = ""            # start from these CLIP weights
    pos_scale: float = 1.0         # scale the image position table at start
    resume: bool = False           # continue from out/ckpt.pt
    stop_at: int = 0               # checkpoint and stop at this step
    ship: bool = False             # write the package's weights + manifest
    command: str = ""              # the command line, for the manifest


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


def _lr(step: int, cfg: ClipTrainConfig) -> float:
    return cfg.lr * warmup_cosine(step, cfg.steps, cfg.warmup, floor=0.0)


def _optimizer(clip, cfg: ClipTrainConfig, aux: AuxHeads | None = None
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
        [{"params": decay, "weight_decay": cfg.wd},
         {"params": keep, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)


def _data(cfg: ClipTrainConfig, out: Path
          ) -> tuple[torch.Tensor, list[Scene]]:
    cache = out / "data.pt"
    if cache.is_file():
        d = torch.load(cache, weights_only=False)
        if d["key"] == [cfg.world_seed, cfg.n_images, cfg.size]:
            return d["images"], d["scenes"]
    imgs, scenes = make_images(cfg.world_seed, cfg.n_images, cfg.size,
                               progress=True)
    atomic_torch_save(cache, {"key": [cfg.world_seed, cfg.n_images,
                                      cfg.size],
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


def _previous_command(cfg: ClipTrainConfig) -> list[str]:
    """The command of the run we resume, from its manifest if any."""
    path = (WEIGHTS if cfg.ship else Path(cfg.out) / "x").with_name(
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


def train(cfg: ClipTrainConfig) -> dict:
    """The training run behind `meissonic-lite train-clip`: the manifest,
    or {"stopped_at": step} after `stop_at`."""
    from tqdm.auto import tqdm
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    set_seed(cfg.seed)
    enc_cfg = TextEncoderConfig(
        embed_dim=cfg.embed_dim, text_width=cfg.width,
        text_layers=cfg.layers, text_heads=cfg.width // 32,
        context_length=cfg.context, image_size=cfg.size,
        vision_width=cfg.width, vision_layers=cfg.vision_layers,
        init_seed=cfg.seed)
    enc = TextEncoder(build_clip(enc_cfg), enc_cfg, trainable=True)
    aux = AuxHeads(enc_cfg.embed_dim, cfg.aux_kinds) if cfg.aux > 0 else None
    opt = _optimizer(enc.clip, cfg, aux)
    step, wall, ckpt = 0, 0.0, out / "ckpt.pt"
    history, base = [], None      # base: the manifest of init_from's run
    if cfg.resume and ckpt.is_file():
        st = torch.load(ckpt, weights_only=False)
        enc.clip.load_state_dict(st["model"])
        if aux is not None:
            aux.load_state_dict(st["aux"])
        opt.load_state_dict(st["opt"])
        step, wall = st["step"], st["wall"]
        history = st.get("commands") or _previous_command(cfg)
        base = st.get("base")
        _truncate_log(out / "log.jsonl", step)
    elif not cfg.resume:
        (out / "log.jsonl").unlink(missing_ok=True)
        if cfg.init_from:
            made = _init_from(enc, enc_cfg, Path(cfg.init_from))
            base = {k: made[k] for k in ("command", "steps",
                    "wall_time_s", "final_metrics", "curve", "evals",
                    "init") if k in made}          # "init": its own source
            history = [made["command"]] if made else []
        with torch.no_grad():       # see --pos-scale
            enc.clip.visual.positional_embedding.mul_(cfg.pos_scale)
    images, scenes = _data(cfg, out)
    bar = tqdm(total=cfg.steps, initial=step, desc="train-clip")
    t0 = time.time() - wall
    stop = min(cfg.steps, cfg.stop_at or cfg.steps)
    while step < stop:
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        idx = torch.randint(len(scenes), (cfg.batch,), generator=g)
        pos, neg, false = batch_pairs(scenes, idx, cfg.seed, step,
                                      cfg.kind_negatives)
        x = images[idx].float() / 255                    # (B, 3, S, S)
        batch = [scenes[i] for i in idx]
        if cfg.mirror_positives:
            mx, mp, mn = mirror_pairs(x, batch, cfg.seed, step)
            x, pos, neg = torch.cat([x, mx]), pos + mp, neg + mn
            kept = [s for s in batch if s.relation is not None
                    and all(g.kind in vocab.SHAPES for g in s.groups)]
            batch += [mirror_scene(s) for s in kept]
            false += kept          # a mirror's false caption: the original
        B = len(pos)
        ids = enc.tokenize(pos + neg)
        for grp in opt.param_groups:
            grp["lr"] = _lr(step, cfg)
        if cfg.mirror_negatives:
            x = torch.cat([x, mirrored(x, batch)])
        with autocast(torch.device("cpu"), cfg.bf16):
            im = enc.encode_image(x).float()
            tx = enc.text_forward(ids, trim=True)[1].float()
            scale = enc.clip.logit_scale.exp().clamp(max=100)
            loss = clip_loss(im[:B], tx[:B], scale, tx[B:], im[B:])
            if aux is not None:
                aux_loss = aux.loss(tx, relation_labels(batch + false),
                                    im[:B], color_layout(batch),
                                    kind_presence(batch + false),
                                    kind_presence(batch))
                loss = loss + cfg.aux * aux_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        bar.update()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        rec = {"step": step, "loss": round(loss.item(), 4),
               "lr": _lr(step - 1, cfg), "scale": round(scale.item(), 2),
               "time_s": round(time.time() - t0, 1)}
        if step % cfg.eval_every == 0 or step == cfg.steps:
            enc.set_trainable(False)
            rec.update(evaluate(enc, n_pairs=cfg.eval_pairs // 5,
                                n_probe=cfg.eval_probes // 3))
            enc.set_trainable(True)
            tqdm.write(json.dumps(rec))
        if step % 10 == 0 or "t2i_top1" in rec:
            with open(out / "log.jsonl", "a") as log:
                log.write(json.dumps(rec) + "\n")
        if step % cfg.ckpt_every == 0 or step in (cfg.steps, stop):
            atomic_torch_save(ckpt, {
                "model": enc.clip.state_dict(),
                "aux": aux.state_dict() if aux else None,
                "opt": opt.state_dict(), "step": step,
                "wall": time.time() - t0,
                "commands": history + [cfg.command],
                "base": base})
    bar.close()
    if step < cfg.steps:                    # --stop-at: resume later
        return {"stopped_at": step}
    wall = time.time() - t0
    return _finish(enc, enc_cfg, cfg, history, base, out, wall)


def _finish(enc, enc_cfg, cfg: ClipTrainConfig, history: list[str],
            base: dict | None, out: Path, wall: float) -> dict:
    """Save fp16 weights, re-measure them as shipped, write the manifest."""
    path = WEIGHTS if cfg.ship else out / "clip.safetensors"
    save(enc.clip, enc_cfg, path)
    shipped = from_pretrained(path)
    metrics = evaluate(shipped, n_pairs=cfg.eval_pairs,
                       n_probe=cfg.eval_probes)
    curve = [json.loads(x) for x in
             (out / "log.jsonl").read_text().splitlines()]
    manifest = {
        "command": " && ".join(history + [cfg.command]),
        "config": dataclasses.asdict(enc_cfg),
        "seed": cfg.seed,
        "data": {"world_seed": cfg.world_seed, "n_images": cfg.n_images,
                 "size": cfg.size, "captions": "mixed short/long, fresh "
                 "per step, + 1 hard-negative caption per image",
                 "mirror_negatives": cfg.mirror_negatives,
                 "mirror_positives": cfg.mirror_positives,
                 "aux_weight": cfg.aux, "pos_scale": cfg.pos_scale,
                 "aux_kinds_weight": cfg.aux_kinds,
                 "kind_negatives": cfg.kind_negatives,
                 "init_from": cfg.init_from or None,
                 "heldout": f"world seed {EVAL_SEED} (pairs) and "
                 f"{EVAL_SEED + 1} (binding probes)"},
        "steps": cfg.steps, "batch": cfg.batch, "lr": cfg.lr,
        "wall_time_s": round(wall, 1),
        "params": sum(p.numel() for p in enc.clip.parameters()),
        "final_metrics": metrics,
        "curve": [{k: r[k] for k in ("step", "loss", "scale")}
                  for r in curve if r["step"] % 50 == 0],
        "evals": [r for r in curve if "t2i_top1" in r],
        "init": base,                          # the run we started from
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "dtype": "float16",
    }
    atomic_write_bytes(path.with_suffix(".json"),
                       (json.dumps(manifest, indent=1) + "\n").encode())
    print(json.dumps(metrics))
    return manifest
