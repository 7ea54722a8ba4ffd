"""cut_loss against straightforward per-token loop reimplementations, plus edge cases."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cutkit.train.losses import LOG1MEXP_EPS, count_items, cut_loss, detect_flagged, log1mexp

# ---------------------------------------------------------------------------------------------
# references


def released_code_reference(lj, lp, mask, negative, threshold=1.1, alpha=1.0):
    """The released code's loss, token by token in python floats (probabilities, as it does)."""
    like, unlike = [], []
    for b in range(len(mask)):
        for t in range(len(mask[b])):
            if not mask[b][t]:
                continue
            like.append(-lj[b][t])  # NLL of the first context (labels of rows 0..B-1)
            if negative[b]:
                p_judged, p_plain = math.exp(lj[b][t]), math.exp(lp[b][t])
                if p_judged / p_plain > threshold:  # scale > self.threshold
                    unlike.append(-alpha * math.log(1 - p_plain))
                else:
                    unlike.append(-math.log(p_plain))
    loss = sum(like) / len(like)
    if unlike:  # unlike_mask.any()
        loss = (loss + sum(unlike) / len(unlike)) / 2
    return loss


def switchable_reference(
    lj,
    lp,
    mask,
    negative,
    *,
    threshold=1.1,
    alpha=1.0,
    gamma=0.0,
    normalization="official",
    align_p=True,
    align_n=True,
    misalign=True,
    detect=True,
):
    """Every option, written as loops over tokens with scalar torch ops (so it has gradients)."""
    rows = []  # per active row: (likelihood terms, misalign terms, number of response tokens)
    for b in range(mask.shape[0]):
        like, mis = [], []
        tokens = [t for t in range(mask.shape[1]) if mask[b, t]]
        for t in tokens:
            if (align_p and not negative[b]) or (align_n and negative[b]):
                like.append(-lj[b, t])
            if misalign and negative[b]:
                flagged = not detect or (lj[b, t] - lp[b, t]).item() > math.log(threshold)
                if flagged:
                    w = alpha * math.exp(gamma * lj[b, t].item())
                    mis.append(-w * torch.log1p(-torch.exp(lp[b, t])))
                else:
                    mis.append(-lp[b, t])
        if like or mis:
            rows.append((like, mis, len(tokens)))
    zero = torch.zeros((), dtype=lj.dtype)
    all_like = [x for r in rows for x in r[0]]
    all_mis = [x for r in rows for x in r[1]]
    if normalization == "official":
        l_like = sum(all_like, zero) / max(len(all_like), 1)
        if all_mis:
            return (l_like + sum(all_mis, zero) / len(all_mis)) / 2
        return l_like
    if normalization == "paper":
        per_row = [(sum(r[0], zero) + sum(r[1], zero)) / r[2] for r in rows]
        return sum(per_row, zero) / max(len(rows), 1)
    return (sum(all_like, zero) + sum(all_mis, zero)) / max(sum(r[2] for r in rows), 1)


def random_batch(B=5, L=7, negative=None, seed=0, dtype=torch.float64):
    """Log-probs in (-4, -0.01), lengths 1..L with right padding; logp_plain near logp_judged."""
    g = torch.Generator().manual_seed(seed)
    lj = -torch.rand(B, L, generator=g, dtype=dtype) * 4 - 0.01
    lp = (lj + torch.randn(B, L, generator=g, dtype=dtype) * 0.3).clamp(max=-0.01)
    lengths = torch.randint(1, L + 1, (B,), generator=g)
    mask = torch.arange(L)[None, :] < lengths[:, None]
    if negative is None:
        negative = torch.rand(B, generator=g) < 0.5
        negative[0], negative[1] = True, False  # mixed
    return lj.requires_grad_(), lp.requires_grad_(), mask, torch.as_tensor(negative)


