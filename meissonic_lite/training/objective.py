"""The training objective: masked-token cross-entropy with CFG dropout
(chapter 6).

MUSE and Meissonic train with cross-entropy on the masked tokens only
(spec 4.1), mask rates drawn from the arccos distribution, and the
mask-rate level fed as a condition. Classifier-free guidance needs an
unconditional branch: with probability p a sample's text hidden states AND
pooled embedding become the empty prompt's, once, right before the forward
pass. (The released script inverts that test and then re-encodes the
prompt, so it never trains the unconditional branch: spec 4.2.)
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from ..sampling.masking import mask_tokens


class Dropped(NamedTuple):
    """Text conditions after CFG dropout, and which samples were dropped."""

    states: torch.Tensor   # (B, T, D)
    pooled: torch.Tensor   # (B, E)
    dropped: torch.Tensor  # (B,) bool


def cfg_dropout(states: torch.Tensor, pooled: torch.Tensor,
                null_states: torch.Tensor, null_pooled: torch.Tensor,
                p: float, generator: torch.Generator | None,
                global_batch: int | None = None,
                rows: slice = slice(None)) -> Dropped:
    """Replace each sample's (states, pooled) by the null ones with prob p.

    The draws are made for `global_batch` samples and `rows` kept, so data-
    parallel processes drop exactly what one process would.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"cfg dropout probability must be in [0, 1], "
                         f"got {p}")
    b = states.shape[0]
    if pooled.shape[0] != b:
        raise ValueError(f"states batch {b} != pooled batch "
                         f"{pooled.shape[0]}")
    gb = b if global_batch is None else global_batch
    drop = torch.rand(gb, generator=generator)[rows] < p      # (B,) cpu
    d = drop.to(states.device)
    states = torch.where(d[:, None, None], null_states.expand_as(states),
                         states)
    pooled = torch.where(d[:, None], null_pooled.expand_as(pooled), pooled)
    return Dropped(states, pooled, drop)


class Batch(NamedTuple):
    """This process's rows of one global training batch, masked and
    CFG-dropped with randomness drawn for the whole global batch."""

    input_ids: torch.Tensor    # (b, H, W) with mask ids
    labels: torch.Tensor       # (b, H, W), -100 where not masked
    level: torch.Tensor        # (b,) mask-rate level in [0, 1000]
    states: torch.Tensor       # (b, T, D)
    pooled: torch.Tensor       # (b, E)
    micro_conds: torch.Tensor  # (b, 5)
    dropped: torch.Tensor      # (b,) bool
    global_masked: int         # masked tokens in the whole global batch


def prepare_batch(tokens: torch.Tensor, states: torch.Tensor,
                  pooled: torch.Tensor, micro_conds: torch.Tensor,
                  null: tuple[torch.Tensor, torch.Tensor], mask_id: int,
                  cfg_p: float, generator: torch.Generator,
                  global_batch: int | None = None,
                  rows: slice = slice(None),
                  blob_prob: float = 0.0) -> Batch:
    """Mask tokens (arccos rates; a `blob_prob` share as blobs) and apply
    CFG dropout.

    The random draws are made for all `global_batch` samples and this
    process keeps `rows`, so N data-parallel processes see exactly the
    masks and dropouts that one process with the whole batch would.
    """
    b, h, w = tokens.shape
    gb = b if global_batch is None else global_batch
    shape = torch.zeros(gb, h, w, dtype=torch.long)
    m = mask_tokens(shape, generator, mask_id, blob_prob=blob_prob)
    mask = m.mask[rows].to(tokens.device)                      # (b, H, W)
    if mask.shape[0] != b:
        raise ValueError(f"rows {rows} select {mask.shape[0]} samples "
                         f"but {b} token grids were given")
    inp = torch.where(mask, torch.full_like(tokens, mask_id), tokens)
    labels = torch.where(mask, tokens, torch.full_like(tokens, -100))
    d = cfg_dropout(states, pooled, null[0], null[1], cfg_p, generator,
                    gb, rows)
    return Batch(inp, labels, m.level[rows].to(tokens.device), d.states,
                 d.pooled, micro_conds, d.dropped, int(m.mask.sum()))


def masked_ce(logits: torch.Tensor, labels: torch.Tensor,
              normaliser: int | None = None,
              label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy over masked tokens (labels != -100).

    logits (B, K, H, W), labels (B, H, W). The mean is over masked tokens;
    `normaliser` overrides the count (data-parallel ranks divide by the
    global count so their averaged gradients equal one big batch's).
    `label_smoothing` spreads that share of each target over all codes
    (MaskGIT trains with 0.1; the paper's recipe does not say).
    """
    total = F.cross_entropy(logits.float(), labels, ignore_index=-100,
                            reduction="sum", label_smoothing=label_smoothing)
    n = int((labels != -100).sum()) if normaliser is None else normaliser
    return total / max(n, 1)
