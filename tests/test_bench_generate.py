"""Generation benchmarks in a tiny configuration, and the AR baseline's
KV cache checked against a no-cache recompute (correctness, not speed)."""

import pytest
import torch
from stand_ins import tiny_pipeline

from meissonic_lite.bench import generate as bg
from meissonic_lite.bench.ar_baseline import ARConfig, CausalImageTransformer
from meissonic_lite.models.transformer import TransformerConfig


class FakeText(torch.nn.Module):
    """Deterministic text encoder stand-in (32-wide states and pooled)."""

    def encode(self, prompts):
        prompts = [prompts] if isinstance(prompts, str) else prompts
        g = torch.Generator().manual_seed(len(prompts[0]))
        return (torch.randn(len(prompts), 5, 32, generator=g),
                torch.randn(len(prompts), 32, generator=g))

    def null(self, b=1):
        return torch.zeros(b, 5, 32), torch.zeros(b, 32)


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(FakeText())


def test_time_image_breakdown(pipe):
    r = bg.time_image(pipe, batch=2, steps=3, size=16, repeats=1)
    assert (r["batch"], r["steps"], r["grid"]) == (2, 3, (4, 4))
    assert len(r["step_s"]) == 3
    parts = r["text_s"] + r["loop_s"] + r["vq_s"]
    assert all(r[k] > 0 for k in ("text_s", "loop_s", "vq_s"))
    assert parts <= r["total_s"] + 1e-6
    assert r["per_step_s"] == pytest.approx(r["loop_s"] / 3)
    assert sum(r["step_s"]) == pytest.approx(r["loop_s"])
    # the timing wrappers are gone again
    assert "encode" not in vars(pipe.text_encoder)
    assert "decode" not in vars(pipe.vq)


def test_batch_grid_rows_and_stand_in_models(pipe):
    rows = bg.bench_batch_grid(pipe, (1, 2), (4, 8), steps=2,
                               compress_from=8, repeats=1)
    assert [(r["grid"], r["batch"]) for r in rows] == \
        [(4, 1), (4, 2), (8, 1), (8, 2)]
    assert [r["compress"] for r in rows] == [False, False, True, True]
    assert rows[0]["model"] == "as loaded"
    assert rows[2]["model"].startswith("random init")
    assert all(r["per_step_s"] > 0 and r["image_s"] > 0 for r in rows)
    assert rows[0]["size_px"] == 16


def test_memory_in_process(pipe):
    r = bg._measure_memory(pipe, 2, 16, 2)
    assert r["peak_mb"] >= r["baseline_mb"] > 0
    assert r["delta_mb"] == pytest.approx(r["peak_mb"] - r["baseline_mb"])


def test_memory_in_fresh_subprocess():
    rows = bg.peak_memory((1,), size=16, steps=1, random_weights=True,
                          preset="tiny", device="cpu")
    assert len(rows) == 1 and rows[0]["batch"] == 1
    assert rows[0]["peak_mb"] >= rows[0]["baseline_mb"] > 0


def test_ar_vs_masked_counts(pipe):
    r = bg.bench_ar_vs_masked(pipe.transformer, grid=4, steps=2,
                              text_len=8)
    m, a = r["masked"], r["ar"]
    assert (m["forward_passes"], a["forward_passes"]) == (2, 16)
    assert m["positions"] == 2 * 2 * (16 + 8)      # steps x CFG x (img+txt)
    assert a["positions"] == 2 * (8 + 1) + 2 * 15  # prefill, then 1 each
    assert r["fewer_passes_pct"] == pytest.approx(87.5)
    assert not a["extrapolated"] and m["seconds"] > 0 and a["seconds"] > 0
    r = bg.bench_ar_vs_masked(pipe.transformer, grid=4, steps=2,
                              text_len=8, ar_tokens=4)
    assert r["ar"]["extrapolated"] and r["ar"]["forward_passes"] == 16


def test_ar_kv_cache_matches_full_recompute():
    torch.manual_seed(0)
    cfg = ARConfig(codebook_size=64, dim=64, num_heads=2, num_layers=2,
                   text_dim=32, max_text=8, max_tokens=20)
    m = CausalImageTransformer(cfg).eval()
    text = torch.randn(2, 6, 32)
    toks, cached = m.generate(text, 20, generator=torch.Generator()
                              .manual_seed(0), return_logits=True)
    assert toks.shape == (2, 20) and cached.shape == (2, 20, 64)
    with torch.no_grad():
        full = m.full_logits(text, toks[:, :-1])    # (2, 20, 64)
    assert (full - cached).abs().max() < 1e-4
    # and the sampled tokens did follow those logits (not garbage ids)
    assert int(toks.min()) >= 0 and int(toks.max()) < 64


def test_ar_config_mirrors_the_masked_model():
    c = TransformerConfig.preset("lite")
    a = ARConfig.like(c, 1024)
    assert (a.dim, a.num_heads, a.num_layers, a.codebook_size) == \
        (c.dim, c.num_heads, c.num_dual + c.num_single, c.codebook_size)


def test_best_seconds_waits_for_cuda_around_each_call(monkeypatch):
    """GPU timings must synchronise: the clock is read after the device
    has finished, around every timed call (a CPU needs no wait)."""
    import torch

    from meissonic_lite import utils
    calls, synced = [], []
    monkeypatch.setattr(torch.cuda, "synchronize",
                        lambda device=None: synced.append(device))
    t = utils.best_seconds(lambda: calls.append(1), repeats=3,
                           device="cuda", warmup=2)
    assert len(calls) == 5 and t >= 0.0
    assert len(synced) == 6                  # before and after each of 3
    synced.clear()
    utils.best_seconds(lambda: None, repeats=2, device="cpu")
    assert synced == []
