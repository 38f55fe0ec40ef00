"""The learnability gate G0 (chapter 6): data, conditioning, scoring, run."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from meissonic_lite.models import vq as vq_mod
from meissonic_lite.training import gates
from meissonic_lite.world import vocab
from meissonic_lite.world.dataset import to_tensor

# The curve of the run whose last weights are data/resume/g0.safetensors.
RESUME_CURVE = "g0_vq_onehot_cont_3000.json"

@pytest.fixture(scope="module")
def tok():
    return vq_mod.from_pretrained()


def test_config_rejects_unknown_values():
    for bad in ({"gate": "g9"}, {"cond": "t5"}, {"tokens": "pixels"}):
        with pytest.raises(ValueError):
            gates.GateConfig(**bad)


def test_g0_data_covers_every_kind_and_colour_once_per_48():
    pairs = gates.g0_pairs()
    assert len(pairs) == len(set(pairs)) == 48
    assert {k for k, _ in pairs} == set(vocab.SHAPES)
    ims = gates.g0_images(48, 64, seed=1)
    assert [p for _, p in ims] == pairs
    assert gates.g0_caption("star", "red") == "a red star"


def test_true_renders_pass_g0_and_plain_canvases_fail(tok):
    """The score can be reached (clean renders and their VQ round trip)
    and fails without objects: it measures something."""
    ims = gates.g0_images(48, 64, seed=2)
    pairs = [p for _, p in ims]
    clean = gates.score_g0([np.asarray(im) for im, _ in ims], pairs)
    assert clean["g0"] >= 0.95 and clean["colour"] == 1.0
    x = torch.stack([to_tensor(im) for im, _ in ims])
    with torch.no_grad():
        rec = tok.decode(tok.encode(x)).clamp(0, 1)
    arr = (rec.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    assert gates.score_g0(arr, pairs)["g0"] >= 0.9
    gray = np.full((48, 64, 64, 3), 128, np.uint8)
    empty = gates.score_g0(gray, pairs)
    assert empty["g0"] == 0.0
    # the confusion table: 8 of each kind, read as themselves when clean
    assert empty["read_as"] == {k: {"none": 8} for k in vocab.SHAPES}
    assert all(seen.get(k, 0) >= 7 for k, seen in clean["read_as"].items())


def test_snap_to_flat_keeps_the_layout_in_flat_codes(tok):
    codes = gates.flat_codes(tok)
    assert len(set(codes.tolist())) == len(codes)       # one per colour
    ims = gates.g0_images(6, 64, seed=3)
    x = torch.stack([to_tensor(im) for im, _ in ims])
    t = gates.snap_to_flat(x, tok)
    assert t.shape == (6, 16, 16)
    assert set(t.unique().tolist()) <= set(codes.tolist())
    gray = int(codes[list(gates.COLOR_NAMES).index("gray")])
    for ti, (_, (kind, colour)) in zip(t, ims):
        obj = int(codes[list(gates.COLOR_NAMES).index(colour)])
        assert ti[0, 0] == gray
        n = int((ti == obj).sum())
        area = (vocab.SIZES["large"] * 16) ** 2          # in tokens
        assert 0.2 * area < n < 1.2 * area, (kind, n)


def test_onehot_text_is_the_ideal_encoder():
    enc = gates.OneHotText(32, 16, seed=0)
    s, p = enc.encode(["a red star", "a blue star", "a red circle"])
    assert s.shape == (3, 2, 32) and p.shape == (3, 16)
    assert torch.equal(s[0, 0], s[1, 0]) and torch.equal(s[0, 1], s[2, 1])
    assert not torch.equal(s[0, 0], s[2, 0])
    ns, npool = enc.null(2)
    assert ns.abs().sum() == 0 and npool.shape == (2, 16)


def test_run_gate_writes_a_curve_and_resumes(tmp_path):
    cfg = gates.GateConfig(n_images=96, steps=2, batch_size=8,
                           eval_every=1, eval_seeds=1, sample_steps=2,
                           cond="onehot")
    res = gates.run_gate(cfg, tmp_path)
    assert [p["step"] for p in res["points"]] == [1, 2]
    assert res["points"][-1]["images_seen"] == 16
    assert (tmp_path / "grid_00002.png").is_file()
    assert 0.0 <= res["points"][-1]["g0"] <= 1.0
    probe = res["probe"]["0.3"]
    assert set(probe) == {"background", "interior", "edge"}
    assert probe["background"]["tokens_per_image"] > 200  # mostly gray
    kinds = res["kind_probe"]
    assert set(kinds["read_as"]) == {k for k, _ in gates.g0_pairs()}
    assert sum(sum(r.values()) for r in kinds["read_as"].values()) == 96
    assert 0.0 <= kinds["accuracy"] <= 1.0
    assert set(res["twin_probe"]) == {"circle", "square"}
    assert set(res["points"][-1]["twin"]) == {"circle", "square"}
    assert res["twin_probe"]["circle"]["telling_per_image"] > 5
    cfg.steps = 3
    res = gates.run_gate(cfg, tmp_path, resume=True)
    assert [p["step"] for p in res["points"]] == [1, 2, 3]
    assert json.loads((tmp_path / "curve.json").read_text())["points"][
        -1]["images_seen"] == 24
    sweep = gates.sampler_sweep(tmp_path, [(2, 1.0, 0.0), (3, 2.0, 4.5)])
    assert [(r["steps"], r["guidance"]) for r in sweep["rows"]] == [
        (2, 1.0), (3, 2.0)]
    assert all(r["n"] == 48 for r in sweep["rows"])
    assert (tmp_path / "sweep.json").is_file()


class _Oracle(torch.nn.Module):
    """A fake transformer that knows the answer: it reads the caption's
    kind from the one-hot states and returns that kind's token grid (or
    always the square's: a model that draws circles as squares) as
    near-certain logits."""

    def __init__(self, cond, grids, num_codes, always=None):
        super().__init__()
        self.cond, self.grids, self.always = cond, grids, always
        self.num_codes = num_codes
        self.config = type("Cfg", (), {"mask_id": num_codes})()

    def forward(self, inp, states, pooled, micro, level):
        kind = vocab.SHAPES[int((self.cond.kind - states[0, 0]).norm(
            dim=1).argmin())]
        ans = self.grids[self.always or kind]
        return 30.0 * torch.nn.functional.one_hot(
            ans, self.num_codes).permute(0, 3, 1, 2).float()


def test_twin_probe_reads_the_telling_tokens(tok):
    """The twin probe masks exactly the tokens where a circle and the same
    square differ: an oracle gets every one right and pays for the wrong
    caption; a model that draws every circle as a square answers the
    twin's code on every telling token of a circle."""
    cfg = gates.GateConfig(cond="onehot")
    cond = gates.OneHotText(16, 8)
    ims, twins, colors = gates.g0_twins("circle", "square", 8, 64, seed=79)
    assert colors == list(vocab.COLORS)
    grids = {k: tok.encode(torch.stack([to_tensor(i) for i in g]))
             for k, g in (("circle", ims), ("square", twins))}
    n = tok.config.num_codes
    got = gates.twin_probe(_Oracle(cond, grids, n), tok, cond, cfg, n=8)
    for kind in ("circle", "square"):
        assert got[kind]["telling_per_image"] > 5
        assert got[kind]["true_code"] == 1.0
        assert got[kind]["twin_code"] == 0.0
        assert got[kind]["nll_true"] < 1e-3
        assert got[kind]["nll_twin_caption"] > 10
        assert got[kind]["true_caption_wins"] == 1.0
    got = gates.twin_probe(_Oracle(cond, grids, n, always="square"), tok,
                           cond, cfg, n=8)
    assert got["circle"]["twin_code"] == 1.0
    assert got["circle"]["true_code"] == 0.0
    assert got["square"]["true_code"] == 1.0


