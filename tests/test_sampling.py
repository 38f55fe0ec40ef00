"""The sampler: schedule, determinism, CFG, known tokens, bad input."""

import pytest
import torch

from meissonic_lite.models.transformer import (
    MeissonicTransformer,
    TransformerConfig,
)
from meissonic_lite.sampling import SamplerConfig, decode
from meissonic_lite.sampling.masking import (
    mask_rate_level,
    tokens_revealed_per_step,
)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = MeissonicTransformer(TransformerConfig.preset("tiny")).eval()
    for p in m.parameters():            # leave AdaLN-Zero's identity
        p.data.add_(0.05 * torch.randn_like(p))
    return m


def _inputs(model, b=2):
    c = model.config
    g = torch.Generator().manual_seed(1)
    cond = (torch.randn(b, 3, c.text_dim, generator=g),
            torch.randn(b, c.pooled_dim, generator=g))
    uncond = (torch.zeros(1, 3, c.text_dim), torch.zeros(1, c.pooled_dim))
    micro = torch.tensor([[64., 64., 0., 0., 6.]] * b)
    return cond, uncond, micro


def test_every_token_decoded_on_schedule(model):
    cond, uncond, micro = _inputs(model)
    counts = []

    def cb(i, tokens, conf):
        counts.append(int((tokens == model.config.mask_id).sum()) // 2)
    out = decode(model, cond, uncond, micro, (4, 6),
                 SamplerConfig(steps=6), torch.Generator().manual_seed(0),
                 callback=cb)
    assert out.shape == (2, 4, 6)
    assert (out != model.config.mask_id).all()
    assert out.max() < model.config.codebook_size
    revealed = [24 - counts[0]] + [a - b for a, b in zip(counts, counts[1:])]
    assert revealed == tokens_revealed_per_step(24, 6)


def test_deterministic_under_a_generator(model):
    cond, uncond, micro = _inputs(model)
    run = lambda s: decode(model, cond, uncond, micro, (4, 4),  # noqa
                           SamplerConfig(steps=4),
                           torch.Generator().manual_seed(s))
    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))


def test_known_tokens_are_never_changed(model):
    cond, uncond, micro = _inputs(model)
    mid = model.config.mask_id
    init = torch.randint(0, 64, (2, 4, 4))
    init[:, 1:3, 1:3] = mid
    keep = init != mid
    seen = []
    out = decode(model, cond, uncond, micro, (4, 4),
                 SamplerConfig(steps=3), torch.Generator().manual_seed(0),
                 init_tokens=init,
                 callback=lambda i, t, c: seen.append(t.clone()))
    for t in seen + [out]:
        assert torch.equal(t[keep], init[keep])
    assert (out != mid).all()


def test_guidance_changes_the_result(model):
    cond, uncond, micro = _inputs(model)
    a = decode(model, cond, uncond, micro, (4, 4),
               SamplerConfig(steps=4, guidance_scale=1.0),
               torch.Generator().manual_seed(0))
    b = decode(model, cond, uncond, micro, (4, 4),
               SamplerConfig(steps=4, guidance_scale=5.0),
               torch.Generator().manual_seed(0))
    assert not torch.equal(a, b)


def test_linear_guidance_ramps_from_one_to_the_scale(model):
    cfg = SamplerConfig(steps=5, guidance_scale=5.0,
                        guidance_schedule="linear")
    assert [cfg.guidance_at(i) for i in range(5)] == [1, 2, 3, 4, 5]
    assert SamplerConfig(steps=5, guidance_scale=5.0).guidance_at(0) == 5
    cond, uncond, micro = _inputs(model)

    def first_confidence(c):            # the ramp reaches the logits
        got = []
        decode(model, cond, uncond, micro, (4, 6), c,
               torch.Generator().manual_seed(0),
               callback=lambda i, t, conf: got.append(conf.clone()))
        return got[0]
    ramp = first_confidence(cfg)
    plain = first_confidence(SamplerConfig(steps=5, guidance_scale=1.0))
    full = first_confidence(SamplerConfig(steps=5, guidance_scale=5.0))
    assert torch.allclose(ramp, plain, atol=1e-4)
    assert not torch.allclose(ramp, full, atol=1e-2)


def _neighbour_agreement(masked: torch.Tensor) -> float:
    """Share of 4-neighbour pairs that are both masked or both visible."""
    m = masked.float()
    pairs = torch.cat([(m[:, 1:] == m[:, :-1]).flatten(),
                       (m[:, :, 1:] == m[:, :, :-1]).flatten()])
    return pairs.float().mean().item()


