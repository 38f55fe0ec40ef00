"""The stage runner, end to end on the shipped VQ and text encoder."""

import json

import pytest
import torch

from meissonic_lite.training.stages import (STAGES, init_from_previous,
                                            model_config, run_stage)
from meissonic_lite.pretrained import load_transformer, save_transformer
from meissonic_lite.transformer import MeissonicTransformer


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
