"""Ship the trained text-to-image model: weights, sample grids, manifest.

`meissonic-lite train --stage all --ship` (or `--ship` alone after the four
stages ran) copies stage 4's transformer and fine-tuned text encoder into
the package, keeps each stage's last sample grid (the chapter shows the
four stages side by side without shipping four checkpoints), measures the
shipped files with the judge (GenEval-lite, the aesthetic check) and
writes `weights/transformer.json`: commands, configs, seeds, data, steps,
wall times, loss curves and metrics.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import torch

from ..evaluation.judge import ACCEPT_SCORE
from ..evaluation.t2i_eval import aesthetic_gap, evaluate_geneval
from ..models.pretrained import DEFAULT as TRANSFORMER_WEIGHTS
from ..models.vq import DEFAULT_WEIGHTS as VQ_WEIGHTS
from ..models.vq import from_pretrained
from ..sampling.pipeline import (
    DEFAULT_BLOB_NOISE,
    DEFAULT_GUIDANCE,
    DEFAULT_GUIDANCE_SCHEDULE,
    DEFAULT_STEPS,
    MeissonicLitePipeline,
)
from ..utils import atomic_write_bytes

WEIGHTS_DIR = TRANSFORMER_WEIGHTS.parent
TEXT_WEIGHTS = WEIGHTS_DIR / "text_encoder.safetensors"
STAGE_GRIDS = WEIGHTS_DIR / "stages"
MANIFEST = TRANSFORMER_WEIGHTS.with_suffix(".json")
CHECK = {"limit": 96, "seed": 0}     # the quick re-check a test repeats


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def loss_curve(log: Path, every: int = 50) -> list[list[float]]:
    """[step, mean loss over the last `every` steps] from a trainer log."""
    rows = [json.loads(x) for x in log.read_text().splitlines() if x]
    rows = [r for r in rows if not r.get("skipped")]
    out, acc = [], []
    for r in rows:
        acc.append(r["loss"])
        if r["step"] % every == 0:
            out.append([r["step"], round(sum(acc) / len(acc), 4)])
            acc = []
    return out


def measure(steps: int | None = None, guidance: float | None = None,
            progress: bool = True) -> dict:
    """Every bar of the shipped model, on the shipped files."""
    pipe = MeissonicLitePipeline.from_pretrained(device="cpu")
    steps = steps or DEFAULT_STEPS
    guidance = DEFAULT_GUIDANCE if guidance is None else guidance
    return {"sampler": {"num_inference_steps": steps,
                        "guidance_scale": guidance,
                        "guidance_schedule": DEFAULT_GUIDANCE_SCHEDULE,
                        "blob_noise": DEFAULT_BLOB_NOISE,
                        "size": 128},
            "geneval_lite": evaluate_geneval(pipe, steps, guidance,
                                             progress=progress),
            "aesthetic": aesthetic_gap(pipe, steps=steps, guidance=guidance,
                                       progress=progress),
            "check": {**CHECK, **evaluate_geneval(
                pipe, steps, guidance, CHECK["seed"], CHECK["limit"],
                progress=progress)}}


def _ship_tokenizer(stages: dict, vq: str | Path | None, dest: Path
                    ) -> Path:
    """The VQ the stages were trained on, copied to `dest` if `vq` names
    it; refuses a tokenizer whose tokens differ from the stages' own."""
    shas = {m["data"].get("tokenizer_sha256") for m in stages.values()}
    if len(shas) != 1:
        raise ValueError(f"the four stages were trained on different "
                         f"tokenizers ({sorted(map(str, shas))})")
    want = shas.pop()
    target = dest / VQ_WEIGHTS.name
    src = Path(vq) if vq else (target if target.is_file() else VQ_WEIGHTS)
    have = from_pretrained(src).tokenizer_sha256
    if have != want:
        used = stages[4].get("vq", {}).get("path", "another VQ")
        raise ValueError(f"the stages were trained on the tokens of "
                         f"{used} (tokenizer {want[:12]}), but {src} makes "
                         f"other tokens ({have[:12]}): pass --vq with the "
                         f"tokenizer they were trained on")
    if vq and src.resolve() != target.resolve():
        shutil.copyfile(src, target)
        if src.with_suffix(".json").is_file():
            shutil.copyfile(src.with_suffix(".json"),
                            target.with_suffix(".json"))
    return target if target.is_file() else VQ_WEIGHTS


