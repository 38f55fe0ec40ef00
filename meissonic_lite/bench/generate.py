"""Generation benchmarks: `meissonic-lite bench generate` (chapter 7).

Four measurements, each a function returning plain dicts (chapter 7
tabulates them; the command prints them and asserts nothing):

* `time_image`: one pipeline call end to end, split into text encoding,
  the decoding loop (with per-step latencies) and VQ decoding;
* `bench_batch_grid`: per-step and whole-batch time vs batch size at each
  token grid (the paper's Table 5);
* `peak_memory`: peak memory vs batch size (the paper's Figure 5): CUDA's
  `max_memory_allocated`, or on CPU the peak RSS of a fresh subprocess
  per batch size (Linux VmHWM, reset after loading and a warm-up);
* `bench_ar_vs_masked`: masked decoding of a token grid vs autoregressive
  decoding of the same grid by an equal-size causal transformer with a
  KV cache (`ar_baseline`): forward passes and wall time (the paper's
  "99% fewer decoding steps").

Timing does not depend on the weights, so `load_pipeline(random_weights=
True)` gives the same speeds before the shipped transformer exists.
"""

from __future__ import annotations

import contextlib
import gc
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from ..models import vq
from ..models.pretrained import load_text_encoder
from ..models.transformer import MeissonicTransformer, TransformerConfig
from ..sampling.decode import SamplerConfig, decode, micro_conditions
from ..sampling.pipeline import MeissonicLitePipeline
from ..utils import best_seconds, pick_device, sync
from .ar_baseline import ARConfig, CausalImageTransformer

PROMPT = "two red circles above a blue square"


# --------------------------------------------------------------- models
def random_transformer(preset: str, vq, text_encoder, compress: bool = True):
    """A randomly initialised transformer of `preset`, sized to the VQ and
    text encoder (as `training.stages.model_config` does)."""
    n = vq.config.num_codes
    cfg = TransformerConfig.preset(
        preset, codebook_size=n, vocab_size=n + 1,
        text_dim=text_encoder.hidden_dim,
        pooled_dim=text_encoder.pooled_dim, compress=compress)
    return MeissonicTransformer(cfg)


def load_pipeline(random_weights: bool = False, preset: str = "lite",
                  device: str = "auto", **paths) -> MeissonicLitePipeline:
    """The shipped pipeline, or shipped VQ + text encoder with a random
    `preset` transformer (compressed, as stages 3-4 ship it)."""
    if not random_weights:
        return MeissonicLitePipeline.from_pretrained(device, **paths)
    v = vq.from_pretrained(paths.get("vq_path"))
    te = load_text_encoder(paths.get("text_encoder_path"))
    torch.manual_seed(0)
    return MeissonicLitePipeline(v, te, random_transformer(preset, v, te),
                                 device)


def with_compress(pipe: MeissonicLitePipeline, compress: bool
                  ) -> tuple[MeissonicLitePipeline, str]:
    """`pipe`, or a copy whose transformer has random weights and the other
    compression setting (same width/depth); plus a label saying which."""
    if pipe.transformer.config.compress == compress:
        return pipe, "as loaded"
    torch.manual_seed(0)
    tr = MeissonicTransformer(replace(pipe.transformer.config,
                                      compress=compress))
    label = "random init, " + ("compressed" if compress else "no compression")
    return MeissonicLitePipeline(pipe.vq, pipe.text_encoder, tr,
                                 pipe.device), label


# ----------------------------------------------------- a. one image
@contextlib.contextmanager
def _timed(pipe: MeissonicLitePipeline, log: dict):
    """Time text encoding and VQ decoding of `pipe` (outermost calls only)
    by shadowing the methods on the instances; restored on exit."""
    depth = {"text": 0, "vq": 0}
    targets = [(pipe.text_encoder, "encode", "text"),
               (pipe.text_encoder, "null", "text"), (pipe.vq, "decode", "vq")]

    def wrap(fn, key):
        def timed(*a, **k):
            depth[key] += 1
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                depth[key] -= 1
                sync(pipe.device)
                now = time.perf_counter()
                if depth[key] == 0:
                    log[key] = log.get(key, 0.0) + now - t
                    log[key + "_end"] = now
        return timed

    for obj, name, key in targets:
        setattr(obj, name, wrap(getattr(obj, name), key))
    try:
        yield log
    finally:
        for obj, name, _ in targets:
            delattr(obj, name)