def assert_same_value_and_grad(ours, ref, lj, lp):
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    g_ours = torch.autograd.grad(ours, [lj, lp], allow_unused=True, materialize_grads=True)
    g_ref = torch.autograd.grad(ref, [lj, lp], allow_unused=True, materialize_grads=True)
    for a, b in zip(g_ours, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# equivalence


@pytest.mark.parametrize(
    "negative", [[False] * 5, [True] * 5, None], ids=["only_pos", "only_neg", "mixed"]
)
@pytest.mark.parametrize("threshold, alpha", [(1.1, 1.0), (1.2, 0.5)])
def test_official_equals_released_code(negative, threshold, alpha):
    lj, lp, mask, neg = random_batch(negative=negative)
    out = cut_loss(lj, lp, mask, neg, threshold=threshold, ul_weight=alpha)
    ref = released_code_reference(
        lj.tolist(), lp.tolist(), mask.tolist(), neg.tolist(), threshold, alpha
    )
    assert out.loss.item() == pytest.approx(ref, rel=1e-12)
    torch.testing.assert_close(out.loss, out.mle + out.ul)
    assert out.flagged.any() or not neg.any()  # the batch exercises both branches


SETTINGS = [
    {},
    {"gamma": 0.5},
    {"gamma": 2.0, "ul_weight": 0.5},
    {"align_p": False},
    {"align_n": False},
    {"misalign": False},
    {"detect": False},
    {"align_p": False, "align_n": False},
    {"threshold": 1.0},
]


@pytest.mark.parametrize("normalization", ["official", "paper", "token"])
@pytest.mark.parametrize(
    "kw", SETTINGS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "default"
)
@pytest.mark.parametrize("seed", [0, 1])
def test_every_option_equals_loop_reference(normalization, kw, seed):
    lj, lp, mask, neg = random_batch(seed=seed)
    out = cut_loss(lj, lp, mask, neg, normalization=normalization, **kw)
    ref_kw = {("alpha" if k == "ul_weight" else k): v for k, v in kw.items()}
    ref = switchable_reference(lj, lp, mask, neg, normalization=normalization, **ref_kw)
    assert_same_value_and_grad(out.loss, ref, lj, lp)
    torch.testing.assert_close(out.loss, out.mle + out.ul)


def test_hindsight_is_plain_mle_on_first_context():
    lj, lp, mask, neg = random_batch()
    out = cut_loss(lj, lp, mask, neg, misalign=False)
    torch.testing.assert_close(out.loss, -lj[mask].mean())
    assert out.ul.item() == 0


def test_official_with_only_positives_is_mean_nll():
    lj, lp, mask, neg = random_batch(negative=[False] * 5)
    lp = torch.full_like(lp, float("nan"))  # plain context never read for positives
    out = cut_loss(lj, lp, mask, neg)
    torch.testing.assert_close(out.loss, -lj[mask].mean())
    assert "ul/flagged_frac" not in out.metrics()


# ---------------------------------------------------------------------------------------------
# detection


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_detection_is_strict(dtype):
    thr = 1.1
    at = torch.tensor(math.log(thr), dtype=dtype)  # log-ratio exactly log(threshold)
    above = torch.nextafter(at, torch.tensor(1.0, dtype=dtype))
    lj = torch.stack([at, above, torch.zeros((), dtype=dtype)])[None]  # (1, 3)
    flagged = detect_flagged(lj, torch.zeros_like(lj), torch.ones(1, 3, dtype=torch.bool), thr)
    assert flagged.tolist() == [[False, True, False]]  # an equal ratio is not flagged


def test_detection_is_detached_and_weight_is_constant():
    lj, lp, mask, neg = random_batch(negative=[True] * 5)
    out = cut_loss(lj, lp, mask, neg, align_n=False, gamma=0.5)
    assert out.flagged.any() and not out.flagged.requires_grad
    (g_lj,) = torch.autograd.grad(out.loss, [lj], allow_unused=True, materialize_grads=True)
    assert (g_lj == 0).all()  # lp_judged only decides the flag and the (detached) weight


@settings(max_examples=50, deadline=None)
@given(st.floats(1.0, 3.0), st.floats(0.0, 2.0), st.integers(0, 2**16))
def test_detection_is_monotone_in_threshold(thr, extra, seed):
    lj, lp, mask, neg = random_batch(seed=seed)
    m = mask & neg[:, None]
    loose, strict = detect_flagged(lj, lp, m, thr), detect_flagged(lj, lp, m, thr + extra)
    assert not (strict & ~loose).any() and not (loose & ~m).any()


def test_detection_rejects_nonpositive_threshold():
    with pytest.raises(ValueError, match="threshold"):
        detect_flagged(torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1, 1, dtype=torch.bool), 0)


