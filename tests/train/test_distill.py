"""Self-distillation from the judged context: the chunked divergence against a brute-force
full-softmax computation in float64 (value and gradient), the model-level path against two
separate forward passes, and the weight. (Gradient-accumulation equivalence: test_trainer.py;
packing: test_packing.py; the loss against a direct computation: test_objectives.py.)"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cutkit.models.tiny import tiny_model
from cutkit.train.distill import chunked_divergence, logprobs_and_divergence
from cutkit.train.logprobs import IGNORE_INDEX
from tests.helpers import make_trainer, two_records


def brute_force(student, teacher, weight, temperature=1.0, top_k=None):
    """T^2 KL(q || p) per row from the full (N, V) logits, written out directly."""
    z_s = student @ weight.T / temperature
    z_t = (teacher @ weight.T / temperature).detach()
    if top_k is not None:
        cut = z_t.topk(top_k, dim=-1).values[:, -1:]
        z_t = torch.where(z_t >= cut, z_t, -torch.inf)
    q = torch.softmax(z_t, dim=-1)
    log_p = torch.log_softmax(z_s, dim=-1)
    log_q = torch.log_softmax(z_t, dim=-1)
    terms = torch.where(q > 0, q * (log_q - log_p), torch.zeros_like(q))
    return temperature**2 * terms.sum(-1)


@pytest.mark.parametrize(
    ("temperature", "top_k", "chunk_size"),
    [(1.0, None, 1), (1.0, None, 3), (2.0, None, 1000), (0.5, 5, 2), (1.0, 1, 4)],
)
def test_chunked_divergence_equals_the_full_softmax_in_value_and_gradient(
    temperature, top_k, chunk_size
):
    torch.manual_seed(0)
    n, h, v = 7, 6, 40
    weight = torch.randn(v, h, dtype=torch.float64, requires_grad=True)
    student = torch.randn(n, h, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(n, h, dtype=torch.float64, requires_grad=True)
    got = chunked_divergence(
        lambda rows: F.linear(rows, weight),
        student,
        teacher,
        temperature=temperature,
        top_k=top_k,
        chunk_size=chunk_size,
    )
    want = brute_force(student, teacher, weight, temperature, top_k)
    assert got.dtype == torch.float64 and got.shape == (n,)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert bool((got >= 0).all())
    upstream = torch.randn(n, dtype=torch.float64)
    g_got = torch.autograd.grad(
        (got * upstream).sum(), (student, weight, teacher), allow_unused=True
    )
    g_want = torch.autograd.grad((want * upstream).sum(), (student, weight), allow_unused=True)
    torch.testing.assert_close(g_got[0], g_want[0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g_got[1], g_want[1], rtol=1e-10, atol=1e-12)
    assert g_got[2] is None, "the judged-context teacher is detached: no gradient reaches it"


def test_the_divergence_vanishes_when_the_contexts_agree():
    torch.manual_seed(1)
    rows = torch.randn(4, 6, dtype=torch.float64)
    weight = torch.randn(30, 6, dtype=torch.float64)
    kl = chunked_divergence(lambda r: F.linear(r, weight), rows, rows.clone(), chunk_size=2)
    torch.testing.assert_close(kl, torch.zeros(4, dtype=torch.float64), atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("temperature", 0.0, "distill_temperature"),
        ("temperature", float("nan"), "distill_temperature"),
        ("top_k", 0, "distill_top_k"),
        ("top_k", 2.5, "distill_top_k"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(setting, value, message):
    rows = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=message):
        chunked_divergence(lambda r: r, rows, rows, **{setting: value})


def _contexts():
    """A padded batch of three contexts: judged and plain of one response (rows 0, 1), and a
    positive (row 2); labels score the response tokens only."""
    response = [11, 12, 13, 14]
    judged = [3, 4, 5, 6, 7, *response]
    plain = [3, 8, *response]
    positive = [9, 10, 20, 21]
    width = len(judged)
    ids, labels, attention = [], [], []
    for prompt_len, seq in ((5, judged), (2, plain), (2, positive)):
        pad = width - len(seq)
        ids.append(seq + [0] * pad)
        labels.append([IGNORE_INDEX] * prompt_len + seq[prompt_len:] + [IGNORE_INDEX] * pad)
        attention.append([1] * len(seq) + [0] * pad)
    return torch.tensor(ids), torch.tensor(attention), torch.tensor(labels), response


def _direct(model, ids, attention, labels, response):
    """KL(judged || plain) per response position from two separate full-logits passes."""
    logits = model(input_ids=ids, attention_mask=attention).logits.double()
    # position t predicts token t + 1: the response starts at index 5 (judged) and 2 (plain)
    judged = torch.log_softmax(logits[0, 4 : 4 + len(response)], dim=-1).detach()
    plain = torch.log_softmax(logits[1, 1 : 1 + len(response)], dim=-1)
    return (judged.exp() * (judged - plain)).sum(-1)


@pytest.mark.parametrize("chunk_size", [1, 1024, None, "auto"])
def test_model_level_divergence_equals_two_full_forward_passes(chunk_size):
    model = tiny_model(vocab_size=64, seed=2, dtype=torch.float64)
    ids, attention, labels, response = _contexts()
    values, mask, kl = logprobs_and_divergence(
        model,
        ids,
        attention,
        labels,
        teacher_rows=torch.tensor([0]),
        student_rows=torch.tensor([1]),
        chunk_size=chunk_size,
    )
    assert values.shape == mask.shape == (3, len(response)) and kl.shape == (1, len(response))
    want = _direct(model, ids, attention, labels, response)
    torch.testing.assert_close(kl[0], want, rtol=1e-10, atol=1e-12)
    params = [p for p in model.parameters() if p.requires_grad]
    got_grad = torch.autograd.grad(kl.sum(), params, allow_unused=True)
    want_grad = torch.autograd.grad(
        _direct(model, ids, attention, labels, response).sum(), params, allow_unused=True
    )
    for a, b in zip(got_grad, want_grad, strict=True):
        if b is None:
            assert a is None or not a.any()
        else:
            torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)


def test_pairs_that_score_different_tokens_are_refused():
    model = tiny_model(vocab_size=64, seed=2)
    ids, attention, labels, _ = _contexts()
    labels[2, -1] = IGNORE_INDEX  # the positive row scores one token fewer than the judged row
    with pytest.raises(ValueError, match="same number of response tokens"):
        logprobs_and_divergence(
            model,
            ids,
            attention,
            labels,
            teacher_rows=torch.tensor([0]),
            student_rows=torch.tensor([2]),
        )


def test_the_weight_scales_only_the_divergence(tokenizer, tmp_path):
    trainers = [
        make_trainer(
            two_records(),
            tokenizer,
            tmp_path / str(w),
            objective="self_distill",
            distill_weight=w,
            max_steps=1,
        )
        for w in (1.0, 3.0)
    ]
    batch = trainers[0].data_collator(trainers[0].train_dataset)
    with torch.no_grad():
        one, three = (t.cut_loss_output(t.model, batch) for t in trainers)
    assert float(one.ul) > 0
    assert float(three.ul) == pytest.approx(3 * float(one.ul), rel=1e-6)
    assert float(three.mle) == pytest.approx(float(one.mle), rel=1e-6)