def test_blob_noise_leaves_connected_regions_masked(model):
    cond, uncond, micro = _inputs(model)
    mid = model.config.mask_id

    def masked_after_first_half(blob):
        got = []
        decode(model, cond, uncond, micro, (16, 16),
               SamplerConfig(steps=8, blob_noise=blob),
               torch.Generator().manual_seed(0),
               callback=lambda i, t, c: got.append(t == mid))
        return got[3]                    # about half the canvas open
    iid, blob = masked_after_first_half(0.0), masked_after_first_half(10.0)
    assert iid.sum() == blob.sum()       # same schedule, other positions
    assert _neighbour_agreement(blob) > 0.85
    assert _neighbour_agreement(iid) < 0.7


def test_blob_noise_changes_the_order_only_when_on(model):
    cond, uncond, micro = _inputs(model)

    def run(c):
        return decode(model, cond, uncond, micro, (4, 4), c,
                      torch.Generator().manual_seed(0))
    assert torch.equal(run(SamplerConfig(steps=4)),
                       run(SamplerConfig(steps=4, blob_noise=0.0)))
    assert not torch.equal(run(SamplerConfig(steps=4)),
                           run(SamplerConfig(steps=4, blob_noise=5.0)))


@pytest.mark.parametrize("kw,match", [
    (dict(steps=0), "steps"), (dict(guidance_scale=-1.0), "guidance"),
    (dict(token_temperature=0.0), "temperature"), (dict(top_k=0), "top_k"),
    (dict(guidance_schedule="cosine"), "guidance_schedule"),
    (dict(blob_noise=-1.0), "blob_noise"), (dict(order="spiral"), "order"),
])
def test_bad_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        SamplerConfig(**kw)


def test_low_token_temperature_draws_the_most_likely_token(model):
    """One step from a blank grid with no reveal noise: each revealed token
    is drawn from the logits / T, so a small T gives the argmax and T = 1
    gives draws that sometimes differ from it."""
    cond, uncond, micro = _inputs(model)
    mid = model.config.mask_id
    level = mask_rate_level(torch.ones(2))
    with torch.no_grad():
        logits = model(torch.full((2, 4, 4), mid), cond[0], cond[1],
                       micro, level)
    best = logits.argmax(1)                               # (2, 4, 4)

    def draw(t, seed):
        cfg = SamplerConfig(steps=1, guidance_scale=1.0,
                            gumbel_temperature=(0.0, 0.0),
                            token_temperature=t)
        return decode(model, cond, None, micro, (4, 4), cfg,
                      torch.Generator().manual_seed(seed))
    assert all(torch.equal(draw(1e-3, s), best) for s in range(3))
    assert any(not torch.equal(draw(1.0, s), best) for s in range(3))


def test_halton_ranks_cover_the_grid_and_spread_out():
    from meissonic_lite.sampling.masking import halton_ranks
    r = halton_ranks(8, 8)
    assert sorted(r.flatten().tolist()) == list(range(64))
    first8 = [divmod(int(p), 8) for p in r.flatten().argsort()[:8]]
    assert len({y for y, _ in first8}) == 8     # every row once ...
    assert len({x for _, x in first8}) == 8     # ... and every column
    assert halton_ranks(3, 5).shape == (3, 5)


@pytest.mark.parametrize("order", ["random", "halton"])
def test_other_orders_decode_on_schedule_and_keep_known_tokens(model,
                                                                order):
    cond, uncond, micro = _inputs(model)
    mid = model.config.mask_id
    init = torch.randint(0, 64, (2, 4, 6))
    init[:, 1:3, 1:4] = mid
    keep = init != mid
    counts, seen = [], []

    def cb(i, tokens, conf):
        counts.append(int((tokens == mid).sum()) // 2)
        seen.append(tokens.clone())
    out = decode(model, cond, uncond, micro, (4, 6),
                 SamplerConfig(steps=3, order=order),
                 torch.Generator().manual_seed(0), init_tokens=init,
                 callback=cb)
    assert (out != mid).all()
    for t in seen:
        assert torch.equal(t[keep], init[keep])
    revealed = [6 - counts[0]] + [a - b for a, b in zip(counts, counts[1:])]
    full = decode(model, cond, uncond, micro, (4, 6),
                  SamplerConfig(steps=6, order=order),
                  torch.Generator().manual_seed(0))
    assert (full != mid).all() and sum(revealed) == 6
    if order == "halton":  # the same positions whatever the prompt
        first = []
        decode(model, cond, uncond, micro, (4, 6),
               SamplerConfig(steps=6, order=order),
               torch.Generator().manual_seed(5),
               callback=lambda i, t, c: first.append(t == mid))
        assert torch.equal(first[0][0], first[0][1])
