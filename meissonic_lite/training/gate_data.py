"""G0's data (chapter 6): one large object on gray, its caption, its
tokens (the VQ's codes or flat colour codes), the ideal text encoder, and
`GateConfig`, what one gate run trains on and how it is judged.

`snap_to_flat` and `OneHotText` exist to take the gate apart: flat codes
remove the edge codes (which carry where an edge falls inside its patch),
and one-hot text removes the CLIP text path, one at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from ..evaluation.judge import PALETTE
from ..world import vocab
from ..world.render import render
from ..world.scene import Group, make_scene

BACKGROUND = "gray"


@dataclass
class GateConfig:
    """One gate run: data, model, optimisation and how it is judged."""

    gate: str = "g0"
    size: int = 64                 # image side in pixels
    n_images: int = 8192           # rendered pool (cycled through)
    steps: int = 400
    batch_size: int = 64
    lr: float = 1.5e-3
    warmup: int = 50
    schedule: str = "constant"
    beta2: float = 0.999           # AdamW's second-moment memory
    label_smoothing: float = 0.0   # MaskGIT trains with 0.1
    blob_masks: float = 0.5
    cfg_dropout: float = 0.1
    compress: bool = True          # 2x2 feature compression (8x8 inside)
    compress_factor: int = 2       # 4: 32x32 tokens (128 px) on 8x8
    heads: int = 3                 # attention heads of 64 channels (width)
    ema: float = 0.0               # > 0: also judge EMA weights (decay)
    conv_blocks: int = 0           # aMUSEd's ConvNeXt blocks per side
    cond: str = "clip"             # "clip" or "onehot"
    text_len: int = 0              # clip: keep this many states (0: 77)
    tokens: str = "vq"             # "vq" codes, or "flat": each patch's
    #                                majority colour as its flat code
    tokenizer: str = ""            # VQ weights file ("": the shipped f=4)
    align: int = 0                 # snap object centres to N px (0: off)
    eval_every: int = 100
    eval_seeds: int = 2            # images per caption at each evaluation
    sample_steps: int = 16
    guidance: float = 3.0
    gumbel: tuple[float, float] = (4.5, 0.0)
    order: str = "confidence"      # the sampler's reveal order
    token_temperature: float = 1.0  # < 1: sharper draws of each token
    init: str = ""                 # start from this resume point (fresh
    #                                optimizer, warmup; images carry on)
    seed: int = 0
    bf16: bool = True              # autocast where the CPU has native bf16

    def __post_init__(self):
        if self.gate != "g0":
            raise ValueError(f"unknown gate {self.gate!r}; allowed: g0")
        if self.tokens not in ("vq", "flat"):
            raise ValueError(f"tokens must be 'vq' or 'flat', got "
                             f"{self.tokens!r}")
        if self.cond not in ("clip", "onehot"):
            raise ValueError(f"cond must be 'clip' or 'onehot', got "
                             f"{self.cond!r}")
        if self.order not in ("confidence", "random", "halton"):
            raise ValueError(f"order must be confidence, random or "
                             f"halton, got {self.order!r}")
        self.gumbel = tuple(self.gumbel)


def g0_pairs() -> list[tuple[str, str]]:
    """Every (kind, colour) of G0: the world's 6 shapes x 8 colours."""
    return [(k, c) for k in vocab.SHAPES for c in vocab.COLORS]


def g0_caption(kind: str, color: str) -> str:
    """G0's short caption, e.g. 'a red star'."""
    return f"a {color} {kind}"


def g0_images(n: int, size: int, seed: int, align: int = 0):
    """n G0 renders (PIL) and their (kind, colour): object i is pair i mod
    48, placed at random; `align` > 0 snaps its centre to multiples of
    that many pixels (e.g. the token size, so no sub-token offsets)."""
    pairs = g0_pairs()
    out = []
    for i in range(n):
        kind, color = pairs[i % len(pairs)]
        scene = _g0_scene(kind, color, seed * 1_000_003 + i, size, align)
        out.append((render(scene, size), (kind, color)))
    return out


def g0_twins(kind: str, twin: str, n: int, size: int, seed: int,
             align: int = 0):
    """n G0 renders of `kind` (colours in turn) and their twins: the same
    object drawn as `twin` at the same place and size. Where the two
    tokenize differently is all that tells the kinds apart (chapter 6)."""
    vocab.check_kind(kind)
    vocab.check_kind(twin)
    colors = [list(vocab.COLORS)[i % len(vocab.COLORS)] for i in range(n)]
    ims, twins = [], []
    for i, color in enumerate(colors):
        scene = _g0_scene(kind, color, seed * 1_000_003 + i, size, align)
        other = tuple(replace(o, kind=twin) for o in scene.objects)
        ims.append(render(scene, size))
        twins.append(render(replace(scene, objects=other), size))
    return ims, twins, colors


