"""The text tower without open_clip (chapter 3, issue 26): the same
numbers as open_clip's CLIP (the pipeline's start without it is pinned in
test_architecture)."""

import pytest
import torch

from meissonic_lite.models import text

PROMPTS = ["a red circle", "", "two blue stars above a green square",
           "A small letter Q, left of a white cross."]


@pytest.fixture(scope="module")
def pair():
    return (text.from_pretrained(), text.from_pretrained(text_only=True))


def test_text_only_encodes_as_open_clips_clip(pair):
    import open_clip
    whole, fast = pair
    assert isinstance(whole.clip, open_clip.CLIP)
    assert isinstance(fast.clip, text.TextTower)
    ids = fast.tokenize(PROMPTS)
    assert torch.equal(ids, open_clip.tokenize(PROMPTS))
    assert torch.equal(ids, whole.tokenize(PROMPTS))
    (hw, pw), (hf, pf) = whole.encode(PROMPTS), fast.encode(PROMPTS)
    assert torch.equal(hf, hw) and torch.equal(pf, pw)  # the same ops
    torch.testing.assert_close(pf, whole.clip.encode_text(ids),
                               atol=1e-5, rtol=1e-5)
    n_whole = sum(p.numel() for n, p in whole.clip.named_parameters()
                  if not n.startswith("visual."))
    assert sum(p.numel() for p in fast.clip.parameters()) == n_whole


def test_text_only_refuses_images_and_saving(pair, tmp_path):
    _, fast = pair
    with pytest.raises(ValueError, match="text_only"):
        fast.encode_image(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="text_only"):
        fast.save_pretrained(tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()
