"""The pipeline with small stand-in models (no shipped weights needed)."""

import pytest
import torch
from stand_ins import tiny_pipeline

from meissonic_lite.models.pretrained import load_transformer, save_transformer
from meissonic_lite.models.transformer import (
    MeissonicTransformer,
    TransformerConfig,
)


class FakeText(torch.nn.Module):
    """Hash-free deterministic text encoder stand-in."""

    def __init__(self, d=32, e=32):
        super().__init__()
        self.d, self.e = d, e

    def encode(self, prompts):
        prompts = [prompts] if isinstance(prompts, str) else prompts
        g = torch.Generator().manual_seed(len(prompts[0]))
        return (torch.randn(len(prompts), 3, self.d, generator=g),
                torch.randn(len(prompts), self.e, generator=g))

    def null(self, b=1):
        return torch.zeros(b, 3, self.d), torch.zeros(b, self.e)


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(FakeText())


def test_generates_pil_images(pipe):
    imgs = pipe(["a red circle", "two stars"], num_inference_steps=3,
                height=32, width=48, num_images_per_prompt=2,
                generator=torch.Generator().manual_seed(0))
    assert len(imgs) == 4 and imgs[0].size == (48, 32)


def test_same_seed_same_image(pipe):
    run = lambda s: pipe("x", num_inference_steps=3, height=16,  # noqa
                         width=16, generator=torch.Generator()
                         .manual_seed(s), output_type="pt")
    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


@pytest.mark.parametrize("kw,match", [
    (dict(prompt=3), "prompt"),
    (dict(prompt=[]), "prompt"),
    (dict(height=30), "multiple of 4"),
    (dict(num_inference_steps=0), "steps"),
    (dict(guidance_scale=-1.0), "guidance"),
    (dict(token_temperature=0.0), "token_temperature"),
    (dict(num_images_per_prompt=10**6), "GiB"),
    (dict(negative_prompt=["a", "b"]), "negative_prompt"),
])
def test_bad_input_fails_before_work(pipe, kw, match):
    args = dict(prompt="a circle", height=16, width=16)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        pipe(**args)


def test_empty_prompt_is_valid(pipe):
    assert len(pipe("", num_inference_steps=2, height=16, width=16)) == 1


def test_transformer_weights_round_trip(tmp_path):
    tr = MeissonicTransformer(TransformerConfig.preset("tiny"))
    save_transformer(tr, tmp_path / "t.safetensors", torch.float32)
    back = load_transformer(tmp_path / "t.safetensors")
    for (k, a), (_, b) in zip(tr.state_dict().items(),
                              back.state_dict().items()):
        assert torch.equal(a, b), k
    with pytest.raises(FileNotFoundError, match="Rebuild"):
        load_transformer(tmp_path / "missing.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"junk")
    with pytest.raises(ValueError, match="corrupt"):
        load_transformer(tmp_path / "bad.safetensors")
