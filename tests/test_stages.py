"""The stage runner, end to end on the shipped VQ and text encoder."""

import json

import pytest
import torch

from meissonic_lite.models.pretrained import load_transformer, save_transformer
from meissonic_lite.models.transformer import MeissonicTransformer
from meissonic_lite.training.stages import (
    STAGES,
    init_from_previous,
    model_config,
    run_stage,
)


def test_stage_ladder_matches_the_paper_shape():
    assert [STAGES[s].grid for s in (1, 2, 3, 4)] == [8, 16, 32, 32]
    assert [STAGES[s].compress for s in (1, 2, 3, 4)] == \
        [False, False, True, True]
    assert STAGES[4].train_text and not STAGES[3].train_text
    assert STAGES[2].caption_style == "long"


def test_stage1_runs_and_writes_weights_and_manifest(tmp_path):
    m = run_stage(1, tmp_path / "runs", tmp_path / "cache", steps=3,
                  n_images=16, batch_size=8)
    out = tmp_path / "runs" / "stage1"
    assert m["steps"] == 3
    assert json.loads((out / "manifest.json").read_text())["steps"] == 3
    model = load_transformer(out / "model.safetensors")
    assert model.config.codebook_size == m["model_config"]["codebook_size"]


def test_compression_layers_are_the_only_new_ones(tmp_path):
    plain = MeissonicTransformer(model_config(STAGES[2], 64, 32, 32))
    save_transformer(plain, tmp_path / "s2.safetensors", torch.float32)
    comp = MeissonicTransformer(model_config(STAGES[3], 64, 32, 32))
    new = init_from_previous(comp, tmp_path / "s2.safetensors")
    assert new and all(k.startswith(("down_block", "up_block"))
                       for k in new)
    wider = MeissonicTransformer(model_config(STAGES[3], 64, 48, 32))
    with pytest.raises(ValueError, match="does not fit"):
        init_from_previous(wider, tmp_path / "s2.safetensors")


def test_four_stages_then_ship(tmp_path):
    """The whole recipe in miniature: every stage initialises from the
    previous one, stage 4 also saves its text encoder, sample grids are
    drawn, and ship() gathers weights, grids and a manifest."""
    from PIL import Image

    from meissonic_lite.training.ship import ship
    runs, caches = tmp_path / "runs", tmp_path / "cache"
    for s in (1, 2, 3, 4):
        m = run_stage(s, runs, caches, steps=2, n_images=8, batch_size=4)
        assert m["samples"]["final"] == "step_00002.png"
        assert (runs / f"stage{s}" / "samples" / "step_00002.png").is_file()
    dest = tmp_path / "weights"
    dest.mkdir()
    man = ship(runs, evaluate=False, dest=dest)
    assert [st["steps"] for st in man["stages"].values()] == [2, 2, 2, 2]
    assert load_transformer(dest / "transformer.safetensors").config.compress
    assert Image.open(dest / "stages" / "stage1.png").width == 4 * 128
    assert json.loads((dest / "transformer.json").read_text())[
        "files"].keys() == {"transformer.safetensors",
                            "text_encoder.safetensors"}
    assert man["previous_models"] == []
    again = ship(runs, evaluate=False, dest=dest)   # a retrain ships over it
    (prev,) = again["previous_models"]
    assert prev["date"] == man["date"] and prev["steps"] == 8
    assert prev["stages"]["3"]["spec"]["compress"]


def test_stale_cache_is_rebuilt(tmp_path, capsys):
    run_stage(1, tmp_path / "runs", tmp_path / "cache", steps=1,
              n_images=8, batch_size=4)
    run_stage(1, tmp_path / "runs2", tmp_path / "cache", steps=1,
              n_images=12, batch_size=4)
    assert "extracting it again" in capsys.readouterr().out
    meta = json.loads((tmp_path / "cache" / "stage1" / "meta.json")
                      .read_text())
    assert meta["count"] == 12


