"""The context probe: model accuracy on masked tokens vs two baselines."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from meissonic_lite.training.diagnose import masked_token_accuracy


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
    from meissonic_lite.training.diagnose import prompt_use
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
