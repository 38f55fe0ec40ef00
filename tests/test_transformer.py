"""Tests for the Meissonic transformer (layers.py, transformer.py)."""

import pytest
import torch

from meissonic_lite.models.layers import (
    DualStreamBlock,
    SingleStreamBlock,
    apply_rope,
    rope_cos_sin,
    rope_ids_1d,
    rope_ids_2d,
    sinusoid,
)
from meissonic_lite.models.transformer import (
    MeissonicTransformer,
    TransformerConfig,
)


def _inputs(cfg, b=2, h=4, w=6, t=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    tok = torch.randint(0, cfg.vocab_size, (b, h, w), generator=g)
    tok[:, 0, 0] = cfg.mask_id
    text = torch.randn(b, t, cfg.text_dim, generator=g)
    pooled = torch.randn(b, cfg.pooled_dim, generator=g)
    micro = torch.tensor([[64.0, 96.0, 0.0, 8.0, 6.0]]).repeat(b, 1)
    level = torch.randint(0, 1001, (b,), generator=g)
    return tok, text, pooled, micro, level


def _model(**kw):
    torch.manual_seed(0)
    model = MeissonicTransformer(TransformerConfig.preset("tiny", **kw))
    with torch.no_grad():  # leave AdaLN-Zero init: every path matters
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def test_tiny_is_small():
    assert MeissonicTransformer(
        TransformerConfig.preset("tiny")).num_params() < 1_000_000


def _rot(x, ids, axes):
    cos, sin = rope_cos_sin(ids, axes)
    return apply_rope(x[None, :, None], cos[:, None], sin[:, None])[0, :, 0]


def test_rope_1d_depends_only_on_offset():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 32, generator=g, dtype=torch.float64).float()
    pos = torch.tensor([[3.0], [10.0], [40.0], [47.0]])
    rq = _rot(q.expand(4, -1), pos, (32,))
    rk = _rot(k.expand(4, -1), pos, (32,))
    d1 = rq[0] @ rk[1]  # offset 7
    d2 = rq[2] @ rk[3]  # offset 7, shifted by 37
    d3 = rq[0] @ rk[3]  # offset 44
    assert torch.allclose(d1, d2, atol=1e-4)
    assert not torch.allclose(d1, d3, atol=1e-2)
    assert torch.allclose(rq.norm(dim=-1), q.norm().expand(4), atol=1e-5)


def test_rope_2d_depends_only_on_2d_offset_and_text_is_unrotated():
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(2, 32, generator=g)
    axes = (4, 14, 14)
    ids = torch.tensor([[0, 1, 2], [0, 3, 7], [0, 6, 4], [0, 8, 9],
                        [0, 3, 2], [0, 1, 7]], dtype=torch.float32)
    rq, rk = _rot(q.expand(6, -1), ids, axes), _rot(k.expand(6, -1), ids,
                                                     axes)
    # (1,2)->(3,7) and (6,4)->(8,9) share offset (2,5)
    assert torch.allclose(rq[0] @ rk[1], rq[2] @ rk[3], atol=1e-4)
    # offsets (2,0) and (0,5) differ from (2,5): both axes matter
    assert not torch.allclose(rq[0] @ rk[1], rq[0] @ rk[4], atol=1e-2)
    assert not torch.allclose(rq[0] @ rk[1], rq[0] @ rk[5], atol=1e-2)
    ids_all = rope_ids_2d(3, 2, 3)
    assert torch.equal(ids_all[:3], torch.zeros(3, 3))
    assert ids_all[3:].tolist() == [[0, r, c] for r in range(2)
                                    for c in range(3)]
    x = torch.randn(3, 32, generator=g)
    assert torch.equal(_rot(x, ids_all[:3], axes), x)  # text: identity
    assert rope_ids_1d(3, 2, 3)[:, 0].tolist() == list(range(9))


def test_adaln_zero_blocks_are_identity_at_init():
    torch.manual_seed(0)
    x, c, temb = torch.randn(2, 7, 64), torch.randn(2, 3, 64), torch.randn(
        2, 64)
    cos, sin = rope_cos_sin(rope_ids_2d(3, 1, 7), (4, 14, 14))
    rope = (cos[:, None], sin[:, None])
    dual, single = DualStreamBlock(64, 2), SingleStreamBlock(64, 2)
    x2, c2 = dual(x, c, torch.nn.functional.silu(temb), rope)
    assert torch.equal(x2, x) and torch.equal(c2, c)
    s = torch.cat([c, x], 1)
    assert torch.equal(single(s, temb, rope), s)
    model = MeissonicTransformer(TransformerConfig.preset("tiny"))
    for blk in [*model.transformer_blocks, *model.single_transformer_blocks]:
        for m in blk.modules():
            if hasattr(m, "n") and hasattr(m, "linear"):
                assert not m.linear.weight.any() and not m.linear.bias.any()
    # once the modulation is non-zero the block is no longer the identity
    with torch.no_grad():
        dual.norm1.linear.bias.fill_(0.5)
    assert not torch.equal(dual(x, c, temb, rope)[0], x)


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("hw", [(4, 4), (4, 6), (6, 2), (8, 4)])
def test_shapes_square_and_non_square(compress, hw):
    model = _model(compress=compress)
    tok, text, pooled, micro, level = _inputs(model.config, 2, *hw)
    with torch.no_grad():
        out = model(tok, text, pooled, micro, level)
    assert out.shape == (2, model.config.codebook_size, *hw)
    assert torch.isfinite(out).all()