# ---------------------------------------------------------------------------------------------
# numerics and edge cases


def test_log1mexp_values_away_from_zero_are_exact():
    x = torch.tensor(
        [-2e-6, -1e-5, -0.5, -math.log(2), -1.0, -50.0, -math.inf],
        dtype=torch.float64,
        requires_grad=True,
    )
    y = log1mexp(x)
    exact = [math.log(-math.expm1(v)) for v in x.tolist()]
    for got, want in zip(y.tolist(), exact, strict=True):
        assert got == pytest.approx(want, rel=1e-12)
    (g,) = torch.autograd.grad(y.sum(), [x])
    assert torch.isfinite(y).all() and torch.isfinite(g).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_log1mexp_gradient_is_bounded_near_p_one(dtype):
    """Before the clamp at -LOG1MEXP_EPS the gradient 1 / (1 - p) reached 1e30 at log p = -1e-30."""
    x = torch.tensor([0.0, -1e-300, -1e-30, -1e-12, -1e-7, -LOG1MEXP_EPS, -2e-6], dtype=dtype)
    x.requires_grad_()
    y = log1mexp(x)
    (g,) = torch.autograd.grad(y.sum(), [x])
    assert torch.isfinite(y).all() and torch.isfinite(g).all()
    assert g.abs().max() <= 1.01 / LOG1MEXP_EPS
    floor = math.log(-math.expm1(-LOG1MEXP_EPS))  # about -13.8: the largest unlikelihood
    assert y[:6].tolist() == pytest.approx([floor] * 6, rel=1e-5)
    assert (g[:5] == 0).all()  # past the clamp: no gradient at all


@pytest.mark.parametrize("p_plain_logp", [0.0, -1e-30, -1e-7])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_when_plain_probability_goes_to_one(p_plain_logp, dtype):
    lj = torch.full((2, 4), -0.001, dtype=dtype, requires_grad=True)
    lp = torch.full((2, 4), p_plain_logp, dtype=dtype).requires_grad_()
    mask, neg = torch.ones(2, 4, dtype=torch.bool), torch.tensor([True, True])
    for normalization in ["official", "paper", "token"]:
        out = cut_loss(lj, lp, mask, neg, detect=False, normalization=normalization)
        assert out.flagged.all() and torch.isfinite(out.loss) and out.loss > 0
        grads = torch.autograd.grad(out.loss, [lj, lp])
        assert all(torch.isfinite(g).all() for g in grads)


def test_no_token_flagged_is_mle_in_both_contexts():
    lj, lp, mask, neg = random_batch(negative=[True] * 5)
    out = cut_loss(lj, lp, mask, neg, threshold=1e9)
    assert not out.flagged.any()
    torch.testing.assert_close(out.loss, (-lj[mask].mean() + -lp[mask].mean()) / 2)


def test_empty_terms_give_zero_not_nan():
    lj, lp, mask, neg = random_batch(negative=[True] * 5)
    for normalization in ["official", "paper", "token"]:
        out = cut_loss(lj, lp, torch.zeros_like(mask), neg, normalization=normalization)
        assert out.loss.item() == 0 and out.metrics()["num_tokens"] == 0
        out.loss.backward()  # a graph still exists; gradients are zero
        only_ul = cut_loss(lj, lp, mask, neg, align_n=False, normalization=normalization)
        assert torch.isfinite(only_ul.loss) and only_ul.mle.item() == 0
    out = cut_loss(lj, lp, mask, torch.zeros_like(neg), align_p=False)  # positives, all ablated
    assert out.loss.item() == 0 and not torch.isnan(out.loss)


def test_unread_cells_cannot_leak_nan():
    lj, lp, mask, neg = random_batch()
    lj_bad = torch.where(mask, lj, float("nan"))  # padding is NaN
    lp_bad = torch.where(mask & neg[:, None], lp, float("nan"))  # positives' plain context NaN
    out = cut_loss(lj_bad, lp_bad, mask, neg)
    torch.testing.assert_close(out.loss, cut_loss(lj, lp, mask, neg).loss)
    grads = torch.autograd.grad(out.loss, [lj, lp])
    assert all(torch.isfinite(g).all() for g in grads)


