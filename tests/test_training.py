"""The trainer: objective, CFG dropout, NaN guard, resume, DDP."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from meissonic_lite.training import (
    TrainConfig,
    cfg_dropout,
    load_checkpoint,
    masked_ce,
    prepare_batch,
    save_checkpoint,
)
from meissonic_lite.training.checkpoint import LATEST

sys.path.insert(0, str(Path(__file__).parent))
from train_worker import make_trainer  # noqa: E402

WORKER = str(Path(__file__).parent / "train_worker.py")


def _env(**extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", **extra)
    env.pop("MEISSONIC_LITE_DIE_AT_STEP", None)
    env.update(extra)
    return env


def test_loss_falls(tmp_path):
    logs = make_trainer(tmp_path, 40).fit()
    first = sum(l["loss"] for l in logs[:5]) / 5
    last = sum(l["loss"] for l in logs[-5:]) / 5
    assert last < first - 0.5, (first, last)
    assert (tmp_path / "log.jsonl").read_text().count("\n") == 40


def test_masked_ce_ignores_visible_tokens():
    logits = torch.randn(2, 10, 3, 3)
    labels = torch.full((2, 3, 3), -100)
    labels[0, 1, 1], labels[1, 0, 2] = 3, 7
    a = masked_ce(logits, labels)
    logits2 = logits.clone()
    logits2[0, :, 0, 0] += 5.0                     # a visible position
    assert torch.equal(a, masked_ce(logits2, labels))
    logits2[0, :, 1, 1] += torch.arange(10.0)      # a masked position
    assert not torch.equal(a, masked_ce(logits2, labels))


def test_label_smoothing_is_maskgits_mix_over_masked_tokens_only():
    """With smoothing e, each masked token's loss is (1 - e) CE + e times
    the mean of -log p over all codes (MaskGIT trains with e = 0.1)."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 10, 3, 3, generator=g)
    labels = torch.full((2, 3, 3), -100)
    labels[0, 1, 1], labels[1, 0, 2] = 3, 7
    logp = logits.log_softmax(1)
    ce = -(logp[0, 3, 1, 1] + logp[1, 7, 0, 2]) / 2
    uniform = -(logp[0, :, 1, 1].mean() + logp[1, :, 0, 2].mean()) / 2
    got = masked_ce(logits, labels, label_smoothing=0.1)
    assert torch.allclose(got, 0.9 * ce + 0.1 * uniform, atol=1e-6)
    assert torch.equal(masked_ce(logits, labels, label_smoothing=0.0),
                       masked_ce(logits, labels))
    with pytest.raises(ValueError, match="label_smoothing"):
        TrainConfig(label_smoothing=1.0)


def test_cfg_dropout_rate_and_content():
    g = torch.Generator().manual_seed(0)
    states, pooled = torch.randn(20000, 2, 4), torch.randn(20000, 3)
    null = (torch.zeros(1, 2, 4), torch.zeros(1, 3))
    d = cfg_dropout(states, pooled, *null, 0.1, g)
    rate = d.dropped.float().mean().item()
    assert 0.09 < rate < 0.11, rate
    assert torch.all(d.states[d.dropped] == 0)
    assert torch.all(d.pooled[d.dropped] == 0)       # both halves dropped
    assert torch.equal(d.states[~d.dropped], states[~d.dropped])
    assert cfg_dropout(states, pooled, *null, 0.0, g).dropped.sum() == 0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        cfg_dropout(states, pooled, *null, 1.5, g)


def test_prepare_batch_rows_equal_the_global_batch():
    g1, g2 = (torch.Generator().manual_seed(3) for _ in range(2))
    tok = torch.randint(0, 60, (8, 4, 4))
    st, po, mc = torch.randn(8, 3, 5), torch.randn(8, 6), torch.ones(8, 5)
    null = (torch.zeros(1, 3, 5), torch.zeros(1, 6))
    full = prepare_batch(tok, st, po, mc, null, 64, 0.3, g1)
    half = prepare_batch(tok[4:], st[4:], po[4:], mc[4:], null, 64, 0.3,
                         g2, global_batch=8, rows=slice(4, 8))
    assert torch.equal(full.input_ids[4:], half.input_ids)
    assert torch.equal(full.level[4:], half.level)
    assert full.global_masked == half.global_masked