def test_a_stage_can_train_on_a_candidate_tokenizer(tmp_path):
    # --vq: tokens from another VQ (here an untrained patch-local one with
    # 64 codes); the cache, the model's codebook and the manifest follow it
    from meissonic_lite.models.vq import VQConfig, VQModel, save_weights
    torch.manual_seed(0)
    cand = VQModel(VQConfig(num_codes=64, code_dim=4, channels=(8, 8, 8),
                            encoder="patch"))
    save_weights(cand, tmp_path / "cand.safetensors")
    m = run_stage(1, tmp_path / "runs", tmp_path / "cache", steps=1,
                  n_images=8, batch_size=4,
                  vq_path=tmp_path / "cand.safetensors")
    meta = json.loads((tmp_path / "cache" / "stage1" / "meta.json")
                      .read_text())
    assert m["vq"]["tokenizer_sha256"] == meta["tokenizer_sha256"]
    assert m["vq"]["path"].endswith("cand.safetensors")
    assert m["model_config"]["codebook_size"] == 64


def test_ship_takes_the_tokenizer_the_stages_were_trained_on(tmp_path):
    from meissonic_lite.models.vq import (
        DEFAULT_WEIGHTS,
        VQConfig,
        VQModel,
        from_pretrained,
        save_weights,
    )
    from meissonic_lite.training.ship import ship
    torch.manual_seed(0)
    cand = VQModel(VQConfig(num_codes=64, code_dim=4, channels=(8, 8, 8),
                            encoder="patch"))
    src = tmp_path / "cand.safetensors"
    save_weights(cand, src)
    (tmp_path / "cand.json").write_text('{"command": "train-vq ..."}')
    runs, caches = tmp_path / "runs", tmp_path / "cache"
    for s in (1, 2, 3, 4):
        run_stage(s, runs, caches, steps=1, n_images=4, batch_size=2,
                  vq_path=src)
    dest = tmp_path / "weights"
    dest.mkdir()
    with pytest.raises(ValueError, match="pass --vq"):
        ship(runs, evaluate=False, dest=dest)       # package VQ: wrong one
    with pytest.raises(ValueError, match="pass --vq"):
        ship(runs, evaluate=False, dest=dest, vq=DEFAULT_WEIGHTS)
    man = ship(runs, evaluate=False, dest=dest, vq=src)
    shipped = from_pretrained(dest / "vq.safetensors")
    assert shipped.config.encoder == "patch"
    assert (dest / "vq.json").read_text().startswith('{"command"')
    assert man["tokenizer"]["tokenizer_sha256"] == shipped.tokenizer_sha256
    assert ship(runs, evaluate=False, dest=dest)["tokenizer"] == \
        man["tokenizer"]                           # now found in dest


def test_remeasure_keeps_the_old_metrics_and_checks_the_files(tmp_path):
    import hashlib

    from meissonic_lite.training.ship import remeasure
    w = tmp_path / "transformer.safetensors"
    w.write_bytes(b"weights")
    man = {"files": {w.name: hashlib.sha256(b"weights").hexdigest()},
           "date": "then", "final_metrics": {"check": {"overall": 0.5}},
           "measured_with": {"judge_accept_score": None}}
    (tmp_path / "transformer.json").write_text(json.dumps(man))
    got = remeasure(tmp_path, lambda progress: {"check": {"overall": 0.1}},
                    progress=False)
    assert got["final_metrics"] == {"check": {"overall": 0.1}}
    assert got["history"] == [{"final_metrics": {"check": {"overall": 0.5}},
                               "measured_with": {"judge_accept_score": None},
                               "date": "then"}]
    assert got["measured_with"]["judge_accept_score"] > 0
    assert json.loads((tmp_path / "transformer.json").read_text()) == got
    w.write_bytes(b"other weights")
    with pytest.raises(ValueError, match="ship it again"):
        remeasure(tmp_path, lambda progress: {}, progress=False)
