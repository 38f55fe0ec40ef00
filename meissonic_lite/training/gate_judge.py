"""Judging a gate run (chapter 6): draw every G0 caption with the sampler
and let the independent judge read the images, and three teacher-forced
probes: where the model fails (edge versus interior tokens), whether it
knows the kinds apart at all (a generative classifier), and what it puts
in the few tokens that tell a circle from a square (the twin probe)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch
import torch.nn.functional as F

from ..evaluation.geneval import score_item
from ..evaluation.judge import COLOR_NAMES, PALETTE, detect
from ..sampling.decode import SamplerConfig, decode, micro_conditions
from ..sampling.masking import mask_rate_level
from ..utils import to_uint8
from ..world.dataset import to_tensor
from .gate_data import (
    BACKGROUND,
    GateConfig,
    flat_codes,
    g0_caption,
    g0_images,
    g0_pairs,
    g0_twins,
    snap_to_flat,
)

__all__ = ["JUDGE_SEED", "edge_interior_accuracy", "judge_gate",
           "kind_by_likelihood", "score_g0", "twin_probe"]

JUDGE_SEED = 12345  # the sampler's seed for every judged point of a curve


@torch.no_grad()
def judge_gate(model, tok, conditioner, cfg: GateConfig,
               seed: int = JUDGE_SEED) -> dict:
    """Draw every G0 caption `eval_seeds` times with the sampler and
    score the images with `score_g0`; also returns them (uint8)."""
    pairs = g0_pairs() * cfg.eval_seeds
    caps = [g0_caption(k, c) for k, c in pairs]
    cond = conditioner.encode(caps)
    uncond = conditioner.null(len(caps))
    micro = micro_conditions(cfg.size, cfg.size, len(caps))
    grid = cfg.size // tok.config.factor
    scfg = SamplerConfig(cfg.sample_steps, cfg.guidance,
                         gumbel_temperature=cfg.gumbel, order=cfg.order,
                         token_temperature=cfg.token_temperature)
    was = model.training
    model.eval()
    tokens = decode(model, cond, uncond, micro, (grid, grid), scfg,
                    torch.Generator().manual_seed(seed))
    model.train(was)
    arr = to_uint8(tok.decode(tokens))
    return {**score_g0(arr, pairs), "images": arr}


def score_g0(images, pairs: list[tuple[str, str]]) -> dict:
    """What the judge reads in G0 images, one (kind, colour) each. g0: the
    largest object the judge sees has the prompt's kind and colour; also
    the GenEval 'colors' rule (any object of the kind, all in the colour:
    stray specks can pass it), the share whose main colour is right and
    the share whose largest object has the right kind (chance 1/6), and
    read_as: for each prompted kind, how often the largest object was read
    as each kind ("none": nothing found), the confusions behind the score."""
    both = colour = kind = loose = 0
    read_as: dict[str, Counter] = {}
    for a, (k, c) in zip(images, pairs):
        a = np.asarray(a)
        dets = detect(a)
        item = {"tag": "colors", "include": [{"kind": k, "count": 1,
                                              "color": c}]}
        loose += score_item(item, dets)
        main = max(dets, key=lambda d: d.extent) if dets else None
        colour += _dominant(a) == c
        kind += main is not None and main.kind == k
        both += main is not None and (main.kind, main.color) == (k, c)
        read_as.setdefault(k, Counter())[
            main.kind if main is not None else "none"] += 1
    n = len(pairs)
    return {"g0": both / n, "geneval_colors": loose / n,
            "colour": colour / n, "kind": kind / n, "n": n,
            "read_as": {k: dict(v) for k, v in read_as.items()}}


@torch.no_grad()
def edge_interior_accuracy(model, tok, conditioner, cfg: GateConfig,
                           n: int = 192, rates=(0.3, 0.6, 0.9),
                           seed: int = 77) -> dict:
    """Teacher-forced probe on fresh G0 renders: at each mask rate, the
    argmax accuracy and cross-entropy on masked background tokens, object
    interior tokens and object edge tokens (an object token with a
    background 4-neighbour). Where the model fails, edges or layout."""
    ims, t = _fresh_tokens(tok, cfg, n, seed + 1)
    bg = int(flat_codes(tok)[COLOR_NAMES.index(BACKGROUND)])
    states, pooled = conditioner.encode(
        [g0_caption(k, c) for _, (k, c) in ims])
    micro = micro_conditions(cfg.size, cfg.size, n)
    obj = t != bg
    outside = F.pad((~obj).float()[:, None], (1, 1, 1, 1), value=1.0)
    cross = torch.tensor([[0., 1, 0], [1, 1, 1], [0, 1, 0]])[None, None]
    near_bg = F.conv2d(outside, cross)[:, 0] > 0
    parts = {"background": ~obj, "interior": obj & ~near_bg,
             "edge": obj & near_bg}
    g = torch.Generator().manual_seed(seed)
    was = model.training
    model.eval()
    out = {}
    for rate in rates:
        mask = torch.rand(t.shape, generator=g) < rate
        inp = t.masked_fill(mask, model.config.mask_id)
        level = mask_rate_level(mask.float().mean((1, 2)))
        logits = model(inp, states, pooled, micro, level).float()
        ce = F.cross_entropy(logits, t, reduction="none")
        hit = logits.argmax(1) == t
        out[str(rate)] = {
            name: {"accuracy": round(float(hit[mask & sel].float().mean()),
                                     3),
                   "ce": round(float(ce[mask & sel].mean()), 3),
                   "tokens_per_image": round(float(sel.sum()) / n, 1)}
            for name, sel in parts.items()}
    model.train(was)
    return out


@torch.no_grad()
def kind_by_likelihood(model, tok, conditioner, cfg: GateConfig,
                       n: int = 96, rate: float = 0.5,
                       seed: int = 78) -> dict:
    """Does the model know the kinds apart? Mask `rate` of the tokens of
    fresh G0 renders and read each render as the kind whose caption (with
    the true colour) makes the masked tokens most likely: the model as a
    generative classifier, with no sampler. `read_as` as the judge's."""
    ims, t = _fresh_tokens(tok, cfg, n, seed)
    kinds = list(dict.fromkeys(k for k, _ in g0_pairs()))
    mask = torch.rand(t.shape, generator=torch.Generator().manual_seed(
        seed)) < rate
    inp = t.masked_fill(mask, model.config.mask_id)
    level = mask_rate_level(mask.float().mean((1, 2)))
    micro = micro_conditions(cfg.size, cfg.size, n)
    was = model.training
    model.eval()
    nll = []
    for kind in kinds:
        states, pooled = conditioner.encode(
            [g0_caption(kind, c) for _, (_, c) in ims])
        logits = model(inp, states, pooled, micro, level).float()
        ce = F.cross_entropy(logits, t, reduction="none")
        nll.append((ce * mask).sum((1, 2)))
    model.train(was)
    read = [kinds[i] for i in torch.stack(nll, 1).argmin(1).tolist()]
    truth = [k for _, (k, _) in ims]
    return {"accuracy": round(sum(r == k for r, k in zip(read, truth)) / n,
                              3),
            "read_as": {k: dict(Counter(r for r, k2 in zip(read, truth)
                                        if k2 == k)) for k in kinds},
            "n": n, "rate": rate}