def test_blob_masks_start_at_their_step_and_rows_still_agree():
    from meissonic_lite.training import TrainConfig
    tok = torch.randint(0, 60, (8, 16, 16))
    st, po, mc = torch.randn(8, 3, 5), torch.randn(8, 6), torch.ones(8, 5)
    null = (torch.zeros(1, 3, 5), torch.zeros(1, 6))

    def batch(blob, rows=slice(None), b=slice(None)):
        return prepare_batch(tok[b], st[b], po[b], mc[b], null, 64, 0.0,
                             torch.Generator().manual_seed(3), 8, rows,
                             blob_prob=blob)
    plain, blobs = batch(0.0), batch(1.0)
    assert torch.equal(plain.level, blobs.level)     # same rates
    assert not torch.equal(plain.input_ids, blobs.input_ids)
    half = batch(1.0, slice(4, 8), slice(4, 8))       # a DDP rank's rows
    assert torch.equal(blobs.input_ids[4:], half.input_ids)
    with pytest.raises(ValueError, match="blob_masks"):
        TrainConfig(blob_masks=2.0)


def test_trainer_switches_to_blob_masks_at_blob_start(tmp_path):
    tr = make_trainer(tmp_path, 4)
    tr.cfg.blob_masks, tr.cfg.blob_start = 1.0, 2
    before, after = tr._batch(1), tr._batch(2)
    tr.cfg.blob_masks = 0.0
    assert torch.equal(tr._batch(1).input_ids, before.input_ids)
    assert not torch.equal(tr._batch(2).input_ids, after.input_ids)


def test_nan_guard_skips_then_reloads(tmp_path):
    tr = make_trainer(tmp_path, 12, max_bad_steps=3)
    tr.inject_nan = {5, 6, 7}
    logs = tr.fit()
    assert [l["skipped"] for l in logs[5:8]] == [True, True, True]
    assert logs[7].get("reloaded") and tr.reloads == 1
    assert not logs[8]["skipped"] and tr.step == 12
    assert all(torch.isfinite(p).all() for p in tr.raw.parameters())


def test_nan_guard_restores_last_good_weights(tmp_path):
    ref = make_trainer(tmp_path / "ref", 4)
    ref.fit()                     # the good checkpoint the guard reloads
    tr2 = make_trainer(tmp_path / "b", 6, max_bad_steps=2)
    tr2.inject_nan = {4, 5}
    tr2.fit()
    for a, b in zip(tr2.raw.parameters(), ref.raw.parameters()):
        assert torch.equal(a, b)


def test_kill9_then_resume_matches_uninterrupted(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    subprocess.run([sys.executable, WORKER, str(a), "10"], check=True,
                   env=_env(), capture_output=True)
    r = subprocess.run([sys.executable, WORKER, str(b), "10"],
                       env=_env(MEISSONIC_LITE_DIE_AT_STEP="5"),
                       capture_output=True)
    assert r.returncode == -9                       # really killed
    assert load_checkpoint(b / LATEST)["step"] == 4
    subprocess.run([sys.executable, WORKER, str(b), "10", "--resume"],
                   check=True, env=_env(), capture_output=True)
    sa = torch.load(a / "final_rank0.pt")
    sb = torch.load(b / "final_rank0.pt")
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_two_process_ddp_matches_one_process(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run([sys.executable, WORKER, str(one), "6"], check=True,
                   env=_env(), capture_output=True)
    r = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         "--nproc_per_node", "2", WORKER, str(two), "6"],
        env=_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    s1 = torch.load(one / "final_rank0.pt")
    r0 = torch.load(two / "final_rank0.pt")
    r1 = torch.load(two / "final_rank1.pt")
    for k in s1:
        assert torch.equal(r0[k], r1[k]), k          # ranks agree exactly
        assert torch.allclose(r0[k], s1[k], atol=2e-5, rtol=1e-4), k


def test_resume_with_another_config_is_refused(tmp_path):
    tr = make_trainer(tmp_path, 2)
    tr.fit()
    tr2 = make_trainer(tmp_path, 4)
    tr2.model_config = {"preset": "lite"}
    with pytest.raises(ValueError, match="different model config"):
        tr2.fit(resume=True)


def test_a_config_field_added_later_takes_its_default_on_resume(tmp_path):
    from meissonic_lite.training.checkpoint import check_same_model
    now = {"num_heads": 3, "conv_blocks": 0}
    check_same_model({"num_heads": 3}, now, "x.pt", {"conv_blocks": 0})
    with pytest.raises(ValueError, match="conv_blocks"):
        check_same_model({"num_heads": 3}, {"num_heads": 3,
                                            "conv_blocks": 2},
                         "x.pt", {"conv_blocks": 0})
    with pytest.raises(ValueError, match="different model config"):
        check_same_model({"num_heads": 3}, now, "x.pt")


def test_corrupt_and_missing_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(bad)


def test_failed_save_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / LATEST
    save_checkpoint(path, {"step": 1})

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="previous checkpoint"):
        save_checkpoint(path, {"step": 2})
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == [LATEST]