def test_half_precision_inputs_give_fp32_loss():
    lj, lp, mask, neg = random_batch(dtype=torch.float16)
    assert cut_loss(lj, lp, mask, neg).loss.dtype == torch.float32


def test_invalid_arguments_raise():
    lj, lp, mask, neg = random_batch()
    with pytest.raises(ValueError, match="normalization"):
        cut_loss(lj, lp, mask, neg, normalization="mean")
    with pytest.raises(ValueError, match="num_items"):
        cut_loss(lj, lp, mask, neg, num_items=3)
    with pytest.raises(ValueError, match="same"):
        cut_loss(lj, lp[:, :-1], mask, neg)
    with pytest.raises(ValueError, match="negative"):
        cut_loss(lj, lp, mask, neg[:-1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ul_weight": math.nan}, "ul_weight must be a finite number >= 0, got nan: alpha"),
        ({"ul_weight": -5.0}, "ul_weight must be a finite number >= 0, got -5.0"),
        ({"ul_weight": math.inf}, "ul_weight must be a finite number >= 0, got inf"),
        ({"gamma": math.nan}, "gamma must be a finite number >= 0, got nan: the dynamic weight"),
        ({"gamma": -1.0}, "gamma must be a finite number >= 0, got -1.0"),
        ({"threshold": math.inf}, "threshold (lambda) must be a finite number >= 1"),
    ],
)
def test_non_finite_or_negative_loss_weights_raise_with_the_reason(kwargs, message):
    lj, lp, mask, neg = random_batch()
    with pytest.raises(ValueError) as caught:
        cut_loss(lj, lp, mask, neg, **kwargs)
    assert message in str(caught.value)


def test_zero_ul_weight_is_accepted_and_switches_unlikelihood_off():
    lj, lp, mask, neg = random_batch(negative=[True] * 5)
    out = cut_loss(lj, lp, mask, neg, ul_weight=0.0, detect=False)
    assert torch.isfinite(out.loss) and out.ul.item() == 0


# ---------------------------------------------------------------------------------------------
# gradient accumulation and metrics


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**16), st.sampled_from(["paper", "token"]), st.integers(1, 4))
def test_ga_invariance_with_num_items(seed, normalization, split):
    lj, lp, mask, neg = random_batch(B=5, seed=seed)
    full = cut_loss(lj, lp, mask, neg, normalization=normalization).loss
    total = count_items(mask, neg, normalization=normalization)
    parts = [
        cut_loss(lj[s], lp[s], mask[s], neg[s], normalization=normalization, num_items=total)
        for s in (slice(0, split), slice(split, None))
    ]
    torch.testing.assert_close(parts[0].loss + parts[1].loss, full)


def test_official_is_per_micro_batch():
    lj, lp, mask, neg = random_batch(negative=[True, False], B=2)
    full = cut_loss(lj, lp, mask, neg).loss
    ga = (
        cut_loss(lj[:1], lp[:1], mask[:1], neg[:1]).loss
        + cut_loss(lj[1:], lp[1:], mask[1:], neg[1:]).loss
    ) / 2
    assert not torch.allclose(full, ga)  # documented: official is not GA-invariant


def test_metrics_names_and_values():
    lj, lp, mask, neg = random_batch()
    out = cut_loss(lj, lp, mask, neg)
    m = out.metrics()
    negm, posm = mask & neg[:, None], mask & ~neg[:, None]
    assert all(isinstance(v, float) for v in m.values())
    assert m["loss/mle"] + m["loss/ul"] == pytest.approx(out.loss.item())
    assert m["num_tokens"] == mask.sum().item()
    assert m["ul/flagged_frac"] == pytest.approx(out.flagged.sum().item() / negm.sum().item())
    assert m["ul/logratio_mean"] == pytest.approx((lj - lp)[negm].mean().item())
    assert m["logps/judged"] == pytest.approx(lj[negm].mean().item())
    assert m["logps/plain"] == pytest.approx(lp[negm].mean().item())
    assert m["logps/positive"] == pytest.approx(lj[posm].mean().item())


