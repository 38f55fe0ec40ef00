"""Zero-shot editing with tiny stand-in models: masks, inpaint, outpaint,
img2img, bad input, the edit benchmark and the `edit` CLI."""

import numpy as np
import pytest
import torch
from PIL import Image

from meissonic_lite import editing
from meissonic_lite.cli import main
from meissonic_lite.evaluation.edit_eval import (
    TASKS,
    edit_benchmark,
    judge_edit,
    make_edit_tasks,
)
from meissonic_lite.models import text
from meissonic_lite.models import vq as vqmod
from meissonic_lite.models.pretrained import save_transformer
from meissonic_lite.models.transformer import (
    MeissonicTransformer,
    TransformerConfig,
)
from meissonic_lite.models.vq import VQConfig, VQModel
from meissonic_lite.sampling.pipeline import MeissonicLitePipeline
from meissonic_lite.world import make_scene, render

TINY_CLIP = text.TextEncoderConfig(
    embed_dim=32, text_width=32, text_layers=1, text_heads=2,
    vision_width=32, vision_layers=1, image_size=32, patch_size=8)


def tiny_models():
    torch.manual_seed(0)
    clip = text.build_clip(TINY_CLIP)
    vq = VQModel(VQConfig(factor=4, num_codes=64, code_dim=8,
                          channels=(8, 8, 8)))
    tr = MeissonicTransformer(TransformerConfig.preset("tiny"))
    return clip, vq, tr


@pytest.fixture(scope="module")
def models():
    return tiny_models()


@pytest.fixture(scope="module")
def pipe(models):
    clip, vq, tr = models
    return MeissonicLitePipeline(vq, text.TextEncoder(clip, TINY_CLIP), tr,
                                 device="cpu")


@pytest.fixture(scope="module")
def img():
    return render(make_scene([{"kind": "circle", "color": "red"},
                              {"kind": "star", "color": "blue"}], seed=1),
                  32)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


FAST = {"num_inference_steps": 3}


# -- masks -------------------------------------------------------------------
def test_thin_lines_survive_the_any_rule_but_not_the_official_one():
    m = np.zeros((32, 32), bool)
    m[:, 13] = True                             # a 1-px vertical line
    tok = editing.pixel_mask_to_tokens(m, 4)
    assert tok.shape == (8, 8) and tok[:, 3].all() and tok.sum() == 8
    m2 = np.zeros((32, 32), bool)
    m2[6, :] = True                             # 1-px horizontal line
    m2[30, 30] = True                           # a single pixel
    tok2 = editing.pixel_mask_to_tokens(Image.fromarray(m2), 4)
    assert tok2[1].all() and tok2[7, 7] and tok2.sum() == 9
    # The released code's resize-to-grid rule loses them; so does a
    # majority threshold.
    assert not editing.pixel_mask_to_tokens(m, 4, rule="official").any()
    assert not editing.pixel_mask_to_tokens(m, 4, rule="fraction").any()


def test_coverage_rules_and_dilation():
    m = np.zeros((16, 16), bool)
    m[4:8, 4:6] = True                          # half of token (1, 1)
    frac = editing.pixel_mask_to_tokens(m, 4, "fraction", threshold=0.5)
    assert frac.sum() == 1 and frac[1, 1]
    assert not editing.pixel_mask_to_tokens(m, 4, "fraction",
                                            threshold=0.6).any()
    dil = editing.pixel_mask_to_tokens(m, 4, dilate=1)
    assert dil.sum() == 9 and dil[:3, :3].all()
    lmask = Image.fromarray(m.astype(np.uint8) * 255)       # mode L
    assert torch.equal(editing.pixel_mask_to_tokens(lmask, 4),
                       editing.pixel_mask_to_tokens(torch.tensor(m), 4))


def test_box_to_mask():
    m = editing.box_to_mask((2, 3, 10, 7), (16, 8))
    assert m.shape == (8, 16) and m.sum() == 8 * 4
    assert m[3, 2] and m[6, 9] and not m[7, 9] and not m[3, 10]