def ship(runs: str | Path = "runs/t2i", evaluate: bool = True,
         dest: str | Path = WEIGHTS_DIR, vq: str | Path | None = None
         ) -> dict:
    """Copy stage 4 into `dest` (the package), keep the stage grids,
    measure, and write the manifest; returns it. `vq`: the tokenizer the
    stages were trained on, shipped with them (default: the one in
    `dest`, which must make the same tokens)."""
    runs, dest = Path(runs), Path(dest)
    weights = dest / TRANSFORMER_WEIGHTS.name
    text_weights, grids = dest / TEXT_WEIGHTS.name, dest / STAGE_GRIDS.name
    stages = {}
    for s in (1, 2, 3, 4):
        man = runs / f"stage{s}" / "manifest.json"
        if not man.is_file():
            raise FileNotFoundError(f"{man} not found: run `meissonic-lite "
                                    f"train --stage {s}` first")
        stages[s] = json.loads(man.read_text())
    vq_file = _ship_tokenizer(stages, vq, dest)
    last = runs / "stage4"
    shutil.copyfile(last / "model.safetensors", weights)
    shutil.copyfile(last / "clip.safetensors", text_weights)
    grids.mkdir(exist_ok=True)
    per_stage = {}
    for s, m in stages.items():
        grid = runs / f"stage{s}" / "samples" / m["samples"]["final"]
        shutil.copyfile(grid, grids / f"stage{s}.png")
        per_stage[str(s)] = {
            "command": m["command"], "spec": m["stage"],
            "train_config": m["train_config"], "data": {
                k: m["data"].get(k) for k in (
                    "count", "grid", "size", "world_seed", "caption_style",
                    "p_clean", "tokenizer_sha256", "wall_time_s")},
            "steps": m["steps"], "wall_time_s": m["wall_time_s"],
            "sampling_time_s": m.get("sampling_time_s"),
            "train_loss_last20": m["final_metrics"]["train_loss_last20"],
            "loss_curve": loss_curve(runs / f"stage{s}" / "log.jsonl"),
            "sample_grid": f"stages/stage{s}.png",
            "sample_prompts": m["samples"]["prompts"],
            "sample_settings": m["samples"]["settings"],
            # probes run on the stage's checkpoints along the way
            # (`meissonic-lite diagnose ... --out`)
            "diagnostics": [json.loads(p.read_text()) for p in sorted(
                (runs / f"stage{s}").glob("diagnostics*.json"))]}
    manifest = {
        "command": " && ".join(dict.fromkeys(
            m["command"] for m in stages.values())) + " && meissonic-lite "
            "train --ship-only",
        "model_config": stages[4]["model_config"],
        "seed": stages[4]["seed"],
        "stages": per_stage,
        "steps": sum(m["steps"] for m in stages.values()),
        "wall_time_s": round(sum(m["wall_time_s"]
                                 for m in stages.values()), 1),
        "files": {p.name: _sha(p) for p in (weights, text_weights)},
        "tokenizer": {"file": vq_file.name, "sha256": _sha(vq_file),
                      "tokenizer_sha256": stages[4]["data"].get(
                          "tokenizer_sha256")},
        "dtype": "float16",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__}
    manifest["previous_models"] = _previous_models(weights.with_suffix(
        ".json"))
    if evaluate:
        if dest.resolve() != WEIGHTS_DIR.resolve():
            raise ValueError("evaluate=True measures the package's "
                             "weights: ship to the package dir")
        manifest["final_metrics"] = measure()
        manifest["measured_with"] = _measured_with()
    atomic_write_bytes(weights.with_suffix(".json"),
                       (json.dumps(manifest, indent=1) + "\n").encode())
    return manifest


def _previous_models(path: Path) -> list[dict]:
    """The models shipped before this one, in brief (recipe, figures, the
    probes run while training them), so a retrain never erases the
    evidence a chapter compares against."""
    if not path.is_file():
        return []
    old = json.loads(path.read_text())
    brief = {k: old.get(k) for k in ("date", "command", "steps",
                                     "wall_time_s", "final_metrics",
                                     "measured_with", "history")}
    brief["stages"] = {s: {k: st.get(k) for k in ("spec", "steps",
                                                  "wall_time_s",
                                                  "diagnostics")}
                       for s, st in old.get("stages", {}).items()}
    return old.get("previous_models", []) + [brief]


def _measured_with() -> dict:
    """What else decides the figures: the VQ that decodes the images (a
    decoder fine-tune keeps the tokens but changes the pictures) and the
    judge's acceptance threshold."""
    return {VQ_WEIGHTS.name: _sha(VQ_WEIGHTS),
            "judge_accept_score": ACCEPT_SCORE}


def remeasure(dest: str | Path = WEIGHTS_DIR, measure_fn=measure,
              progress: bool = True) -> dict:
    """Measure the shipped files again and rewrite the manifest's
    metrics, keeping the old ones in `history`: what a judge or VQ
    decoder change needs (the weights and their training are unchanged).
    `measure_fn` (default `measure`, on the package's files) is there for
    tests."""
    path = Path(dest) / MANIFEST.name
    manifest = json.loads(path.read_text())
    for name, sha in manifest["files"].items():
        if _sha(Path(dest) / name) != sha:
            raise ValueError(f"{name} is not the file {path} describes: "
                             "ship it again (train --ship-only)")
    old = {k: manifest.get(k) for k in ("final_metrics", "measured_with")}
    old["date"] = manifest.get("measured", manifest["date"])
    manifest.setdefault("history", []).append(old)
    manifest["final_metrics"] = measure_fn(progress=progress)
    manifest["measured_with"] = _measured_with()
    manifest["measured"] = datetime.now(timezone.utc).isoformat(
        timespec="seconds")
    atomic_write_bytes(path, (json.dumps(manifest, indent=1) + "\n")
                       .encode())
    return manifest
