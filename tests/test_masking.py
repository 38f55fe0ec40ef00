"""Tests for meissonic_lite.sampling.masking (MUSE / Meissonic masking)."""

import itertools
import math

import pytest
import torch

from meissonic_lite.sampling.masking import (
    SCHEDULES,
    arccos_density,
    mask_rate_level,
    mask_ratio,
    mask_tokens,
    masked_count_after_step,
    sample_mask_rate,
    tokens_revealed_per_step,
)


def test_mask_rate_follows_arccos_density():
    g = torch.Generator().manual_seed(0)
    r = sample_mask_rate(200_000, g)
    assert r.min() >= 0 and r.max() <= 1
    assert abs(r.mean().item() - 2 / math.pi) < 0.005  # mean 2/pi
    hist = torch.histc(r, bins=10, min=0, max=1) / r.numel()
    edges = torch.linspace(0, 1, 11, dtype=torch.float64)
    cdf = 2 / math.pi * torch.asin(edges)  # integral of the density
    expected = cdf[1:] - cdf[:-1]
    assert torch.allclose(hist.double(), expected, atol=0.004)
    # the density integrates to 1 (midpoint rule away from r = 1)
    x = torch.linspace(0, 0.999, 100_001, dtype=torch.float64)
    mass = torch.trapz(arccos_density(x), x).item()
    assert abs(mass - 2 / math.pi * math.asin(0.999)) < 1e-3


def test_mask_tokens_exact_count_and_labels():
    g = torch.Generator().manual_seed(1)
    tok = torch.randint(0, 64, (5, 6, 7), generator=g)
    rate = torch.tensor([0.0, 0.1, 0.5, 0.73, 1.0])
    m = mask_tokens(tok, g, mask_id=64, rate=rate)
    n = m.mask.flatten(1).sum(1)
    want = torch.round(rate.double() * 42).long().clamp(min=1)
    assert torch.equal(n, want)  # exactly round(L r), at least 1
    assert torch.equal(m.input_ids == 64, m.mask)
    assert torch.equal(m.input_ids[~m.mask], tok[~m.mask])
    assert torch.equal(m.labels[m.mask], tok[m.mask])
    assert (m.labels[~m.mask] == -100).all()
    assert torch.equal(m.level, mask_rate_level(want.double() / 42))


def test_mask_tokens_uniform_positions_and_generator():
    tok = torch.zeros(4000, 16, dtype=torch.long)
    m = mask_tokens(tok, torch.Generator().manual_seed(2), 99,
                    rate=torch.full((4000,), 0.25))
    freq = m.mask.float().mean(0)  # each position masked ~25% of the time
    assert (freq - 0.25).abs().max() < 0.03
    a = mask_tokens(tok[:8], torch.Generator().manual_seed(3), 99)
    b = mask_tokens(tok[:8], torch.Generator().manual_seed(3), 99)
    assert torch.equal(a.input_ids, b.input_ids)


def _neighbours_masked(mask):
    """Share of masked tokens whose right neighbour is masked too."""
    both = mask[:, :, 1:] & mask[:, :, :-1]
    return float(both.sum() / mask[:, :, :-1].sum())


def test_blob_masks_hide_connected_regions_with_the_same_count():
    tok = torch.zeros(200, 32, 32, dtype=torch.long)
    rate = torch.full((200,), 0.25)
    uni = mask_tokens(tok, torch.Generator().manual_seed(4), 99, rate=rate)
    blob = mask_tokens(tok, torch.Generator().manual_seed(4), 99, rate=rate,
                       blob_prob=1.0)
    assert torch.equal(blob.mask.flatten(1).sum(1), uni.mask.flatten(1).sum(1))
    assert torch.equal(blob.level, uni.level)
    # uniform: a neighbour is masked ~25% of the time; blobs: nearly always
    assert abs(_neighbours_masked(uni.mask) - 0.25) < 0.03
    assert _neighbours_masked(blob.mask) > 0.85
    # blob_prob 0 draws exactly the old stream; 0.5 mixes per sample
    same = mask_tokens(tok, torch.Generator().manual_seed(4), 99, rate=rate,
                       blob_prob=0.0)
    assert torch.equal(same.mask, uni.mask)
    half = mask_tokens(tok, torch.Generator().manual_seed(5), 99, rate=rate,
                       blob_prob=0.5)
    per = [(_neighbours_masked(m[None]) > 0.6) for m in half.mask]
    assert 70 < sum(per) < 130
    with pytest.raises(ValueError, match="blob_prob"):
        mask_tokens(tok[:2], None, 99, blob_prob=1.5)
    with pytest.raises(ValueError, match="B, H, W"):
        mask_tokens(torch.zeros(2, 16, dtype=torch.long), None, 99,
                    blob_prob=0.5)


def test_level_scale_and_errors():
    assert mask_rate_level(0.37).item() == 370
    assert mask_rate_level(torch.tensor([0.0, 1.0])).tolist() == [0, 1000]
    with pytest.raises(ValueError):
        mask_rate_level(1.5)
    with pytest.raises(TypeError):
        mask_tokens(torch.zeros(2, 4), None, 9)


def test_training_and_sampling_feed_same_level():
    """A canvas with k of L tokens masked gets the same level whether it
    comes from training (mask_tokens) or from the sampler's schedule."""
    L, steps = 256, 16
    masked = L
    for i in range(steps - 1):
        masked = masked_count_after_step(i, steps, L, masked)
        sampler_level = mask_rate_level(masked / L)
        tok = torch.zeros(1, 16, 16, dtype=torch.long)
        m = mask_tokens(tok, torch.Generator().manual_seed(i), 300,
                        rate=torch.tensor([masked / L]))
        assert int(m.mask.sum()) == masked
        assert torch.equal(m.level, sampler_level.reshape(1))
        assert 0 <= int(sampler_level) <= 1000


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
@pytest.mark.parametrize("L,steps", [(64, 8), (256, 16), (4096, 48),
                                     (1024, 64), (5, 12), (1, 3)])
def test_tokens_revealed_per_step(schedule, L, steps):
    rev = tokens_revealed_per_step(L, steps, schedule)
    assert len(rev) == steps and sum(rev) == L
    assert all(r >= 0 for r in rev)
    assert mask_ratio(0, schedule) == 1
    assert abs(mask_ratio(1, schedule)) < 1e-12
    ts = [k / 100 for k in range(101)]
    vals = [mask_ratio(t, schedule) for t in ts]
    assert all(a >= b for a, b in itertools.pairwise(vals))  # never re-masks


def test_tokens_revealed_matches_spec_table():
    # spec 2.2: L = 4096, N = 48 starts 3, 6, 11, 16, 19; N = 64: 2, 3, 7, 8
    assert tokens_revealed_per_step(4096, 48)[:5] == [3, 6, 11, 16, 19]
    assert tokens_revealed_per_step(4096, 64)[:4] == [2, 3, 7, 8]
    # linear reveals L/N per step
    assert tokens_revealed_per_step(256, 8, "linear") == [32] * 8
    with pytest.raises(ValueError):
        mask_ratio(0.5, "nope")