@pytest.mark.parametrize("box", [(0, 0, 17, 8), (-1, 0, 4, 4),
                                 (4, 0, 4, 4), (0, 0, 4), (0.5, 0, 4, 4),
                                 "0,0,4,4"])
def test_bad_boxes_raise(box):
    with pytest.raises(ValueError, match="box"):
        editing.box_to_mask(box, (16, 8))


@pytest.mark.parametrize("mask,kw,match", [
    (np.full((8, 8), 2), {}, "only 0 and 1"),
    (np.zeros((2, 8, 8), bool), {}, "2-D"),
    (Image.new("RGB", (8, 8)), {}, "mode"),
    ([[0, 1]], {}, "numpy"),
    (np.zeros((8, 8), bool), {"rule": "lanczos"}, "rule"),
    (np.zeros((8, 8), bool), {"dilate": -1}, "dilate"),
    (np.zeros((8, 8), bool), {"threshold": 0.0}, "threshold"),
    (np.zeros((6, 8), bool), {}, "divisible"),
])
def test_bad_masks_raise(mask, kw, match):
    with pytest.raises(ValueError, match=match):
        editing.pixel_mask_to_tokens(mask, 4, **kw)


# -- inpaint -----------------------------------------------------------------
def test_inpaint_keeps_every_unmasked_token(pipe, img):
    src = pipe.vq.encode(img)[0]
    res = editing.inpaint(pipe, img, prompt="a green circle",
                          box=(5, 9, 19, 22), generator=gen(), **FAST)
    assert res.token_mask.sum() == 4 * 4 and res.mode == "inpaint"
    assert torch.equal(res.source_tokens, src)
    assert torch.equal(res.tokens[~res.token_mask], src[~res.token_mask])
    assert res.changed_outside() == 0
    assert int(res.tokens.max()) < pipe.vq.config.num_codes   # no masks
    assert res.image.size == img.size
    want = (pipe.vq.decode(res.tokens[None])[0] * 255).round()
    assert np.array_equal(np.asarray(res.image),
                          want.permute(1, 2, 0).byte().numpy())


def test_inpaint_is_deterministic_and_seed_dependent(pipe, img):
    def run(s):
        return editing.inpaint(pipe, img, prompt="x", box=(0, 0, 20, 20),
                               generator=gen(s), **FAST).tokens
    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def test_inpaint_leaves_later_text_to_image_unchanged(pipe, img):
    """The official inpaint pipeline switches a shared scheduler to
    linear; ours holds no state, so t2i is the same before and after."""
    def t2i():
        return pipe("x", height=16, width=16, generator=gen(3),
                    output_type="pt", **FAST)
    before = t2i()
    editing.inpaint(pipe, img, prompt="x", box=(0, 0, 8, 8),
                    schedule="linear", **FAST)
    assert torch.equal(before, t2i())


def test_rgba_and_grey_images_are_accepted(pipe, img):
    for im in (img.convert("RGBA"), img.convert("L")):
        res = editing.inpaint(pipe, im, prompt="x", box=(0, 0, 8, 8),
                              **FAST)
        assert res.image.mode == "RGB" and res.image.size == (32, 32)


# -- outpaint ----------------------------------------------------------------
def test_outpaint_keeps_the_original_at_its_offset(pipe, img):
    src = pipe.vq.encode(img)[0]
    res = editing.outpaint(pipe, img, "a wide scene", left=8, right=4,
                           top=12, generator=gen(), **FAST)
    assert res.image.size == (32 + 12, 32 + 12)
    assert res.offset == (3, 2) and res.tokens.shape == (11, 11)
    assert torch.equal(res.tokens[3:11, 2:10], src)
    assert res.token_mask.sum() == 11 * 11 - 64
    assert not res.token_mask[3:11, 2:10].any()
    assert res.changed_outside() == 0