def test_training_time_adds_up_over_a_resume(tmp_path):
    # The stage manifests report training time; a resumed run must count
    # the steps done before the interruption too.
    first = make_trainer(tmp_path, 3)
    first.fit()
    assert first.train_seconds > 0
    saved = load_checkpoint(tmp_path / LATEST)["train_seconds"]
    assert saved == pytest.approx(first.train_seconds)
    second = make_trainer(tmp_path, 6)
    second.fit(resume=True)
    assert second.step == 6 and second.train_seconds > saved


def test_resume_drops_log_lines_past_the_checkpoint(tmp_path):
    import json
    make_trainer(tmp_path, 5).fit()          # checkpoints at 2, 4 and 5
    ck = load_checkpoint(tmp_path / LATEST)
    ck["step"] = 4                           # as if killed after step 5's log
    save_checkpoint(tmp_path / LATEST, ck)
    make_trainer(tmp_path, 6).fit(resume=True)
    steps = [json.loads(x)["step"] for x in
             (tmp_path / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_text_conditioning_path_learns_a_trivial_mapping(tmp_path):
    """Every token is the code of the colour the caption names: with all
    tokens masked only the prompt can tell them, through the real text
    encoder, CFG dropout and the trainer. A broken conditioning path (the
    released script's inverted dropout, a detached or misaligned text
    batch) leaves this at chance (1/8)."""
    from meissonic_lite.models import text
    from meissonic_lite.models.transformer import (
        MeissonicTransformer,
        TransformerConfig,
    )
    from meissonic_lite.training.stages import FrozenTextCache
    from meissonic_lite.training.trainer import TrainConfig, Trainer
    colours = ("red", "green", "blue", "yellow", "white", "black",
               "purple", "orange")
    micro = torch.tensor([64.0, 64.0, 0.0, 0.0, 9.0])

    class Named(torch.utils.data.Dataset):
        def __len__(self):
            return 512

        def __getitem__(self, i):
            k = i % 8
            return {"tokens": torch.full((8, 8), 3 + 7 * k),
                    "caption": f"a {colours[k]} square.",
                    "micro_conds": micro}

    enc = text.from_pretrained()
    cfg = TransformerConfig.preset("tiny", text_dim=enc.hidden_dim,
                                   pooled_dim=enc.pooled_dim)
    torch.manual_seed(0)
    model = MeissonicTransformer(cfg)
    encode = FrozenTextCache(enc)
    null = tuple(t.detach() for t in enc.null(1))
    Trainer(model, Named(), TrainConfig(steps=80, batch_size=32, lr=1e-3,
                                        warmup=20, ckpt_every=10**9),
            tmp_path, null, encode).fit()
    model.eval()
    states, pooled = encode([f"a {c} square." for c in colours])
    with torch.no_grad():
        logits = model(torch.full((8, 8, 8), cfg.mask_id), states, pooled,
                       micro.expand(8, -1), torch.full((8,), 1000))
    want = torch.tensor([3 + 7 * k for k in range(8)])[:, None, None]
    assert (logits.argmax(1) == want).float().mean() > 0.9


def test_autocast_only_where_the_hardware_has_bf16(monkeypatch):
    """bf16=True means mixed precision where it helps: on a CPU without
    native bf16 (emulated, several times slower) autocast is a no-op."""
    from meissonic_lite import utils
    cpu = torch.device("cpu")
    for native in (False, True):
        monkeypatch.setattr(utils, "cpu_has_native_bf16", lambda n=native: n)
        with utils.autocast(cpu, True):
            y = torch.nn.functional.linear(torch.ones(2, 4), torch.ones(3, 4))
        assert y.dtype == (torch.bfloat16 if native else torch.float32)
        with utils.autocast(cpu, False):
            y = torch.nn.functional.linear(torch.ones(2, 4), torch.ones(3, 4))
        assert y.dtype == torch.float32
