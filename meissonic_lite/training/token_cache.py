"""Offline token extraction: tokenize a stage's training set once (chapter 2).

The paper extracts features offline to save compute; here the frozen VQ
turns every training image of a stage into its token grid once, and
training reads the cache instead of rendering and encoding each step.

A cache is a directory:
  tokens.safetensors  "tokens" uint16 (N, h, w), "micro_conds" f32 (N, 5)
  captions.json       list of N captions
  meta.json           written last: VQ weights hash, world seed, size,
                      caption style, count, ... (validated on load)
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save
from tqdm.auto import tqdm

from ..models.vq import VQModel, from_pretrained
from ..utils import atomic_write_bytes, autocast
from ..world.dataset import make_example

FORMAT = 2
STAGE_GRID = {1: 8, 2: 16, 3: 32, 4: 32}    # token grid side per stage
PACKAGE_DIR = Path(__file__).resolve().parents[1]
REBUILD = "meissonic-lite extract --stage {stage} --out {out}"


def _check_out(out: Path) -> Path:
    out = out.resolve()
    if out == PACKAGE_DIR or PACKAGE_DIR in out.parents:
        raise ValueError(f"cache dir {out} is inside the package; "
                         "put caches elsewhere (e.g. ./cache/stage1)")
    return out


def extract(out: str | os.PathLike, stage: int = 1, n: int = 20000,
            seed: int = 0, caption_style: str = "mixed",
            p_clean: float = 0.3, degrade: bool = True,
            vq: VQModel | None = None, batch: int = 128,
            bf16: bool = False, progress: bool = True) -> dict:
    """Render + tokenize `n` examples of stage `stage`; return the meta."""
    if stage not in STAGE_GRID:
        raise ValueError(f"stage must be one of {sorted(STAGE_GRID)}, "
                         f"got {stage!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    out = _check_out(Path(out))
    vq = vq or from_pretrained()
    vq.eval()
    grid = STAGE_GRID[stage]
    size = grid * vq.config.factor
    tokens = torch.empty(n, grid, grid, dtype=torch.uint16)
    conds = torch.empty(n, 5, dtype=torch.float32)
    captions: list[str] = []
    t0 = time.perf_counter()
    for i in tqdm(range(0, n, batch), desc=f"extract stage {stage}",
                  disable=not progress):
        exs = [make_example(seed, j, size, caption_style, p_clean, degrade)
               for j in range(i, min(n, i + batch))]
        arr = np.stack([np.asarray(e.image, np.uint8) for e in exs])
        x = torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255.0
        with autocast(torch.device("cpu"), bf16):
            tok = vq.encode(x)                          # (b, grid, grid)
        tokens[i:i + len(exs)] = tok.to(torch.uint16)
        conds[i:i + len(exs)] = torch.tensor([e.micro_conds for e in exs])
        captions += [e.caption for e in exs]
    wall = time.perf_counter() - t0
    meta = {"format": FORMAT, "stage": stage, "grid": grid, "size": size,
            "count": n, "world_seed": seed, "caption_style": caption_style,
            "p_clean": p_clean, "degrade": degrade,
            "tokenizer_sha256": vq.tokenizer_sha256,
            "vq_sha256": vq.weights_sha256, "vq_config": vq.config.to_dict(),
            "bf16": bf16, "wall_time_s": round(wall, 1),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    save_cache(out, tokens, conds, captions, meta)
    return meta


def save_cache(out: Path, tokens: torch.Tensor, conds: torch.Tensor,
               captions: list[str], meta: dict) -> None:
    """Write the three files; meta.json last so a crash leaves no meta."""
    out = _check_out(Path(out))
    meta_path = out / "meta.json"
    if meta_path.exists():
        meta_path.unlink()                 # invalidate while rewriting
    atomic_write_bytes(out / "tokens.safetensors", save(
        {"tokens": tokens.contiguous(), "micro_conds": conds.contiguous()}))
    atomic_write_bytes(out / "captions.json",
                       json.dumps(captions).encode())
    atomic_write_bytes(meta_path, (json.dumps(meta, indent=1) + "\n")
                       .encode())


class TokenCache(torch.utils.data.Dataset):
    """A validated cache; items {"tokens": (h, w) long, "caption",
    "micro_conds": (5,)}, the format stage training reads."""

    def __init__(self, path: str | os.PathLike,
                 tokenizer_sha256: str | None = None):
        self.path = path = Path(path)
        hint = (f"rebuild it with: "
                f"{REBUILD.format(stage='N', out=path)}")
        meta_path = path / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"no token cache at {path} (missing {meta_path.name}); "
                + hint)
        try:
            self.meta = meta = json.loads(meta_path.read_text())
            t = load_file(str(path / "tokens.safetensors"))
            self.tokens, self.micro_conds = t["tokens"], t["micro_conds"]
            self.captions = json.loads((path / "captions.json").read_text())
            n, g = meta["count"], meta["grid"]
        except Exception as e:
            raise ValueError(f"token cache {path} is corrupt ({e}); "
                             + hint) from e
        if meta.get("format") != FORMAT:
            raise ValueError(f"token cache {path} has format "
                             f"{meta.get('format')}, expected {FORMAT}; "
                             + hint)
        if (tuple(self.tokens.shape) != (n, g, g)
                or tuple(self.micro_conds.shape) != (n, 5)
                or len(self.captions) != n):
            raise ValueError(
                f"token cache {path} is inconsistent: tokens "
                f"{tuple(self.tokens.shape)}, micro_conds "
                f"{tuple(self.micro_conds.shape)}, {len(self.captions)} "
                f"captions, meta says count={n}, grid={g}; " + hint)
        made_by = meta.get("tokenizer_sha256")
        if tokenizer_sha256 is not None and made_by != tokenizer_sha256:
            raise ValueError(
                f"token cache {path} was made by another VQ encoder/codebook "
                f"({made_by}), expected {tokenizer_sha256}; "
                + hint)

    def __len__(self) -> int:
        return self.meta["count"]

    def __getitem__(self, i: int) -> dict:
        return {"tokens": self.tokens[i].long(),
                "caption": self.captions[i],
                "micro_conds": self.micro_conds[i]}


def load_cache(path: str | os.PathLike,
               vq: VQModel | None = None) -> TokenCache:
    """Open a cache; with `vq`, also check its encoder made the tokens."""
    return TokenCache(path, vq.tokenizer_sha256 if vq is not None else None)