# -- img2img -----------------------------------------------------------------
def test_img2img_strength_zero_is_the_reconstruction(pipe, img,
                                                     monkeypatch):
    def boom(*a, **k):
        raise AssertionError("strength 0 must not run the transformer")
    monkeypatch.setattr(pipe.transformer, "forward", boom)
    res = editing.img2img(pipe, img, "x", strength=0.0)
    assert not res.token_mask.any()
    assert torch.equal(res.tokens, pipe.vq.encode(img)[0])
    rec = (pipe.vq.reconstruct(img)[0] * 255).round().byte()
    assert np.array_equal(np.asarray(res.image),
                          rec.permute(1, 2, 0).numpy())


def test_img2img_strength_one_regenerates_everything(pipe, img):
    """Official bug: strength 1.0 masks nothing. Ours masks all tokens
    and equals text-to-image with the same seed."""
    steps = []
    res = editing.img2img(pipe, img, "a blue star", 1.0, "confidence",
                          generator=gen(5), callback=lambda i, t, c:
                          steps.append(i), **FAST)
    assert res.token_mask.all() and steps == [0, 1, 2]
    t2i = pipe("a blue star", height=32, width=32, generator=gen(5),
               output_type="pt", **FAST)
    want = (t2i[0] * 255).round().byte().permute(1, 2, 0).numpy()
    assert np.array_equal(np.asarray(res.image), want)


@pytest.mark.parametrize("remask", ["random", "confidence"])
def test_img2img_remasks_round_strength_times_L(pipe, img, remask):
    res = editing.img2img(pipe, img, "x", 0.3, remask, generator=gen(),
                          **FAST)
    assert int(res.token_mask.sum()) == round(0.3 * 64)
    assert res.changed_outside() == 0
    if remask == "confidence":      # the least likely tokens went
        score = editing.score_tokens(pipe, res.source_tokens, "x")
        worst = score.reshape(-1).argsort(stable=True)[:19]
        assert res.token_mask.reshape(-1)[worst].all()


def test_score_tokens_masks_every_token_once(pipe, img, monkeypatch):
    seen = []
    fwd = pipe.transformer.forward
    monkeypatch.setattr(pipe.transformer, "forward",
                        lambda tok, *a: seen.append(tok) or fwd(tok, *a))
    src = pipe.vq.encode(img)[0]
    s = editing.score_tokens(pipe, src, "x", guidance_scale=1.0)
    assert s.shape == (8, 8) and (s <= 0).all() and len(seen) == 1
    masked = seen[0] == pipe.transformer.config.mask_id       # (2, h, w)
    assert masked.sum(0).eq(1).all()


# -- bad input: clear errors before any work ---------------------------------
BAD = [
    (editing.inpaint, {"mask": np.zeros((16, 16), bool)}, "must match"),
    (editing.inpaint, {"mask": np.zeros((32, 32), bool)}, "no token"),
    (editing.inpaint, {"mask": np.ones((32, 32), bool)}, "every token"),
    (editing.inpaint, {"box": (0, 0, 33, 8)}, "inside"),
    (editing.inpaint, {}, "exactly one"),
    (editing.inpaint, {"box": (0, 0, 8, 8),
                       "mask": np.ones((32, 32), bool)}, "exactly one"),
    (editing.inpaint, {"box": (0, 0, 8, 8), "prompt": 3}, "prompt"),
    (editing.inpaint, {"box": (0, 0, 8, 8), "num_inference_steps": 0},
     "steps"),
    (editing.inpaint, {"box": (0, 0, 8, 8), "schedule": "zigzag"},
     "schedule"),
    (editing.inpaint, {"box": (0, 0, 8, 8), "aesthetic_score": 11},
     "aesthetic"),
    (editing.img2img, {"strength": 1.5}, "strength"),
    (editing.img2img, {"strength": -0.1}, "strength"),
    (editing.img2img, {"strength": float("nan")}, "strength"),
    (editing.img2img, {"remask": "worst"}, "remask"),
    (editing.outpaint, {}, "left, right"),
    (editing.outpaint, {"right": 6}, "multiple of 4"),
    (editing.outpaint, {"left": -4}, "left"),
    (editing.outpaint, {"right": 128}, "largest canvas"),
]


