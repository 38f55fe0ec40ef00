"""A resume point that a run carries from one session to the next
(chapter 6).

A session's background processes end with it, and a checkpoint with its
optimizer state (`latest.pt`, ~70 MB in fp32) is too big to commit each
time. The resume point is one small file instead: the model's weights in
fp16 with its config, plus where the run stands (images seen, the
tokenizer whose codes it learnt, the command) in the config's free-form
`extra` notes. The next session starts a fresh optimizer from it with a
short warmup. Loading refuses, with the file named, a point made for
another model config or another tokenizer, and a missing or corrupt file.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from ..models.model_files import read_model_file, to_float32
from ..models.transformer import MeissonicTransformer, TransformerConfig
from .checkpoint import check_same_model, load_checkpoint

__all__ = ["export_resume_point", "load_resume_point", "widen_compression"]

REBUILD = "meissonic-lite gate g0 --out RUN --export PATH"


def export_resume_point(checkpoint: str | Path, path: str | Path,
                        images_before: int, batch_size: int,
                        tokenizer_sha256: str, command: str = "") -> dict:
    """Write a run's checkpoint (`latest.pt`) as a resume point at `path`:
    fp16 weights and config, with the images seen (`images_before` the
    run plus its steps x `batch_size`), the tokenizer and the command in
    `config.extra["resume"]`. Returns those notes."""
    ck = load_checkpoint(checkpoint)
    cfg = TransformerConfig(**ck["model_config"])
    seen = int(images_before) + int(ck["step"]) * int(batch_size)
    notes = {"images_seen": seen, "step": int(ck["step"]),
             "tokenizer_sha256": tokenizer_sha256, "command": command,
             "from": str(checkpoint)}
    cfg.extra = {**cfg.extra, "resume": notes}
    model = MeissonicTransformer(cfg)
    model.load_state_dict(ck["model"])
    model.save_pretrained(path, torch.float16)
    return notes


def widen_compression(state: dict, k_from: int, k_to: int) -> dict:
    """The compression layers of `state` (k_from x k_from) spread over
    k_to x k_to token positions, for the same image at k_to / k_from times
    the pixels: each new token stands where one old token stood, so the
    new conv averages the old tap over its sub-block, the transposed conv
    copies it, and the transformer's positions keep what they covered.
    Paper: Meissonic adds its compression when it moves to 1024 px."""
    if k_to % k_from:
        raise ValueError(f"can widen a {k_from}x{k_from} compression only "
                         f"to a multiple of it, not {k_to}")
    r = k_to // k_from
    out = dict(state)
    for key, scale in (("down_block.conv.weight", 1.0 / (r * r)),
                       ("up_block.conv.weight", 1.0)):
        w = state[key]
        out[key] = w.repeat_interleave(r, 2).repeat_interleave(r, 3) * scale
    return out


def load_resume_point(path: str | Path, config: TransformerConfig,
                      tokenizer_sha256: str) -> tuple[dict, dict]:
    """(state, notes) of the resume point at `path`, checked against the
    model config and tokenizer of the run that wants to continue it. A
    point whose compression is narrower by a whole factor is widened
    (`widen_compression`): the progressive-resolution step of chapter 6."""
    saved, state = read_model_file(path, "resume point", REBUILD)
    notes = (saved.get("extra") or {}).get("resume")
    if notes is None:
        raise ValueError(f"{path} is a model file, not a resume point (no "
                         f"extra.resume notes); make one with: {REBUILD}")
    # JSON keeps tuples as lists: compare the config as the file holds it
    want, defaults = (json.loads(json.dumps(asdict(c)))
                      for c in (config, TransformerConfig()))
    for d in (want, saved):
        d.pop("extra", None)
    k_from = saved.get("compress_factor", defaults["compress_factor"])
    k_to = want["compress_factor"]
    widen = (saved.get("compress") and want["compress"] and k_from != k_to)
    if widen:
        saved = {**saved, "compress_factor": k_to}
    check_same_model(saved, want, path, defaults)
    state = to_float32(state)
    if widen:
        state = widen_compression(state, k_from, k_to)
        notes = {**notes, "widened_from": k_from}
    if notes.get("tokenizer_sha256") != tokenizer_sha256:
        raise ValueError(f"resume point {path} learnt the codes of another "
                         f"tokenizer ({notes.get('tokenizer_sha256')}); "
                         f"this run's is {tokenizer_sha256}")
    return state, notes

