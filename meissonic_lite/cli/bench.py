"""`meissonic-lite bench transformer|generate`: throughput, latency,
memory, masked vs autoregressive decoding (chapter 7), printed as tables.

    meissonic-lite bench transformer --fp32
    meissonic-lite bench generate --quick

The measurements are functions of `meissonic_lite.bench` that return plain
dicts (chapter 7 tabulates them too); this file only runs and prints them.
"""

from __future__ import annotations

import argparse

import torch

from ..bench import generate as gen
from ..bench.transformer import bench_transformer
from ..models.transformer import TransformerConfig
from ..utils import autocast_helps, pick_device


def cmd_transformer(args: argparse.Namespace) -> None:
    """Train and inference images/s at the stage-2 and stage-3 shapes."""
    torch.set_num_threads(args.threads) if args.threads else None
    base = TransformerConfig.preset(args.preset)
    stages = [("stage 2", 16, False), ("stage 3", 32, True)]
    mixed = not args.fp32 and autocast_helps(pick_device(args.device))
    why = "" if mixed or args.fp32 else " (no native bf16 here)"
    print(f"preset {args.preset}: width {base.dim}, dual {base.num_dual}, "
          f"single {base.num_single}, batch {args.batch}, text "
          f"{args.text_len} tokens, bf16 autocast {mixed}{why}, "
          f"threads {torch.get_num_threads()}")
    for name, grid, comp in stages:
        cfg = TransformerConfig.preset(args.preset, compress=comp)
        r = bench_transformer(cfg, args.batch, grid, args.text_len,
                              args.iters, args.warmup, not args.fp32,
                              args.device)
        inside = grid // 2 if comp else grid
        print(f"{name}: {grid}x{grid} tokens ({inside}x{inside} inside), "
              f"{r['params'] / 1e6:.2f} M params: train "
              f"{r['train_img_s']:.1f} img/s, infer "
              f"{r['infer_img_s']:.1f} img/s")