@pytest.mark.parametrize("fn,kw,match", BAD)
def test_bad_input_fails_before_work(pipe, img, monkeypatch, fn, kw,
                                     match):
    def boom(*a, **k):
        raise AssertionError("work started before the checks")
    monkeypatch.setattr(pipe.vq, "encode", boom)
    kw = {"prompt": "x", **kw}
    with pytest.raises(ValueError, match=match):
        fn(pipe, img, **kw)


@pytest.mark.parametrize("image,match", [
    (Image.new("CMYK", (32, 32)), "mode"),
    (Image.new("P", (32, 32)), "mode"),
    (Image.new("RGB", (30, 32)), "divisible|multiple"),
    (Image.new("RGB", (160, 32)), "largest canvas"),
    (np.zeros((32, 32, 3)), "PIL"),
])
def test_bad_images_raise(pipe, image, match):
    for fn, kw in ((editing.inpaint, {"box": (0, 0, 8, 8)}),
                   (editing.img2img, {}), (editing.outpaint, {"top": 4})):
        with pytest.raises(ValueError, match=match):
            fn(pipe, image, prompt="x", **kw)


def test_edit_options_share_the_pipelines_defaults_and_refuse_typos(
        pipe, img, monkeypatch):
    """The three edits take one set of options (`EditOptions`): their
    defaults are the pipeline's own, and a misspelt name fails before any
    work, naming the allowed ones."""
    import inspect
    call = inspect.signature(MeissonicLitePipeline.__call__).parameters
    assert set(editing.EDIT_DEFAULTS) == set(editing.EditOptions.__annotations__)
    for name, value in editing.EDIT_DEFAULTS.items():
        assert call[name].default == value, name

    def boom(*a, **k):
        raise AssertionError("work started before the checks")
    monkeypatch.setattr(pipe.vq, "encode", boom)
    for fn, kw in ((editing.inpaint, {"box": (0, 0, 8, 8)}),
                   (editing.img2img, {}), (editing.outpaint, {"top": 4})):
        with pytest.raises(TypeError, match="guidance_scale") as e:
            fn(pipe, img, prompt="x", guidence_scale=2.0, **kw)
        assert fn.__name__ in str(e.value)


# -- the benchmark -----------------------------------------------------------
def test_benchmark_tasks_have_true_answers():
    """Model-free: the judge accepts every ground-truth target and
    rejects the unedited source, so the tasks measure the edit."""
    tasks = make_edit_tasks(6, seed=3, size=128, multiple=8)
    assert [t.task for t in tasks] == [t for t in TASKS for _ in range(6)]
    for t in tasks:
        assert judge_edit(t, t.target), t.prompt
        if t.task != "outpaint":
            assert not judge_edit(t, t.source), t.prompt
        else:
            (e,) = t.extend.values()
            w, h = t.source.size
            assert e % 8 == 0 and (w + h) == 256 - e
    again = make_edit_tasks(6, seed=3, size=128, multiple=8)
    assert [t.prompt for t in again] == [t.prompt for t in tasks]


def test_benchmark_runs_and_keeps_tokens(pipe):
    r = edit_benchmark(pipe, n=1, seed=0, size=32, steps=2, t2i_runs=1,
                       keep_images=True)
    assert set(r["tasks"]) == set(TASKS)
    for name, t in r["tasks"].items():
        assert t["n"] == 1 and t["tokens_changed_outside"] == 0, name
        assert 0 <= t["success"] <= 1 and -1 <= t["clip_i"] <= 1
        assert t["seconds"] > 0 and t["pixel_l1_outside"] >= 0
    assert r["t2i_seconds"] > 0 and r["edit_vs_t2i"] > 0
    assert len(r["examples"]) == 4
    assert r["examples"][2]["edited"].size == (32, 32)     # outpainted
    for kw, match in (({"tasks": ("rotate",)}, "tasks"),
                      ({"strength": 2.0}, "strength"),
                      ({"steps": 0}, "steps"),
                      ({"size": 34}, "multiples"),
                      ({"size": 256}, "largest canvas")):
        with pytest.raises(ValueError, match=match):
            edit_benchmark(pipe, n=1, **kw)