def test_odd_grid_with_compression_is_a_clear_error():
    model = _model(compress=True)
    tok, text, pooled, micro, level = _inputs(model.config, 2, 3, 4)
    with pytest.raises(ValueError, match="divisible by 2"):
        model(tok, text, pooled, micro, level)
    # the same grid works without compression
    _model()(tok, text, pooled, micro, level)


def test_wider_compression_merges_k_by_k_positions():
    """compress_factor=4 runs a 16x8 token grid on 4x2 positions (how 32x32
    tokens of a 128 px image fit the 8x8 positions of a 64 px one); the
    2x2 default keeps its parameter shapes (shipped files load); a grid
    not divisible by 4 is refused; the official export refuses it."""
    from meissonic_lite.models.official import to_official_state_dict
    two, four = _model(compress=True), _model(compress=True,
                                               compress_factor=4)
    assert two.config.compression == 2 and four.config.compression == 4
    assert _model().config.compression == 1
    d = two.config.dim
    assert two.down_block.conv.weight.shape == (d, d, 2, 2)
    assert four.up_block.conv.weight.shape == (d, d, 4, 4)
    seen = []
    hook = four.project_to_hidden.register_forward_hook(
        lambda m, i, o: seen.append(o.shape))
    tok, text, pooled, micro, level = _inputs(four.config, 2, 16, 8)
    with torch.no_grad():
        out = four(tok, text, pooled, micro, level)
    hook.remove()
    assert out.shape == (2, four.config.codebook_size, 16, 8)
    assert seen == [(2, 4 * 2, d)]
    assert torch.isfinite(out).all()
    with pytest.raises(ValueError, match="divisible by 4"):
        four(*_inputs(four.config, 2, 8, 6))
    with pytest.raises(ValueError, match="compresses 4x4"):
        to_official_state_dict(four)
    with pytest.raises(ValueError, match="compress_factor"):
        TransformerConfig.preset("tiny", compress=True, compress_factor=1)


def test_a_widened_compression_draws_the_same_image_at_twice_the_pixels():
    """widen_compression (chapter 6's progressive resolution): a 2x2
    model's weights spread over 4x4 give, on a token grid whose every
    token is repeated 2x2, exactly the 2x2 model's logits repeated 2x2,
    since the positions inside cover the same parts of the image."""
    from meissonic_lite.training.resume_point import widen_compression
    two = _model(compress=True)
    four = MeissonicTransformer(TransformerConfig.preset(
        "tiny", compress=True, compress_factor=4)).eval()
    four.load_state_dict(widen_compression(two.state_dict(), 2, 4))
    tok, text, pooled, micro, level = _inputs(two.config, 2, 4, 6)
    big = tok.repeat_interleave(2, 1).repeat_interleave(2, 2)
    with torch.no_grad():
        small_out = two(tok, text, pooled, micro, level)
        big_out = four(big, text, pooled, micro, level)
    want = small_out.repeat_interleave(2, 2).repeat_interleave(2, 3)
    assert big_out.shape == want.shape == (2, two.config.codebook_size, 8, 12)
    torch.testing.assert_close(big_out, want, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="multiple"):
        widen_compression(two.state_dict(), 2, 3)


@pytest.mark.parametrize("rope", ["2d", "1d", "none", "learned"])
def test_batch_independence(rope):
    model = _model(rope=rope, compress=True)
    tok, text, pooled, micro, level = _inputs(model.config, 3, 4, 6)
    with torch.no_grad():
        ref = model(tok, text, pooled, micro, level)
        tok2, text2, pooled2 = tok.clone(), text.clone(), pooled.clone()
        micro2, level2 = micro.clone(), level.clone()
        tok2[1] = (tok2[1] + 1) % model.config.codebook_size
        text2[1] += 1
        pooled2[1] -= 1
        micro2[1, 4] = 2.0
        level2[1] = 999 - level2[1]
        out = model(tok2, text2, pooled2, micro2, level2)
    assert torch.allclose(out[[0, 2]], ref[[0, 2]], atol=1e-5)
    assert not torch.allclose(out[1], ref[1], atol=1e-3)


def test_rope_modes_differ():
    outs = {}
    for rope in ["2d", "1d", "none"]:
        model = _model(rope=rope)
        with torch.no_grad():
            outs[rope] = model(*_inputs(model.config))
    assert not torch.allclose(outs["2d"], outs["1d"], atol=1e-3)
    assert not torch.allclose(outs["2d"], outs["none"], atol=1e-3)