def test_a_gate_tokenizes_with_the_vq_it_is_given(tmp_path):
    """--tokenizer: another VQ file (here an untrained f=8 one) sets the
    token grid (128 px / 8 = 16, as the 64 px f=4 grid), the codebook the
    model predicts, the judged images' size and the resume point's
    tokenizer; a missing file is refused with its name."""
    from meissonic_lite.models.pretrained import load_transformer
    from meissonic_lite.models.vq import VQConfig, VQModel
    torch.manual_seed(0)
    f8 = VQModel(VQConfig(factor=8, num_codes=64, channels=[8, 8, 8, 8]))
    path = tmp_path / "vq8.safetensors"
    vq_mod.save_weights(f8, path)
    cfg = gates.GateConfig(size=128, n_images=16, steps=1, batch_size=8,
                           eval_every=1, eval_seeds=1, sample_steps=2,
                           cond="onehot", tokenizer=str(path))
    res = gates.run_gate(cfg, tmp_path / "run")
    assert res["config"]["tokenizer"] == str(path)
    with Image.open(tmp_path / "run" / "grid_00001.png") as grid:
        assert grid.size == (12 * 128, 4 * 128)
    model = load_transformer(tmp_path / "run" / "model.safetensors")
    assert model.config.codebook_size == 64
    tok8 = gates.gate_tokenizer(cfg)
    assert tok8.config.factor == 8
    assert tok8.tokenizer_sha256 != vq_mod.from_pretrained().tokenizer_sha256
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        gates.gate_tokenizer(gates.GateConfig(
            tokenizer=str(tmp_path / "nope.safetensors")))