# -- the CLI -----------------------------------------------------------------
@pytest.fixture(scope="module")
def weights(models, tmp_path_factory):
    clip, vq, tr = models
    d = tmp_path_factory.mktemp("w")
    save_transformer(tr, d / "t.safetensors", torch.float32)
    vqmod.save_weights(vq, d / "vq.safetensors", torch.float32)
    text.save(clip, TINY_CLIP, d / "clip.safetensors", torch.float32)
    return ["--transformer", str(d / "t.safetensors"), "--vq",
            str(d / "vq.safetensors"), "--text-encoder",
            str(d / "clip.safetensors"), "--device", "cpu", "--steps", "2"]


def test_cli_edits_in_every_mode(weights, img, tmp_path, capsys):
    src = tmp_path / "in.png"
    img.save(src)
    mask = np.zeros((32, 32), np.uint8)
    mask[:, 3] = 255                               # a 1-px line
    Image.fromarray(mask).save(tmp_path / "m.png")
    runs = {"a.png": ["--mode", "inpaint", "--box", "4,4,20,12"],
            "b.png": ["--mode", "inpaint", "--mask",
                      str(tmp_path / "m.png")],
            "c.png": ["--mode", "outpaint", "--extend", "0,8,4,0"],
            "d.png": ["--mode", "img2img", "--strength", "0.4",
                      "--remask", "confidence"]}
    for out, args in runs.items():
        main(["edit", "--image", str(src), "--prompt", "a red circle",
              "-o", str(tmp_path / out), *args, *weights])
        assert "0 kept tokens changed" in capsys.readouterr().out
    sizes = {o: Image.open(tmp_path / o).size for o in runs}
    assert sizes == {"a.png": (32, 32), "b.png": (32, 32),
                     "c.png": (40, 36), "d.png": (32, 32)}


@pytest.mark.parametrize("args,match", [
    (["--mode", "inpaint", "--box", "4,4,20,12", "-o", "SRC"],
     "overwrite the input"),
    (["--mode", "inpaint", "--box", "4,4,20,12", "-o", "ALIAS"],
     "overwrite the input"),
    (["--mode", "inpaint", "-o", "OUT"], "exactly one"),
    (["--mode", "inpaint", "--box", "4,4,20", "-o", "OUT"], "4 comma"),
    (["--mode", "img2img", "--box", "4,4,20,12", "-o", "OUT"],
     "not apply"),
    (["--mode", "img2img", "--strength", "2", "-o", "OUT"], "strength"),
    (["--mode", "outpaint", "-o", "OUT"], "--extend"),
    (["--mode", "outpaint", "--extend", "0,6,0,0", "-o", "OUT"],
     "multiple"),
    (["--mode", "inpaint", "--box", "0,0,64,8", "-o", "OUT"], "inside"),
])
def test_cli_refuses_bad_input_and_never_overwrites(weights, img, tmp_path,
                                                    args, match, capsys):
    src = tmp_path / "in.png"
    img.save(src)
    before = src.read_bytes()
    subs = {"SRC": str(src), "ALIAS": str(tmp_path / "x" / ".." / "in.png"),
            "OUT": str(tmp_path / "out.png")}
    args = [subs.get(a, a) for a in args]
    with pytest.raises(SystemExit) as e:
        main(["edit", "--image", str(src), "--prompt", "p", *args,
              *weights])
    assert match in str(e.value)
    assert src.read_bytes() == before
    assert not (tmp_path / "out.png").exists()
