"""The book's transformer computes exactly what the released Meissonic
transformer computes (golden vectors from viiika/Meissonic @ aeba85e)."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from meissonic_lite.models.official import (
    OFFICIAL_BREAKDOWN,
    OFFICIAL_PARAMS,
    from_official_config,
    from_official_state_dict,
    load_official_state_dict,
    official_breakdown,
    to_official_state_dict,
)
from meissonic_lite.models.transformer import (
    MeissonicTransformer,
    TransformerConfig,
)

GOLDEN = Path(__file__).resolve().parent / "golden"


def _load(case):
    cfg = json.loads((GOLDEN / case / "config.json").read_text())
    model = MeissonicTransformer(from_official_config(cfg)).eval()
    weights = load_file(GOLDEN / case / "weights.safetensors")
    io = load_file(GOLDEN / case / "io.safetensors")
    return cfg, model, weights, io


@pytest.mark.parametrize("case", ["tiny_compressed", "tiny_plain"])
def test_golden_logits_match_official(case):
    cfg, model, weights, io = _load(case)
    load_official_state_dict(model, weights)
    ids = io["input_ids"]
    assert tuple(ids.shape[1:]) == tuple(cfg["grid"])
    assert (ids == cfg["vocab_size"] - 1).any()  # a mask token is present
    # our RoPE ids are the ones the official model was given
    h, w = ids.shape[1:]
    if cfg["downsample"]:
        h, w = h // 2, w // 2
    from meissonic_lite.models.layers import rope_ids_2d
    t = io["txt_ids"].shape[0]
    ref_ids = torch.cat([io["txt_ids"], io["img_ids"]])
    assert torch.equal(rope_ids_2d(t, h, w), ref_ids)
    with torch.no_grad():
        out = model(ids, io["encoder_hidden_states"],
                    io["pooled_projections"], io["micro_conds"],
                    io["timestep"] * 1000)  # official t * 1000 = level
    assert out.shape == io["logits"].shape
    err = (out - io["logits"]).abs().max().item()
    assert err < 1e-5, err
    # and the check can fail: a different level changes the logits
    with torch.no_grad():
        out2 = model(ids, io["encoder_hidden_states"],
                     io["pooled_projections"], io["micro_conds"],
                     io["timestep"] * 1000 + 1)
    assert (out2 - io["logits"]).abs().max().item() > 1e-3


@pytest.mark.parametrize("case", ["tiny_compressed", "tiny_plain"])
def test_key_map_round_trip_is_strict(case):
    _, model, weights, _ = _load(case)
    load_official_state_dict(model, weights)
    back = to_official_state_dict(model)
    assert set(back) == set(weights)
    for k, v in weights.items():
        assert torch.equal(back[k], v), k
    extra = dict(weights, **{"foo.weight": torch.zeros(1)})
    with pytest.raises(KeyError, match="unexpected"):
        from_official_state_dict(extra, model)
    missing = dict(weights)
    missing.pop(next(k for k in weights if k.endswith("attn.to_k.weight")))
    with pytest.raises(KeyError, match="missing"):
        from_official_state_dict(missing, model)


def _official_shapes():
    """Every official name and shape, block index expanded (full size)."""
    out = {}
    for line in (GOLDEN / "official-state-dict.tsv").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, shape = line.split("\t")
        shape = tuple(json.loads(shape))
        if "{i}" in name:
            n = 14 if name.startswith("transformer_blocks") else 28
            for i in range(n):
                out[name.replace("{i}", str(i))] = shape
        else:
            out[name] = shape
    return out


def test_paper_preset_has_official_parameter_count():
    with torch.device("meta"):
        model = MeissonicTransformer(TransformerConfig.preset("paper"))
    assert model.num_params() == OFFICIAL_PARAMS == 1_006_946_304
    ours = official_breakdown(model)
    assert ours.pop("other") == 0
    assert ours == OFFICIAL_BREAKDOWN
    shapes = _official_shapes()
    assert len(shapes) == 867
    mapped = to_official_state_dict(model)
    assert {k: tuple(v.shape) for k, v in mapped.items()} == shapes