def _g0_scene(kind: str, color: str, seed: int, size: int, align: int):
    """One large object placed at random; `align` snaps its centre."""
    scene = make_scene([Group(kind, color, "large", 1)], BACKGROUND,
                       seed=seed)
    if align:
        snap = [replace(o, cx=round(o.cx * size / align) * align / size,
                        cy=round(o.cy * size / align) * align / size)
                for o in scene.objects]
        scene = replace(scene, objects=tuple(snap))
    return scene


def flat_codes(tok) -> torch.Tensor:
    """(P,) the code the tokenizer gives a flat patch of each palette
    colour (judge.COLOR_NAMES order): one code per colour (chapter 2)."""
    rgb = torch.tensor(PALETTE / 255.0).float()
    img = rgb[:, :, None, None].expand(-1, 3, 4 * tok.config.factor,
                                       4 * tok.config.factor)
    with torch.no_grad():
        return tok.encode(img)[:, 1, 1]


def snap_to_flat(images: torch.Tensor, tok) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, H/f, W/f) flat codes: each patch
    becomes the code of its most common palette colour, so an object's
    outline is carried by which tokens hold it, not by edge codes."""
    f = tok.config.factor
    x = images.permute(0, 2, 3, 1) * 255.0
    lab = torch.cdist(x.reshape(-1, 3), torch.tensor(PALETTE).float())
    lab = lab.argmin(-1).reshape(x.shape[:3])            # (B, H, W)
    b, h, w = lab.shape
    patches = lab.reshape(b, h // f, f, w // f, f).permute(0, 1, 3, 2, 4)
    onehot = F.one_hot(patches.reshape(b, h // f, w // f, f * f),
                       len(PALETTE)).sum(-2)             # (B, h, w, P)
    return flat_codes(tok)[onehot.argmax(-1)]


class OneHotText:
    """The ideal text encoder for G0: a fixed random vector per kind and
    per colour (B, 2, D); pooled is their sum; the null prompt is zeros."""

    def __init__(self, dim: int, pooled_dim: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.kind = torch.randn(len(vocab.SHAPES), dim, generator=g)
        self.color = torch.randn(len(vocab.COLORS), dim, generator=g)
        self.proj = torch.randn(dim, pooled_dim, generator=g) / dim ** 0.5
        self.hidden_dim, self.pooled_dim = dim, pooled_dim

    def encode(self, captions: list[str]):
        ks, cs = [], []
        for cap in captions:
            _, color, kind = cap.split()
            ks.append(vocab.SHAPES.index(kind))
            cs.append(list(vocab.COLORS).index(color))
        states = torch.stack([self.kind[ks], self.color[cs]], dim=1)
        return states, states.sum(1) @ self.proj

    def null(self, batch: int = 1):
        return (torch.zeros(batch, 2, self.hidden_dim),
                torch.zeros(batch, self.pooled_dim))


class ClipText:
    """The shipped CLIP, captions encoded once (G0 has 48 of them).

    `length` > 0 keeps the first `length` hidden states: the text tower is
    causal, so they are exactly what a shorter context gives, and G0's
    captions fit in 8 BPE positions with start and end; the paper (and the
    pipeline) keep all 77, which doubles this gate's cost."""

    def __init__(self, enc, length: int = 0):
        self.enc, self.memo, self.length = enc, {}, length
        self.hidden_dim, self.pooled_dim = enc.hidden_dim, enc.pooled_dim

    def _cut(self, states: torch.Tensor) -> torch.Tensor:
        return states[:, :self.length] if self.length else states

    @torch.no_grad()
    def encode(self, captions: list[str]):
        todo = [c for c in dict.fromkeys(captions) if c not in self.memo]
        if todo:
            h, p = self.enc.encode(todo)
            self.memo.update({c: (hi, pi) for c, hi, pi in zip(todo, h, p)})
        return (self._cut(torch.stack([self.memo[c][0] for c in captions])),
                torch.stack([self.memo[c][1] for c in captions]))

    @torch.no_grad()
    def null(self, batch: int = 1):
        h, p = self.enc.null(batch)
        return self._cut(h), p
