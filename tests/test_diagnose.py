"""The context probe: model accuracy on masked tokens vs two baselines."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from meissonic_lite.evaluation.diagnose import (
    hidden_object_fill,
    masked_token_accuracy,
)


class FakeVQ:
    """Always the same 4x6 grid: code 1 everywhere, a 2x2 block of 2."""

    def __init__(self):
        self.grid = torch.ones(4, 6, dtype=torch.long)
        self.grid[1:3, 2:4] = 2

    def encode(self, images):
        return self.grid.expand(images.shape[0], -1, -1).clone()


class FakeText:
    def encode(self, prompts):
        return torch.zeros(len(prompts), 3, 8), torch.zeros(len(prompts), 8)


class Oracle(torch.nn.Module):
    """Knows the grid (logits one-hot on the true code); checks inputs."""

    config = SimpleNamespace(mask_id=9)

    def __init__(self, grid):
        super().__init__()
        self.grid, self.w = grid, torch.nn.Parameter(torch.zeros(1))
        self.levels = []

    def forward(self, ids, states, pooled, micro, level):
        assert ids.shape[1:] == self.grid.shape and micro.shape[1] == 5
        self.levels.append(level)
        hot = F.one_hot(self.grid, 10).float().permute(2, 0, 1)
        return hot.expand(ids.shape[0], -1, -1, -1)


def test_oracle_scores_one_and_baselines_are_exact():
    vq = FakeVQ()
    model = Oracle(vq.grid)
    rows = masked_token_accuracy(model, vq, FakeText(), n=3, size=32,
                                 rates=(0.5, 1.0))
    assert [r["mask_rate"] for r in rows] == [0.5, 1.0]
    assert all(r["model"] == 1.0 for r in rows)
    full = rows[1]
    assert full["masked_tokens"] == 3 * 24               # rate 1: all
    assert full["image_mode"] == pytest.approx(20 / 24)  # code 1 is mode
    # left neighbour differs at the block's two edges in rows 1-2
    assert full["left_neighbour"] == pytest.approx(20 / 24)
    assert model.levels[1].tolist() == [1000] * 3


def test_bad_rates():
    with pytest.raises(ValueError, match="mask rates"):
        masked_token_accuracy(None, FakeVQ(), FakeText(), rates=(0.0,))


class RecordingText:
    """Pooled[:, 0] = which call this is (0 true, 1 other kind, 2 empty)."""

    def __init__(self):
        self.calls = []

    def encode(self, prompts):
        self.calls.append(list(prompts))
        pooled = torch.full((len(prompts), 8), float(len(self.calls) - 1))
        return torch.zeros(len(prompts), 3, 8), pooled


class KindReader(Oracle):
    """Sure of the true grid with the true prompt; uniform otherwise."""

    def forward(self, ids, states, pooled, micro, level):
        hot = super().forward(ids, states, pooled, micro, level)
        sure = (pooled[:, 0] == 0).float()[:, None, None, None]
        return 20 * hot * sure


def test_prompt_use_measures_kind_and_text_gain_on_object_tokens():
    from meissonic_lite.evaluation.diagnose import prompt_use
    vq, txt = FakeVQ(), RecordingText()
    r = prompt_use(KindReader(vq.grid), vq, txt, n=3, size=32)
    true, other, empty = txt.calls
    assert empty == [""] * 3
    assert all(a != b for a, b in zip(true, other))      # one kind changed
    assert r["object_tokens"] == 3 * 4                   # the 2x2 blocks
    assert r["ce_true"] < 1e-6
    assert r["ce_other_kind"] == pytest.approx(torch.log(torch.tensor(
        10.0)).item(), rel=1e-5)                         # uniform
    assert r["kind_gain"] == pytest.approx(r["ce_other_kind"], rel=1e-5)
    assert r["text_gain"] == pytest.approx(r["kind_gain"])
    with pytest.raises(ValueError, match="mask rate"):
        prompt_use(KindReader(vq.grid), vq, txt, rate=0.0)


class BackgroundOnly(Oracle):
    """Sure every token is the background code (1), whatever it sees."""

    def forward(self, ids, states, pooled, micro, level):
        hot = 50 * F.one_hot(torch.ones_like(self.grid), 10).float()
        return hot.permute(2, 0, 1).expand(ids.shape[0], -1, -1, -1)


def test_hidden_object_fill_tells_a_drawer_from_a_background_painter():
    vq = FakeVQ()
    good = hidden_object_fill(Oracle(vq.grid), vq, FakeText(), n=3, size=32)
    # the 2x2 block and its ring (clipped to the 4x6 grid): 16 of 24
    assert good["masked_share"] == pytest.approx(16 / 24)
    assert good["region"]["object_right"] == 1.0
    assert good["region"]["called_background"] == 0.0
    bad = hidden_object_fill(BackgroundOnly(vq.grid), vq, FakeText(), n=3,
                             size=32)
    assert bad["region"]["called_background"] == 1.0
    assert bad["region"]["p_background"] == pytest.approx(1.0)
    assert bad["region"]["object_right"] == 0.0


def test_probe_cli_records_its_command(tmp_path):
    import json

    from meissonic_lite.cli import main
    from meissonic_lite.models.pretrained import save_transformer
    from meissonic_lite.models.transformer import (
        MeissonicTransformer,
        TransformerConfig,
    )
    from meissonic_lite.models.vq import from_pretrained
    torch.manual_seed(0)
    k = from_pretrained().config.num_codes      # fit the shipped VQ/CLIP
    cfg = TransformerConfig.preset("tiny", codebook_size=k,
                                   vocab_size=k + 1, text_dim=128,
                                   pooled_dim=128, compress=True)
    save_transformer(MeissonicTransformer(cfg), tmp_path / "m.safetensors")
    out = tmp_path / "d.json"
    main(["diagnose", "fill", str(tmp_path / "m.safetensors"), "--n", "2",
          "--out", str(out)])
    rec = json.loads(out.read_text())
    assert rec["probe"] == "fill" and rec["step"] is None
    assert rec["command"].startswith(
        "meissonic-lite diagnose fill")
    assert set(rec["result"]["region"]) == {
        "object_right", "called_background", "p_background"}


def test_loss_split_separates_background_from_object_tokens():
    """A model that always answers the background code is cheap on the
    background and dear on the object; the probe must say so, exactly."""
    import math

    from meissonic_lite.evaluation.diagnose import loss_split
    vq = FakeVQ()
    background_only = Oracle(torch.ones_like(vq.grid))
    rows = loss_split(background_only, vq, FakeText(), n=2, size=32,
                      rates=(1.0,))
    (row,) = rows
    e = math.e
    assert row["object_share"] == pytest.approx(4 / 24)
    for name in ("text", "empty"):    # text-blind: both columns agree
        assert row[f"ce_background_{name}"] == pytest.approx(
            math.log((e + 9) / e))
        assert row[f"ce_object_{name}"] == pytest.approx(math.log(e + 9))
    with pytest.raises(ValueError, match="mask rates"):
        loss_split(background_only, vq, FakeText(), n=1, size=32,
                   rates=(0.0,))
