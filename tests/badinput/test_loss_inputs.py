"""Bad-input corpus, loss inputs: ``cut_loss`` refuses log-probs that are NaN, infinite or
positive where they count, ``num_items <= 0``, a ``flagged`` / ``distill`` of the wrong shape and
log-prob tensors that are not 2-D (naming the argument and the expected shape), while a NaN where
``mask`` is False reaches neither the loss nor its gradient; ``CUTTrainer`` refuses an empty
record list before the sampler is built."""

from __future__ import annotations

import math

import pytest
import torch

from cutkit.train.losses import count_items, cut_loss, detect_flagged

NAN, INF = math.nan, math.inf


def batch():
    """Two rows of four tokens, the last token of row 0 padding; row 0 negative."""
    lj = torch.tensor([[-0.5, -1.0, -2.0, -1.0], [-0.3, -0.2, -0.1, -0.4]], requires_grad=True)
    lp = torch.tensor([[-1.5, -0.9, -3.0, -1.0], [-0.3, -0.2, -0.1, -0.4]], requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    return lj, lp, mask, torch.tensor([True, False])


def with_value(tensor, row, position, value):
    out = tensor.detach().clone()
    out[row, position] = value
    return out.requires_grad_()


CASES = [
    # (case id, what to change, fragments of the ValueError)
    ("judged-nan-counted", dict(lj=(0, 1, NAN)), ("logp_judged[0, 1]", "NaN")),
    ("judged-inf", dict(lj=(1, 0, INF)), ("logp_judged[1, 0]", "infinite")),
    ("judged-minus-inf", dict(lj=(1, 0, -INF)), ("logp_judged[1, 0]", "infinite")),
    ("judged-positive", dict(lj=(0, 0, 0.5)), ("logp_judged[0, 0]", "positive", "<= 0")),
    ("plain-nan-negative-row", dict(lp=(0, 2, NAN)), ("logp_plain[0, 2]", "NaN")),
    ("plain-positive-negative-row", dict(lp=(0, 0, 1e-3)), ("logp_plain[0, 0]", "positive")),
    ("num_items-zero", dict(kw={"normalization": "token", "num_items": 0}), ("num_items", "> 0")),
    ("num_items-negative", dict(kw={"normalization": "paper", "num_items": -1}), ("num_items",)),
    (
        "num_items-tensor-zero",
        dict(kw={"normalization": "token", "num_items": torch.tensor(0)}),
        ("num_items",),
    ),
    ("num_items-nan", dict(kw={"normalization": "token", "num_items": NAN}), ("num_items",)),
    (
        "flagged-1x1",
        dict(kw={"flagged": torch.zeros(1, 1, dtype=torch.bool)}),
        ("flagged (1, 1)", "(2, 4)"),
    ),
    (
        "flagged-row",
        dict(kw={"flagged": torch.ones(4, dtype=torch.bool)}),
        ("flagged (4,)", "(2, 4)"),
    ),
    ("distill-1x1", dict(kw={"distill": torch.zeros(1, 1)}), ("distill (1, 1)", "(2, 4)")),
]


def run(change):
    lj, lp, mask, neg = batch()
    if "lj" in change:
        lj = with_value(lj, *change["lj"])
    if "lp" in change:
        lp = with_value(lp, *change["lp"])
    return cut_loss(lj, lp, mask, neg, **change.get("kw", {}))


@pytest.mark.parametrize(("change", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_cut_loss_refuses_nonsense(change, expected):
    with pytest.raises(ValueError) as caught:
        run(change)
    for fragment in expected:
        assert fragment in str(caught.value), (fragment, str(caught.value))


@pytest.mark.parametrize(
    "change",
    [
        dict(lj=(0, 3, NAN)),  # padding
        dict(lj=(0, 3, INF)),
        dict(lp=(1, 0, NAN)),  # a positive row's plain context is never read
        dict(lp=(0, 3, 5.0)),
    ],
    ids=["judged-nan-padding", "judged-inf-padding", "plain-nan-positive-row", "plain-pad-pos"],
)
@pytest.mark.parametrize("normalization", ["official", "paper", "token"])
def test_masked_cells_may_hold_anything(change, normalization):
    lj, lp, mask, neg = batch()
    clean = cut_loss(lj, lp, mask, neg, normalization=normalization).loss
    lj2 = with_value(lj, *change["lj"]) if "lj" in change else lj
    lp2 = with_value(lp, *change["lp"]) if "lp" in change else lp
    out = cut_loss(lj2, lp2, mask, neg, normalization=normalization)
    torch.testing.assert_close(out.loss, clean)
    grads = torch.autograd.grad(out.loss, [lj2, lp2])
    assert all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize(
    ("shape", "name"), [((4,), "logp_judged"), ((1, 2, 4), "logp_judged")], ids=["1d", "3d"]
)
def test_log_probs_of_the_wrong_rank_name_the_log_probs(shape, name):
    lj = torch.full(shape, -1.0)
    with pytest.raises(ValueError) as caught:
        cut_loss(lj, lj, torch.ones(shape, dtype=torch.bool), torch.tensor([True]))
    message = str(caught.value)
    assert message.startswith(name) and "2-D (B, L)" in message, message


def test_the_other_entry_points_check_shapes():
    lj, lp, mask, neg = batch()
    with pytest.raises(ValueError, match="mask"):
        detect_flagged(lj, lp, mask[:, :2])
    with pytest.raises(ValueError, match="negative"):
        count_items(mask, neg[:1], normalization="token")


def test_the_check_keeps_the_gradient():
    lj, lp, mask, neg = batch()
    out = cut_loss(lj, lp, mask, neg)
    (g_lj, g_lp) = torch.autograd.grad(out.loss, [lj, lp])
    assert g_lj[mask].abs().sum() > 0 and g_lp[0, :3].abs().sum() > 0


def test_an_empty_record_list_is_refused_before_the_sampler(tmp_path, tokenizer):
    from tests.helpers import make_trainer

    with pytest.raises(ValueError, match="train_dataset is empty"):
        make_trainer([], tokenizer, tmp_path, max_steps=1)