def test_a_resume_point_carries_a_run_on_and_refuses_bad_input(tmp_path,
                                                               tok):
    """The small file a session commits: fp16 weights + where the run
    stands; --init continues the count of images seen (chapter 6)."""
    from meissonic_lite import cli
    from meissonic_lite.models.model_files import ModelFileError
    from meissonic_lite.training.resume_point import export_resume_point
    run, point = tmp_path / "run", tmp_path / "point.safetensors"
    cfg = gates.GateConfig(n_images=48, steps=2, batch_size=8,
                           eval_every=2, eval_seeds=1, sample_steps=2,
                           cond="onehot")
    gates.run_gate(cfg, run)
    cli.main(["gate", "g0", "--out", str(run), "--export", str(point)])
    assert point.stat().st_size < (run / "latest.pt").stat().st_size / 1.5
    nxt = gates.GateConfig(**{**cfg.__dict__, "init": str(point)})
    res = gates.run_gate(nxt, tmp_path / "next")
    assert res["start_images"] == 16
    assert res["points"][-1]["images_seen"] == 32
    with pytest.raises(FileNotFoundError, match="nope"):
        gates.run_gate(gates.GateConfig(**{**nxt.__dict__, "init": str(
            tmp_path / "nope.safetensors")}), tmp_path / "x")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not weights")
    with pytest.raises(ModelFileError, match="bad.safetensors"):
        gates.run_gate(gates.GateConfig(**{**nxt.__dict__,
                                           "init": str(bad)}),
                       tmp_path / "x")
    with pytest.raises(ValueError, match="num_heads"):
        gates.run_gate(gates.GateConfig(**{**nxt.__dict__, "heads": 2}),
                       tmp_path / "x")
    # a 2x2 point carries on under a 4x4 compression (128 px on the same
    # 8x8 positions): its compression layers are widened, nothing else
    from dataclasses import replace

    from meissonic_lite.models.transformer import MeissonicTransformer
    from meissonic_lite.training.resume_point import load_resume_point
    saved = MeissonicTransformer.from_pretrained(point).config
    state, notes = load_resume_point(
        point, replace(saved, compress_factor=4, extra={}),
        tok.tokenizer_sha256)
    assert notes["widened_from"] == 2 and notes["images_seen"] == 16
    assert state["up_block.conv.weight"].shape[-2:] == (4, 4)
    other = tmp_path / "other.safetensors"
    export_resume_point(run / "latest.pt", other, 0, 8, "another-vq")
    with pytest.raises(ValueError, match="another tokenizer"):
        gates.run_gate(gates.GateConfig(**{**nxt.__dict__,
                                           "init": str(other)}),
                       tmp_path / "x")