@pytest.mark.parametrize("rope", ["2d", "learned"])
def test_finite_gradients_to_every_parameter(rope):
    model = _model(compress=True, rope=rope).train()
    tok, text, pooled, micro, level = _inputs(model.config, 2, 4, 4)
    out = model(tok, text, pooled, micro, level)
    loss = torch.nn.functional.cross_entropy(
        out, torch.randint(0, model.config.codebook_size, (2, 4, 4)))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        if name != "embed.embeddings.weight":  # unused rows get 0
            assert p.grad.abs().sum() > 0, name


def test_mask_class_is_never_predicted():
    cfg = TransformerConfig.preset("tiny")
    assert cfg.mask_id == cfg.vocab_size - 1 >= cfg.codebook_size
    model = _model()
    with torch.no_grad():
        out = model(*_inputs(cfg))
    assert out.shape[1] == cfg.codebook_size  # no logit for [MASK]
    assert out.argmax(1).max() < cfg.mask_id
    with pytest.raises(ValueError):
        TransformerConfig(codebook_size=64, vocab_size=64)
    paper = TransformerConfig.preset("paper")
    assert (paper.vocab_size, paper.codebook_size, paper.mask_id) == (
        8256, 8192, 8255)


def test_bad_inputs_name_the_expected_shape():
    model = _model()
    cfg = model.config
    tok, text, pooled, micro, level = _inputs(cfg)
    bad = tok.clone()
    bad[0, 0, 0] = cfg.vocab_size
    with pytest.raises(ValueError, match=r"\[0, 65\)"):
        model(bad, text, pooled, micro, level)
    with pytest.raises(ValueError, match=r"\(2, 'T', 32\)"):
        model(tok, torch.randn(2, 5, 31), pooled, micro, level)
    with pytest.raises(ValueError, match=r"micro_conds must have shape "
                                         r"\(2, 5\)"):
        model(tok, text, pooled, micro[:, :4], level)
    with pytest.raises(ValueError, match=r"pooled must have shape \(2, 32"):
        model(tok, text, pooled[:1], micro, level)
    with pytest.raises(ValueError, match=r"text_states must have shape"):
        model(tok, text[:1], pooled, micro, level)
    with pytest.raises(ValueError, match=r"level must have shape \(2,\)"):
        model(tok, text, pooled, micro, level[:1])
    with pytest.raises(ValueError, match=r"level must lie in \[0, 1000\]"):
        model(tok, text, pooled, micro, torch.tensor([0, 47000]))
    with pytest.raises(ValueError, match="int64"):
        model(tok.float(), text, pooled, micro, level)


def test_reduced_precision():
    model = _model(compress=True)
    inputs = _inputs(model.config, 2, 4, 4)
    with torch.no_grad():
        ref = model(*inputs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(*inputs)
    assert torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() < 0.25 * ref.abs().max()
    # the embeddings are computed in fp32: level 1000 and 1024-px micro
    # conditions stay finite even in an fp16 model (the official code gives
    # inf for step index >= 66 because it multiplies by 1000 in fp16)
    assert torch.isfinite(sinusoid(torch.tensor([1000.0]).half())).all()
    half = model.half()
    tok, text, pooled, micro, _ = inputs
    micro = micro.clone()
    micro[:, :2] = 1024
    with torch.no_grad():
        temb = half.conditioning(pooled.half(), micro.half(),
                                 torch.tensor([1000, 1000]))
    assert temb.dtype == torch.float16 and torch.isfinite(temb).all()
    with torch.no_grad():
        out16 = half(tok, text.half(), pooled.half(), micro.half(),
                     torch.tensor([1000, 0]))
    assert out16.dtype == torch.float16 and torch.isfinite(out16).all()


def test_conv_blocks_are_opt_in_and_start_neutral():
    """conv_blocks=0 adds no parameters (shipped files load unchanged);
    with blocks, shapes hold, their modulation starts at identity, and the
    official export refuses them (chapter 5)."""
    from meissonic_lite.models.official import to_official_state_dict
    plain = _model(compress=True)
    assert not any(k.startswith(("down_convs", "up_convs"))
                   for k in plain.state_dict())
    conv = _model(compress=True, conv_blocks=1)
    extra = conv.num_params() - plain.num_params()
    d = conv.config.dim
    per_block = 9 * d + d + (d * 4 * d + 4 * d) + (4 * d * d + d) \
        + (d * 3 * d + 3 * d)
    assert extra == 2 * per_block
    fresh = MeissonicTransformer(conv.config)
    for blk in list(fresh.down_convs) + list(fresh.up_convs):
        assert not blk.ada.linear.weight.detach().any()
    b, h, w = 2, 4, 6
    args = _inputs(conv.config, b, h, w)
    assert conv(*args).shape == (b, conv.config.codebook_size, h, w)
    x = torch.randn(b, h, w, d)                  # zero gate: the identity
    assert torch.equal(fresh.down_convs[0](x, torch.randn(b, d)), x)
    with pytest.raises(ValueError, match="ConvNeXt"):
        to_official_state_dict(conv)
    with pytest.raises(ValueError, match="conv_blocks"):
        TransformerConfig.preset("tiny", conv_blocks=-1)