def _one_run(pipe, batch, steps, h, w, guidance, seed) -> dict:
    log: dict = {}
    ticks: list[float] = []

    def cb(i, tokens, conf):
        sync(pipe.device)
        ticks.append(time.perf_counter())

    with _timed(pipe, log):
        t0 = time.perf_counter()
        pipe(PROMPT, num_inference_steps=steps, guidance_scale=guidance,
             height=h, width=w, num_images_per_prompt=batch,
             generator=torch.Generator().manual_seed(seed), callback=cb)
        total = time.perf_counter() - t0
    loop = ticks[-1] - log["text_end"]
    steps_s = [b - a for a, b in zip([log["text_end"]] + ticks, ticks)]
    return {"total_s": total, "text_s": log["text"], "loop_s": loop,
            "vq_s": log["vq"],
            "other_s": total - log["text"] - loop - log["vq"],
            "step_s": steps_s, "per_step_s": loop / len(ticks)}


def time_image(pipe: MeissonicLitePipeline, batch: int = 1, steps: int = 16,
               size: int | tuple[int, int] = 128, guidance: float = 4.0,
               repeats: int = 3, seed: int = 0) -> dict:
    """Seconds for one pipeline call (batch images), end to end, with its
    breakdown; best of `repeats` after a 1-step warm-up."""
    h, w = (size, size) if isinstance(size, int) else size
    _one_run(pipe, batch, 1, h, w, guidance, seed)          # warm-up
    runs = [_one_run(pipe, batch, steps, h, w, guidance, seed)
            for _ in range(max(1, repeats))]
    best = min(runs, key=lambda r: r["total_s"])
    f = pipe.vq.config.factor
    return {"batch": batch, "steps": steps, "height": h, "width": w,
            "grid": (h // f, w // f), "guidance": guidance,
            "repeats": len(runs), **best}


# -------------------------------------------- b. batch x grid (Table 5)
def bench_batch_grid(pipe: MeissonicLitePipeline,
                     batches: tuple[int, ...] = (1, 2, 4, 8),
                     grids: tuple[int, ...] = (8, 16, 32), steps: int = 16,
                     compress_from: int = 32, repeats: int = 2,
                     guidance: float = 4.0) -> list[dict]:
    """Per-step latency and whole-batch time for each (grid, batch).

    Grids below `compress_from` tokens a side use a transformer without
    feature compression (as stages 1-2 train them), the others a
    compressed one (stages 3-4); where the loaded model's setting differs
    a random-weight model of the same width and depth stands in (speed
    does not depend on the weights), and the row's `model` says so.
    """
    rows = []
    f = pipe.vq.config.factor
    for g in grids:
        p, label = with_compress(pipe, g >= compress_from)
        for b in batches:
            r = time_image(p, b, steps, g * f, guidance, repeats)
            rows.append({"grid": g, "size_px": g * f, "batch": b,
                         "compress": p.transformer.config.compress,
                         "model": label, "per_step_s": r["per_step_s"],
                         "image_s": r["total_s"], "text_s": r["text_s"],
                         "loop_s": r["loop_s"], "vq_s": r["vq_s"],
                         "img_per_s": b / r["total_s"]})
    return rows


# ---------------------------------------------- c. memory (Figure 5)
def _proc_status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024            # kB -> MiB
    raise KeyError(field)


def _measure_memory(pipe, batch, size, steps) -> dict:
    """Peak memory of one generation in this process (after warm-up)."""
    run = {"num_inference_steps": steps, "height": size, "width": size}
    pipe(PROMPT, **{**run, "num_inference_steps": 1})     # warm-up
    gc.collect()
    if pipe.device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(pipe.device)
        base = torch.cuda.memory_allocated(pipe.device) / 2**20
        pipe(PROMPT, num_images_per_prompt=batch, **run)
        peak = torch.cuda.max_memory_allocated(pipe.device) / 2**20
        method = "torch.cuda.max_memory_allocated"
    else:
        try:                       # reset the RSS high-water mark (Linux)
            Path("/proc/self/clear_refs").write_text("5")
            base = _proc_status_mb("VmRSS")
            method = "peak RSS (VmHWM) of a fresh process, reset after load"
        except OSError:
            import resource
            base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            method = "ru_maxrss of a fresh process (includes load peak)"
        pipe(PROMPT, num_images_per_prompt=batch, **run)
        try:
            peak = _proc_status_mb("VmHWM")
        except (OSError, KeyError):
            import resource
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"batch": batch, "size_px": size, "baseline_mb": base,
            "peak_mb": peak, "delta_mb": peak - base, "method": method}


def _memory_child(spec: str) -> None:
    """Subprocess entry: load, measure one batch size, print JSON."""
    s = json.loads(spec)
    torch.set_num_threads(s["threads"]) if s["threads"] else None
    pipe = load_pipeline(**s["load"])
    print(json.dumps(_measure_memory(pipe, s["batch"], s["size"],
                                     s["steps"])))