def test_gate_fp32_turns_autocast_off(tmp_path):
    """--fp32 reaches the trainer (at the lite width fp32 trained faster
    than bf16 autocast on a CPU with native bf16, chapter 6)."""
    from meissonic_lite.cli.main import build_parser
    from meissonic_lite.training.checkpoint import load_checkpoint
    p = build_parser()
    assert p.parse_args(["gate", "g0"]).bf16 is True
    assert p.parse_args(["gate", "g0", "--fp32"]).bf16 is False
    cfg = gates.GateConfig(n_images=48, steps=1, batch_size=8, eval_every=1,
                           eval_seeds=1, sample_steps=2, cond="onehot",
                           bf16=False)
    gates.run_gate(cfg, tmp_path)
    assert load_checkpoint(tmp_path / "latest.pt")["train_config"][
        "bf16"] is False


def test_gate_cli_rejects_a_malformed_sweep(tmp_path):
    from meissonic_lite import cli
    with pytest.raises(SystemExit, match="STEPS,CFG,TEMP"):
        cli.main(["gate", "g0", "--out", str(tmp_path), "--sweep", "16,3"])


def test_sweep_settings_parse_order_and_token_temperature():
    from meissonic_lite.cli.gate import _sweep_setting
    assert _sweep_setting("16,3,4.5", []) == (16.0, 3.0, 4.5)
    assert _sweep_setting("16,3,0,halton", []) == (16.0, 3.0, 0.0, "halton")
    assert _sweep_setting("32,2,1,confidence,0.5", []) == (
        32.0, 2.0, 1.0, "confidence", 0.5)
    for bad in ("16,3,4.5,confidence,hot", "16,3,4.5,confidence,1,2"):
        with pytest.raises(ValueError, match="TOKEN_TEMP"):
            _sweep_setting(bad, [bad])



def test_clip_text_cut_keeps_the_causal_prefix():
    """The text tower is causal: the first 8 states of a G0 caption are
    the same whether 77 or 8 are kept, and so is the pooled embedding."""
    from meissonic_lite.models import text
    enc = text.from_pretrained()
    caps = [gates.g0_caption(k, c) for k, c in gates.g0_pairs()[:5]]
    full, short = gates.ClipText(enc), gates.ClipText(enc, length=8)
    (hf, pf), (hs, ps) = full.encode(caps), short.encode(caps)
    assert hs.shape == (5, 8, enc.hidden_dim) and hf.shape[1] == 77
    assert torch.allclose(hs, hf[:, :8]) and torch.allclose(ps, pf)
    assert short.null(3)[0].shape == (3, 8, enc.hidden_dim)


def test_the_committed_resume_point_still_draws_g0():
    """data/resume/g0.safetensors, the run chapter 6 carries on, loads as
    any model does, records where its curve ended, and judged as that
    curve was (same sampler, same seed) reads within 0.1 of its last raw
    point (fp16 weights and another CPU may flip a few of the 96 draws)."""
    from meissonic_lite.models import text
    from meissonic_lite.models.transformer import MeissonicTransformer
    root = Path(__file__).resolve().parents[1]
    curve = json.loads((root / "meissonic_lite/weights/gates" /
                        RESUME_CURVE).read_text())
    cfg = gates.GateConfig(**curve["config"])
    model = MeissonicTransformer.from_pretrained(
        root / "data/resume/g0.safetensors")
    notes = model.config.extra["resume"]
    assert notes["images_seen"] == curve["points"][-1]["images_seen"]
    run_tok = gates.gate_tokenizer(cfg)
    assert notes["tokenizer_sha256"] == run_tok.tokenizer_sha256
    cond = gates.gate_conditioner(cfg, text.from_pretrained())
    got = gates.judge_gate(model, run_tok, cond, cfg)["g0"]
    assert got >= curve["points"][-1]["g0"] - 0.1