@torch.no_grad()
def twin_probe(model, tok, conditioner, cfg: GateConfig,
               kinds: tuple[str, str] = ("circle", "square"), n: int = 64,
               seed: int = 79) -> dict:
    """Circle or square? Each fresh render of one kind has a twin, the
    same object as the other kind at the same place; only the tokens
    where the two differ ("telling" tokens) tell them apart; each pair is
    rendered and tokenized once and read both ways. Mask exactly those
    and read the model's answer under the true caption: how often
    its argmax is the true code or the twin's, and the mean NLL per
    telling token under the true and under the twin's caption."""
    a, b = kinds
    ims, twins, colors = g0_twins(a, b, n, cfg.size, seed, cfg.align)
    grid = {k: _tokenize(torch.stack([to_tensor(im) for im in group]), tok,
                         cfg) for k, group in ((a, ims), (b, twins))}
    telling = grid[a] != grid[b]        # the same tokens for both kinds
    count = telling.sum()
    level = mask_rate_level(telling.float().mean((1, 2)))
    micro = micro_conditions(cfg.size, cfg.size, n)
    was = model.training
    model.eval()
    out = {}
    for kind, twin in (kinds, kinds[::-1]):
        t, tw = grid[kind], grid[twin]
        inp = t.masked_fill(telling, model.config.mask_id)
        nll, guess = {}, None
        for name, k in (("true", kind), ("twin", twin)):
            states, pooled = conditioner.encode(
                [g0_caption(k, c) for c in colors])
            logits = model(inp, states, pooled, micro, level).float()
            ce = F.cross_entropy(logits, t, reduction="none")
            nll[name] = (ce * telling).sum((1, 2))
            if name == "true":
                guess = logits.argmax(1)[telling]
        out[kind] = {
            "telling_per_image": round(float(count) / n, 1),
            "true_code": round(float((guess == t[telling]).float().mean()),
                               3),
            "twin_code": round(float((guess == tw[telling]).float().mean()),
                               3),
            "nll_true": round(float(nll["true"].sum() / count), 3),
            "nll_twin_caption": round(float(nll["twin"].sum() / count), 3),
            "true_caption_wins": round(float(
                (nll["true"] < nll["twin"]).float().mean()), 3)}
    model.train(was)
    return out


def _fresh_tokens(tok, cfg: GateConfig, n: int, seed: int):
    """n fresh G0 renders (image, (kind, colour)) and their tokens."""
    ims = g0_images(n, cfg.size, seed, cfg.align)
    return ims, _tokenize(torch.stack([to_tensor(im) for im, _ in ims]),
                          tok, cfg)


def _tokenize(x: torch.Tensor, tok, cfg: GateConfig) -> torch.Tensor:
    """The gate's tokens of images x: VQ codes or flat codes."""
    return tok.encode(x) if cfg.tokens == "vq" else snap_to_flat(x, tok)


def _dominant(a: np.ndarray) -> str:
    """The object colour covering most pixels (blobs the judge rejects)."""
    d = np.linalg.norm(a[..., None, :].astype(np.float32) - PALETTE, axis=-1)
    lab = d.argmin(-1).ravel()
    counts = np.bincount(lab, minlength=len(COLOR_NAMES))
    counts[COLOR_NAMES.index(BACKGROUND)] = 0
    return COLOR_NAMES[int(counts.argmax())]
