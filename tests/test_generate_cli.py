"""`meissonic-lite generate` end to end, with tiny stand-in weights on disk.

The CLI runs in-process (`cli.main`) on a tiny VQ, a tiny CLIP and a tiny
transformer saved to a temporary directory, so nothing here needs the
shipped transformer.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from meissonic_lite.cli import main
from meissonic_lite.cli.generate import PACKAGE_DIR
from meissonic_lite.models import text, vq
from meissonic_lite.models.pretrained import save_transformer
from meissonic_lite.models.transformer import (
    MeissonicTransformer,
    TransformerConfig,
)

TINY_TEXT = text.TextEncoderConfig(
    embed_dim=32, text_width=32, text_layers=2, text_heads=2,
    vision_width=32, vision_layers=1, image_size=32, patch_size=8)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Paths of a tiny VQ (64 codes), CLIP (32 wide) and transformer."""
    d = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    vq.save_weights(vq.VQModel(vq.VQConfig(
        factor=4, num_codes=64, code_dim=8, channels=(8, 8, 8))),
        d / "vq.safetensors", torch.float32)
    text.save(text.build_clip(TINY_TEXT), TINY_TEXT,
              d / "clip.safetensors", torch.float32)
    tr = MeissonicTransformer(TransformerConfig.preset("tiny"))
    with torch.no_grad():            # AdaLN-Zero starts as identity: wake
        for p in tr.parameters():    # every block so seeds matter more
            p.add_(0.02 * torch.randn_like(p))
    save_transformer(tr, d / "tr.safetensors", torch.float32)
    wide = MeissonicTransformer(TransformerConfig.preset("tiny",
                                                         text_dim=64))
    save_transformer(wide, d / "wide.safetensors", torch.float32)
    return d


def run(weights, out, *extra, transformer="tr.safetensors"):
    """Run `meissonic-lite generate` on the tiny weights."""
    main(["generate", *extra, "-o", str(out), "--device", "cpu",
          "--transformer", str(weights / transformer),
          "--vq", str(weights / "vq.safetensors"),
          "--text-encoder", str(weights / "clip.safetensors")])


def pixels(path):
    return np.asarray(Image.open(path))


def test_writes_png_of_the_size_and_reports(weights, tmp_path, capsys):
    out = tmp_path / "sub" / "a.png"
    run(weights, out, "a red circle", "--size", "32", "--steps", "2")
    assert Image.open(out).size == (32, 32)
    said = capsys.readouterr().out
    assert str(out) in said and "32x32" in said and " s " in said


def test_non_square_and_unconditional(weights, tmp_path):
    out = tmp_path / "b.png"
    run(weights, out, "", "--height", "32", "--width", "48", "--steps",
        "2", "--cfg", "1")
    assert Image.open(out).size == (48, 32)


def test_same_seed_same_image_other_seed_differs(weights, tmp_path):
    paths = [tmp_path / f"{k}.png" for k in "abc"]
    for p, seed in zip(paths, ("1", "1", "2")):
        run(weights, p, "two stars", "--size", "32", "--steps", "3",
            "--seed", seed)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert not np.array_equal(pixels(paths[0]), pixels(paths[2]))


def test_n_images_make_one_grid_or_separate_files(weights, tmp_path):
    grid = tmp_path / "grid.png"
    run(weights, grid, "a star", "--size", "32", "--steps", "2", "-n", "3")
    w, h = Image.open(grid).size
    assert w == 3 * 32 and h > 32                     # captions below
    run(weights, tmp_path / "s.png", "a star", "--size", "32", "--steps",
        "2", "-n", "2", "--separate")
    for i in range(2):
        assert Image.open(tmp_path / f"s-{i}.png").size == (32, 32)
    assert not (tmp_path / "s.png").exists()


@pytest.mark.parametrize("extra,out,match", [
    (["--steps", "0"], "x.png", "steps must be"),
    (["--cfg", "-1"], "x.png", "guidance_scale must be"),
    (["-n", "0"], "x.png", "-n must be"),
    (["--aesthetic", "11"], "x.png", "aesthetic"),
    (["--size", "0"], "x.png", "positive"),
    ([], "x.gif", "must end in .png"),
])
def test_cheap_errors_come_before_any_load(tmp_path, extra, out, match):
    # the transformer path does not exist: had the CLI loaded anything
    # first, the error would name the missing file instead
    with pytest.raises(SystemExit) as e:
        main(["generate", "a circle", "-o", str(tmp_path / out),
              "--transformer", str(tmp_path / "missing.safetensors"),
              *extra])
    assert str(e.value.code).startswith("error:")
    assert match in str(e.value.code)


def test_size_must_fit_the_model(weights, tmp_path):
    with pytest.raises(SystemExit, match="multiple of 4"):
        run(weights, tmp_path / "x.png", "a circle", "--size", "30")
    assert not (tmp_path / "x.png").exists()


def test_missing_transformer_names_file_and_rebuild(weights, tmp_path):
    with pytest.raises(SystemExit) as e:
        run(weights, tmp_path / "x.png", "a circle",
            transformer="nope.safetensors")
    msg = str(e.value.code)
    assert msg.startswith("error:") and "nope.safetensors" in msg
    assert "meissonic-lite train" in msg


def test_mismatched_models_are_refused(weights, tmp_path):
    with pytest.raises(SystemExit, match="do not fit together.*text"):
        run(weights, tmp_path / "x.png", "a circle", "--size", "32",
            transformer="wide.safetensors")


def test_refuses_to_write_into_the_package(tmp_path):
    with pytest.raises(SystemExit, match="package directory"):
        main(["generate", "a circle", "-o", str(PACKAGE_DIR / "x.png")])
    assert not (PACKAGE_DIR / "x.png").exists()
