"""Offline token extraction: contents, validation, clear errors."""

import json

import pytest
import torch

from meissonic_lite.models.vq import (
    VQConfig,
    VQModel,
    from_pretrained,
    save_weights,
)
from meissonic_lite.training import token_cache as tc
from meissonic_lite.world.dataset import make_example, to_tensor


@pytest.fixture(scope="module")
def vq(tmp_path_factory):
    torch.manual_seed(0)
    m = VQModel(VQConfig(num_codes=32, code_dim=4, channels=(8, 8, 8)))
    p = tmp_path_factory.mktemp("w") / "vq.safetensors"
    save_weights(m, p, torch.float32)
    return from_pretrained(p)


@pytest.fixture(scope="module")
def cache(vq, tmp_path_factory):
    out = tmp_path_factory.mktemp("c") / "stage1"
    meta = tc.extract(out, 1, 12, seed=5, vq=vq, batch=5, progress=False)
    return out, meta


def test_cache_matches_dataset(vq, cache):
    out, meta = cache
    ds = tc.load_cache(out, vq)
    assert len(ds) == 12 and meta["grid"] == 8 and meta["size"] == 32
    assert meta["vq_sha256"] == vq.weights_sha256
    assert meta["tokenizer_sha256"] == vq.tokenizer_sha256
    assert ds.tokens.dtype == torch.uint16
    for i in (0, 7, 11):
        ex = make_example(5, i, 32, "mixed", 0.3, True)
        item = ds[i]
        assert item["caption"] == ex.caption
        assert torch.allclose(item["micro_conds"],
                              torch.tensor(ex.micro_conds))
        want = vq.encode(to_tensor(ex.image)[None])[0]
        assert torch.equal(item["tokens"], want)
        assert item["tokens"].dtype == torch.long


def test_missing_cache(tmp_path):
    with pytest.raises(FileNotFoundError, match="meissonic-lite extract"):
        tc.load_cache(tmp_path / "nothing")


def test_corrupt_cache(cache, tmp_path):
    out, _ = cache
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "meta.json").write_text((out / "meta.json").read_text())
    (bad / "captions.json").write_text((out / "captions.json")
                                       .read_text())
    (bad / "tokens.safetensors").write_bytes(b"\x01\x02not a file")
    with pytest.raises(ValueError, match="corrupt.*extract"):
        tc.load_cache(bad)


def test_inconsistent_cache(cache, tmp_path):
    out, _ = cache
    bad = tmp_path / "short"
    bad.mkdir()
    for f in ("meta.json", "tokens.safetensors"):
        (bad / f).write_bytes((out / f).read_bytes())
    caps = json.loads((out / "captions.json").read_text())[:5]
    (bad / "captions.json").write_text(json.dumps(caps))
    with pytest.raises(ValueError, match="inconsistent"):
        tc.load_cache(bad)


def test_other_weights_rejected(cache):
    out, _ = cache
    with pytest.raises(ValueError, match="another VQ encoder"):
        tc.TokenCache(out, tokenizer_sha256="0" * 64)


def test_bad_arguments(vq, tmp_path):
    with pytest.raises(ValueError, match="stage"):
        tc.extract(tmp_path / "x", 5, 4, vq=vq, progress=False)
    with pytest.raises(ValueError, match="inside the package"):
        tc.extract(tc.PACKAGE_DIR / "cache", 1, 4, vq=vq, progress=False)


def test_cache_identity_ignores_the_decoder():
    """A decoder fine-tune changes pictures, not tokens: caches stay valid;
    any change to the encoder or codebook invalidates them."""
    vq = VQModel(VQConfig(factor=4, num_codes=16, code_dim=4,
                          channels=(8, 8, 8)))
    before = vq.tokenizer_sha256
    with torch.no_grad():
        next(vq.decoder.parameters()).add_(1.0)
    assert vq.tokenizer_sha256 == before
    with torch.no_grad():
        vq.quantizer.codebook[0] += 1.0
    assert vq.tokenizer_sha256 != before