def peak_memory(batches: tuple[int, ...] = (1, 2, 4, 8), size: int = 128,
                steps: int = 2, random_weights: bool = False,
                preset: str = "lite", device: str = "auto",
                **paths) -> list[dict]:
    """Peak memory vs batch size (`steps` decoding steps; the per-step
    peak does not grow with the number of steps). On CUDA it is measured
    in this process; on CPU in a fresh subprocess per batch size, so one
    batch's allocations cannot hide another's. `baseline_mb` is the
    memory after loading and a warm-up, `peak_mb` the high-water mark."""
    load = dict(random_weights=random_weights, preset=preset,
                device=device, **paths)
    if pick_device(device).type == "cuda":
        pipe = load_pipeline(**load)
        return [_measure_memory(pipe, b, size, steps) for b in batches]
    rows = []
    for b in batches:
        spec = json.dumps({"load": load, "batch": b, "size": size,
                           "steps": steps,
                           "threads": torch.get_num_threads()})
        code = ("from meissonic_lite.bench.generate import _memory_child; "
                f"_memory_child({spec!r})")
        out = subprocess.run([sys.executable, "-c", code], check=True,
                             capture_output=True, text=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


# --------------------------------------------- d. masked vs autoregressive
class _PassCounter:
    """Counts forward calls and the (batch x sequence) positions they
    process, through a forward hook; `positions` maps inputs to that."""

    def __init__(self, model, positions):
        self.passes, self.positions = 0, 0
        self._positions = positions
        self._h = model.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        self.passes += 1
        self.positions += self._positions(args)

    def remove(self) -> None:
        self._h.remove()


def bench_ar_vs_masked(transformer, grid: int = 32, steps: int = 16,
                       guidance: float = 4.0, text_len: int = 77,
                       ar_tokens: int | None = None, repeats: int = 1,
                       seed: int = 0) -> dict:
    """Decode one grid x grid canvas (batch 1, CFG) by masked parallel
    decoding with `transformer` and by an equal-size causal transformer
    with a KV cache; forward passes, positions processed, wall time.

    Text encoding and VQ decoding are the same for both and left out.
    `ar_tokens` < grid**2 times only that many AR tokens and extrapolates
    linearly (flagged `extrapolated`; attention over a longer cache makes
    the true time somewhat larger). Times are the best of `repeats`.
    """
    cfg = transformer.config
    dev = next(transformer.parameters()).device
    g = torch.Generator().manual_seed(seed)
    cond = (torch.randn(1, text_len, cfg.text_dim, generator=g).to(dev),
            torch.randn(1, cfg.pooled_dim, generator=g).to(dev))
    uncond = (torch.zeros_like(cond[0]), torch.zeros_like(cond[1]))
    size = grid * 4                      # micro-condition only (f = 4)
    micro = micro_conditions(size, size, 1, device=dev)
    n = grid * grid
    shrink = cfg.compression ** 2

    def masked_pos(args):
        tok, text = args[0], args[1]
        return tok.shape[0] * (tok[0].numel() // shrink + text.shape[1])

    sc = SamplerConfig(steps, guidance)
    decode(transformer, cond, uncond, micro, (grid, grid),
           replace(sc, steps=1), torch.Generator().manual_seed(seed))
    def run_masked():
        decode(transformer, cond, uncond, micro, (grid, grid), sc,
               torch.Generator().manual_seed(seed))

    count = _PassCounter(transformer, masked_pos)
    run_masked()                                  # counted, not timed
    count.remove()
    t_masked = best_seconds(run_masked, repeats, dev)
    masked = {"forward_passes": count.passes, "positions": count.positions,
              "seconds": t_masked, "params": transformer.num_params()}

    torch.manual_seed(seed)
    ar = CausalImageTransformer(ARConfig.like(cfg, n, text_len)).to(dev)
    ar.eval()
    k = n if ar_tokens is None else max(1, min(ar_tokens, n))
    ar.generate(cond[0], 2, uncond[0], guidance,
                torch.Generator().manual_seed(seed))        # warm-up
    def run_ar():
        ar.generate(cond[0], k, uncond[0], guidance,
                    torch.Generator().manual_seed(seed))

    count = _PassCounter(ar, lambda a: a[0].shape[0] * a[0].shape[1])
    run_ar()                                      # counted, not timed
    count.remove()
    t_ar = best_seconds(run_ar, repeats, dev)
    ar_row = {"forward_passes": count.passes * n // k if k < n
              else count.passes, "positions": count.positions * n // k,
              "seconds": t_ar * n / k, "params":
              sum(p.numel() for p in ar.parameters()),
              "extrapolated": k < n, "tokens_timed": k}
    return {"grid": grid, "tokens": n, "steps": steps, "guidance": guidance,
            "masked": masked, "ar": ar_row,
            "fewer_passes_pct": 100 * (1 - masked["forward_passes"]
                                       / ar_row["forward_passes"]),
            "wall_time_ratio_ar_over_masked": ar_row["seconds"] / t_masked}