def cmd_generate(args: argparse.Namespace) -> None:
    """Run the parts asked for and print them as tables."""
    if args.threads:
        torch.set_num_threads(args.threads)
    quick = args.quick
    batches = (1, 2) if quick else tuple(int(b) for b in
                                         args.batches.split(","))
    grids = tuple(int(g) for g in args.grids.split(","))
    repeats = 1 if quick else args.repeats
    parts = set(args.only.split(",")) if args.only else \
        {"image", "table", "memory", "ar"}
    pipe = gen.load_pipeline(args.random_weights, args.preset, args.device)
    c = pipe.transformer.config
    what = (f"random-init {args.preset} preset" if args.random_weights
            else "shipped weights")
    print(f"transformer: {what}, width {c.dim}, {c.num_dual} dual + "
          f"{c.num_single} single blocks, compress {c.compress}, "
          f"{pipe.transformer.num_params() / 1e6:.2f} M params; device "
          f"{pipe.device}, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}; best of {repeats} run(s)")
    if "image" in parts:
        r = gen.time_image(pipe, 1, args.steps, args.size, repeats=repeats)
        print(f"\n[a] one {args.size}x{args.size} image, batch 1, "
              f"{args.steps} steps, CFG {r['guidance']}: {r['total_s']:.3f}"
              f" s end to end (issue bar: <= 2 s on 2 cores)")
        print(f"    text {r['text_s']:.3f} s | decode loop {r['loop_s']:.3f}"
              f" s ({r['per_step_s'] * 1e3:.1f} ms/step; first "
              f"{r['step_s'][0] * 1e3:.1f}, last {r['step_s'][-1] * 1e3:.1f})"
              f" | VQ decode {r['vq_s']:.3f} s | other {r['other_s']:.3f} s")
    if "table" in parts:
        rows = gen.bench_batch_grid(pipe, batches, grids, args.steps,
                                    repeats=repeats)
        print(f"\n[b] per-step latency, s (whole batch, {args.steps} steps, "
              "end to end, s) -- the paper's Table 5")
        print("grid    px  compress" +
              "".join(f"  batch {b:<9d}" for b in batches) + "  model")
        for g in grids:
            rs = [r for r in rows if r["grid"] == g]
            cells = "".join(f"  {r['per_step_s']:.3f} ({r['image_s']:6.2f})"
                            for r in rs)
            print(f"{g:2d}x{g:<2d} {rs[0]['size_px']:4d}  "
                  f"{'yes' if rs[0]['compress'] else 'no':8s}{cells}  "
                  f"{rs[0]['model']}")
    if "memory" in parts:
        mb = batches if quick else (1, 2, 4, 8)
        rows = gen.peak_memory(mb, args.size, 2, args.random_weights,
                               args.preset, args.device)
        print(f"\n[c] peak memory vs batch at {args.size}x{args.size} -- "
              f"the paper's Figure 5; {rows[0]['method']}")
        for r in rows:
            print(f"    batch {r['batch']}: peak {r['peak_mb']:.0f} MiB, "
                  f"+{r['delta_mb']:.0f} MiB over the loaded baseline "
                  f"{r['baseline_mb']:.0f} MiB")
    if "ar" in parts:
        g = args.size // pipe.vq.config.factor
        r = gen.bench_ar_vs_masked(pipe.transformer, g, args.steps,
                                   ar_tokens=args.ar_tokens,
                                   repeats=repeats)
        m, a = r["masked"], r["ar"]
        ext = f" (extrapolated from {a['tokens_timed']} tokens)" \
            if a["extrapolated"] else ""
        print(f"\n[d] decoding a {g}x{g} grid ({r['tokens']} tokens), batch"
              f" 1, CFG {r['guidance']} (text encoding and VQ decoding "
              "excluded)")
        print(f"    masked, {args.steps} steps: {m['forward_passes']} "
              f"forward passes, {m['positions']} positions, "
              f"{m['seconds']:.3f} s ({m['params'] / 1e6:.2f} M params)")
        print(f"    autoregressive + KV cache: {a['forward_passes']} forward "
              f"passes, {a['positions']} positions, {a['seconds']:.3f} s"
              f"{ext} ({a['params'] / 1e6:.2f} M params, same width/heads/"
              "depth)")
        print(f"    masked decoding needs {r['fewer_passes_pct']:.1f}% fewer "
              f"forward passes; AR takes "
              f"{r['wall_time_ratio_ar_over_masked']:.2f}x the wall time")


def _add_generate(sub) -> None:
    """`bench generate`: latency, memory, masked vs autoregressive."""
    p = sub.add_parser(
        "generate", help="latency, memory, masked vs autoregressive",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--random-weights", action="store_true",
                   help="random-init transformer instead of the shipped one"
                   " (same speed; works before the model exists)")
    p.add_argument("--preset", default="lite",
                   help="transformer preset with --random-weights")
    p.add_argument("--quick", action="store_true",
                   help="batches 1-2, one repeat")
    p.add_argument("--only", default="",
                   help="comma list of parts: image,table,memory,ar")
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--size", type=int, default=128, help="px, part a/c/d")
    p.add_argument("--batches", default="1,2,4,8")
    p.add_argument("--grids", default="8,16,32", help="token grid sides")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--ar-tokens", type=int, default=None,
                   help="time only this many AR tokens and extrapolate")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0)
    p.set_defaults(func=cmd_generate)


def add_parser(sub) -> None:
    """`bench` with its two parts, `transformer` and `generate`."""
    b = sub.add_parser("bench", help="benchmarks: transformer throughput, "
                       "generation latency and memory")
    parts = b.add_subparsers(dest="cmd", required=True)
    t = parts.add_parser("transformer",
                         help="train/infer images per second")
    t.add_argument("--preset", default="lite")
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--text-len", type=int, default=32)
    t.add_argument("--iters", type=int, default=5)
    t.add_argument("--warmup", type=int, default=2)
    t.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    t.add_argument("--device", default="auto")
    t.add_argument("--threads", type=int, default=0)
    t.set_defaults(func=cmd_transformer)
    _add_generate(parts)