def test_precomputed_flags_replace_detection_on_negative_tokens_only():
    torch.manual_seed(3)
    lj, lp = -torch.rand(3, 5) * 3, -torch.rand(3, 5) * 3
    mask = torch.ones(3, 5, dtype=torch.bool)
    negative = torch.tensor([True, False, True])
    given = torch.zeros(3, 5, dtype=torch.bool)
    given[:, 1] = True  # includes a positive row's token, which must be ignored
    out = cut_loss(lj, lp, mask, negative, flagged=given)
    assert out.flagged.tolist() == (given & negative[:, None]).tolist()
    detected = cut_loss(lj, lp, mask, negative)
    same_flags = cut_loss(lj, lp, mask, negative, flagged=detected.flagged)
    assert torch.equal(same_flags.loss, detected.loss)
    assert cut_loss(lj, lp, mask, negative, detect=False, flagged=given).flagged.sum() == 10


# ---------------------------------------------------------------------------------------------
# research levers: unflagged tokens, push balance


def _lever_inputs():
    torch.manual_seed(3)
    lj = torch.log_softmax(torch.randn(3, 6, 5, dtype=torch.float64), -1)[..., 0]
    lp = torch.log_softmax(torch.randn(3, 6, 5, dtype=torch.float64), -1)[..., 0]
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[2, 4:] = False
    negative = torch.tensor([True, False, True])
    flagged = torch.zeros(3, 6, dtype=torch.bool)
    flagged[0, 1] = flagged[2, 0] = flagged[2, 3] = True
    return lj, lp.requires_grad_(), mask, negative, flagged


@pytest.mark.parametrize("normalization", ["official", "paper", "token"])
def test_unflagged_ignore_gives_unflagged_tokens_no_plain_prompt_gradient(normalization):
    lj, lp, mask, negative, flagged = _lever_inputs()
    out = cut_loss(
        lj, lp, mask, negative, flagged=flagged, unflagged="ignore", normalization=normalization
    )
    out.loss.backward()
    grad = lp.grad
    neg_tokens = mask & negative[:, None]
    assert torch.all(grad[neg_tokens & ~flagged] == 0)
    assert torch.all(grad[flagged] > 0)  # unlikelihood raises the loss with log p: pushes down
    # the paper's "mle" trains the same tokens up, and the flagged terms are identical
    lp2 = lp.detach().clone().requires_grad_()
    paper = cut_loss(lj, lp2, mask, negative, flagged=flagged, normalization=normalization)
    paper.loss.backward()
    assert torch.all(lp2.grad[neg_tokens & ~flagged] < 0)
    torch.testing.assert_close(lp2.grad[flagged], grad[flagged])
    assert out.mle.item() == pytest.approx(paper.mle.item())


def test_push_balance_statistics():
    lj, lp, mask, negative, flagged = _lever_inputs()
    out = cut_loss(lj, lp, mask, negative, flagged=flagged, ul_weight=0.5)
    p = lp.detach().exp()
    expected_down = float((0.5 * p / (1 - p))[flagged].sum())
    neg_tokens = mask & negative[:, None]
    metrics = out.metrics()
    n_neg = int(neg_tokens.sum())
    assert metrics["ul/push_down"] == pytest.approx(expected_down / n_neg)
    assert metrics["ul/push_up"] == pytest.approx(int((neg_tokens & ~flagged).sum()) / n_neg)
    assert metrics["ul/push_ratio"] == pytest.approx(
        expected_down / int((neg_tokens & ~flagged).sum())
    )
    ignored = cut_loss(lj, lp, mask, negative, flagged=flagged, unflagged="ignore").metrics()
    assert ignored["ul/push_up"] == 0 and "ul/push_ratio" not in ignored
    hindsight = cut_loss(lj, lp, mask, negative, misalign=False).metrics()
    assert "ul/push_down" not in hindsight
    with pytest.raises(ValueError, match="unflagged"):
        cut_loss(lj, lp, mask, negative, unflagged="drop")
