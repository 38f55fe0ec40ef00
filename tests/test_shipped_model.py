"""The shipped text-to-image model: it loads by default, its files are
the ones the manifest describes, and it still reaches the manifest's
GenEval-lite score on the manifest's re-check slice."""

import hashlib
import json

import pytest
import torch

from meissonic_lite.sampling.pipeline import (
    DEFAULT_GUIDANCE_SCHEDULE,
    MeissonicLitePipeline,
)
from meissonic_lite.training.ship import MANIFEST, WEIGHTS_DIR


@pytest.fixture(scope="module")
def manifest():
    return json.loads(MANIFEST.read_text())


@pytest.fixture(scope="module")
def pipe():
    return MeissonicLitePipeline.from_pretrained(device="cpu")


def test_files_match_the_manifest(manifest):
    for name, sha in manifest["files"].items():
        data = (WEIGHTS_DIR / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == sha, name
    assert manifest["wall_time_s"] <= 150 * 60     # the recipe's budget
    for s in ("1", "2", "3", "4"):
        assert (WEIGHTS_DIR / manifest["stages"][s]["sample_grid"]).is_file()


def test_loads_by_default_and_is_the_stage4_model(pipe, manifest):
    cfg = pipe.transformer.config
    mc = manifest["model_config"]
    assert cfg.compress == mc["compress"] is True
    assert (cfg.num_heads, cfg.head_dim, cfg.num_dual, cfg.num_single) == \
        (mc["num_heads"], mc["head_dim"], mc["num_dual"], mc["num_single"])
    assert pipe.multiple == 8
    img = pipe("a photo of a red circle",
               generator=torch.Generator().manual_seed(0))[0]
    assert img.size == (128, 128)


def test_reaches_the_manifest_geneval_check(pipe, manifest):
    from meissonic_lite.evaluation.t2i_eval import evaluate_geneval
    fm = manifest["final_metrics"]
    check, sampler = fm["check"], fm["sampler"]
    # evaluate_geneval samples with the pipeline's guidance schedule
    assert sampler.get("guidance_schedule", "constant") == \
        DEFAULT_GUIDANCE_SCHEDULE, "re-measure: the default schedule moved"
    got = evaluate_geneval(pipe, sampler["num_inference_steps"],
                           sampler["guidance_scale"], check["seed"],
                           check["limit"], progress=False)
    assert got["n"] == check["n"]
    # same seeds and batches: equal on this CPU; other hardware may round
    # a few logits differently, so allow a small margin
    assert got["overall"] >= check["overall"] - 0.05, (got, check)
