"""label_logprobs against a naive full-softmax reference, in float64 (nanoGPT-style equivalence)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

import cutkit.train.logprobs as logprobs_module
from cutkit.models.tiny import tiny_model
from cutkit.train.chunked_head import HEAD_PEAK_CHUNKS
from cutkit.train.logprobs import (
    CHUNK_MEMORY_MB,
    chunk_rows,
    chunked_label_logprobs,
    label_logprobs,
    label_logprobs_left_aligned,
    model_chunk_rows,
    response_logprobs,
)

TOL = {"rtol": 1e-10, "atol": 1e-10}


def naive_label_logprobs(model, input_ids, attention_mask, labels):
    """(B, T): full logits -> float64 log_softmax -> gather; 0 where labels == -100 and at t = 0."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    logp = torch.log_softmax(logits.double()[:, :-1], dim=-1)  # (B, T-1, V)
    target = labels[:, 1:]
    picked = logp.gather(-1, target.clamp(min=0)[..., None]).squeeze(-1)
    return F.pad(torch.where(target != -100, picked, 0.0), (1, 0))


def padded_batch(vocab_size, lengths=(12, 9, 5), prompt=(4, 6, 2), pad_id=2, seed=0):
    """Right-padded ids (B, T), attention mask, labels with prompt and padding set to -100."""
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    ids = torch.full((len(lengths), T), pad_id)
    attn = torch.zeros(len(lengths), T, dtype=torch.long)
    labels = torch.full((len(lengths), T), -100)
    for b, (n, p) in enumerate(zip(lengths, prompt, strict=True)):
        ids[b, :n] = torch.randint(3, vocab_size, (n,), generator=g)
        attn[b, :n] = 1
        labels[b, p:n] = ids[b, p:n]
    return ids, attn, labels


def grads_of(model, out, weights):
    """Gradients of sum(out * weights) w.r.t. the trainable parameters, by name."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    grads = torch.autograd.grad((out * weights).sum(), list(params.values()), allow_unused=True)
    return {n: g for n, g in zip(params, grads, strict=True) if g is not None}


def assert_matches_naive(model, chunk_size, **batch_kw):
    ids, attn, labels = padded_batch(model.config.vocab_size, **batch_kw)
    weights = torch.randn(
        labels.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    ours = label_logprobs(model, ids, attn, labels, chunk_size=chunk_size)
    ref = naive_label_logprobs(model, ids, attn, labels)
    assert ours.shape == ref.shape and ours.dtype == torch.float64
    torch.testing.assert_close(ours, ref, **TOL)
    assert (ours[labels == -100] == 0).all() and (ours[:, 0] == 0).all()
    g_ours, g_ref = grads_of(model, ours, weights), grads_of(model, ref, weights)
    assert g_ours.keys() == g_ref.keys() and g_ours
    for name in g_ref:
        torch.testing.assert_close(g_ours[name], g_ref[name], **TOL, msg=name)


@pytest.mark.parametrize("chunk_size", [1, 7, 10_000])
def test_matches_naive_tied(tiny, chunk_size):
    assert_matches_naive(tiny.double(), chunk_size)


def test_matches_naive_untied():
    model = tiny_model(tie_word_embeddings=False, dtype=torch.float64)
    assert model.lm_head.weight is not model.model.embed_tokens.weight
    assert_matches_naive(model, 7)


@pytest.mark.parametrize("targets", [["gate_proj", "up_proj", "down_proj"], ["lm_head"]])
def test_matches_naive_peft_lora(targets):
    from peft import LoraConfig, get_peft_model

    model = tiny_model(vocab_size=512, tie_word_embeddings=False, dtype=torch.float64)
    # init_lora_weights=False: random A and B, so the adapter changes the outputs
    config = LoraConfig(r=2, lora_alpha=4, target_modules=targets, init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    assert_matches_naive(peft_model, 5)


def test_matches_naive_peft_modules_to_save_head():
    from peft import LoraConfig, get_peft_model

    model = tiny_model(vocab_size=512, tie_word_embeddings=False, dtype=torch.float64)
    config = LoraConfig(r=2, target_modules=["up_proj"], modules_to_save=["lm_head"])
    peft_model = get_peft_model(model, config)
    with torch.no_grad():  # make the trained copy differ from the original head
        peft_model.base_model.model.lm_head.modules_to_save["default"].weight.mul_(1.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no fallback warning
        assert_matches_naive(peft_model, 6)


def test_head_sees_only_scored_rows_in_chunks(tiny):
    ids, attn, labels = padded_batch(tiny.config.vocab_size)
    seen = []
    hook = tiny.lm_head.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape))
    try:
        label_logprobs(tiny, ids, attn, labels, chunk_size=4).sum().backward()
    finally:
        hook.remove()
    n_scored = int((labels[:, 1:] != -100).sum())
    assert all(len(s) == 2 and s[0] <= 4 for s in seen)  # (n, H) rows, never (B, T, H)
    # forward + one recompute in backward (checkpoint): prompt/pad rows never reach the head
    assert sum(s[0] for s in seen) == 2 * n_scored


def test_no_grad_mode_matches_and_skips_checkpoint(tiny):
    tiny = tiny.double()
    ids, attn, labels = padded_batch(tiny.config.vocab_size)
    with torch.no_grad():
        ours = label_logprobs(tiny, ids, attn, labels, chunk_size=3)
        ref = naive_label_logprobs(tiny, ids, attn, labels)
    assert not ours.requires_grad
    torch.testing.assert_close(ours, ref, **TOL)


def test_low_precision_model_returns_fp32():
    model = tiny_model(vocab_size=256, dtype=torch.bfloat16)
    ids, attn, labels = padded_batch(256)
    out = label_logprobs(model, ids, attn, labels)
    assert out.dtype == torch.float32
    with torch.no_grad():  # same bf16 logits, upcast before the softmax, as the naive path does
        ref = naive_label_logprobs(model, ids, attn, labels).float()
    torch.testing.assert_close(out.detach(), ref, rtol=0, atol=1e-5)


def test_nothing_scored_gives_zeros(tiny):
    ids, attn, _ = padded_batch(tiny.config.vocab_size)
    out = label_logprobs(tiny, ids, attn, torch.full_like(ids, -100))
    assert out.shape == ids.shape and (out == 0).all()


def gemma2_softcapped():
    from transformers import Gemma2Config, Gemma2ForCausalLM

    config = Gemma2Config(
        vocab_size=128,
        hidden_size=8,
        intermediate_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=4,
        final_logit_softcapping=3.0,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    return Gemma2ForCausalLM(config).double().eval()


def test_fallback_for_softcapped_head_warns_and_matches():
    model = gemma2_softcapped()
    ids, attn, labels = padded_batch(128)
    with pytest.warns(UserWarning, match="final_logit_softcapping"):
        ours = label_logprobs(model, ids, attn, labels, chunk_size=4)
    torch.testing.assert_close(ours, naive_label_logprobs(model, ids, attn, labels), **TOL)
    # the chunked head alone would be wrong here: soft-capping changes the distribution
    hidden = model.model(input_ids=ids, attention_mask=attn).last_hidden_state[:, :-1]
    scored = labels[:, 1:] != -100
    raw = chunked_label_logprobs(hidden[scored], model.lm_head.weight, labels[:, 1:][scored])
    assert not torch.allclose(raw, ours[:, 1:][scored])


def test_chunk_size_none_is_the_plain_path_without_warning(tiny):
    tiny = tiny.double()
    ids, attn, labels = padded_batch(tiny.config.vocab_size)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = label_logprobs(tiny, ids, attn, labels, chunk_size=None)
    torch.testing.assert_close(ours, naive_label_logprobs(tiny, ids, attn, labels), **TOL)


@pytest.mark.parametrize("chunk_size", [1, 5, 64])
def test_chunked_head_with_bias_matches_full_softmax(chunk_size):
    g = torch.Generator().manual_seed(0)
    N, H, V = 23, 6, 50
    hidden = torch.randn(N, H, dtype=torch.float64, generator=g, requires_grad=True)
    weight = torch.randn(V, H, dtype=torch.float64, generator=g, requires_grad=True)
    bias = torch.randn(V, dtype=torch.float64, generator=g, requires_grad=True)
    labels = torch.randint(0, V, (N,), generator=g)
    up = torch.randn(N, dtype=torch.float64, generator=g)
    ours = chunked_label_logprobs(hidden, weight, labels, bias=bias, chunk_size=chunk_size)
    ref = torch.log_softmax(hidden @ weight.T + bias, -1).gather(-1, labels[:, None]).squeeze(-1)
    torch.testing.assert_close(ours, ref, **TOL)
    g_ours = torch.autograd.grad((ours * up).sum(), [hidden, weight, bias])
    g_ref = torch.autograd.grad((ref * up).sum(), [hidden, weight, bias])
    for a, b in zip(g_ours, g_ref, strict=True):
        torch.testing.assert_close(a, b, **TOL)


def test_chunk_size_must_be_positive(tiny):
    ids, attn, labels = padded_batch(tiny.config.vocab_size)
    with pytest.raises(ValueError, match="chunk_size"):
        label_logprobs(tiny, ids, attn, labels, chunk_size=0)


def test_response_logprobs_aligns_contexts_by_response_position():
    # the same 3-token response after prompts of length 4 (judged) and 2 (plain), right-padded
    labels = torch.tensor(
        [[-100, -100, -100, -100, 11, 12, 13], [-100, -100, 11, 12, 13, -100, -100]]
    )
    logp = torch.where(labels != -100, labels.float() / -10, 0.0)
    values, mask = response_logprobs(logp, labels)
    assert values.shape == mask.shape == (2, 3) and mask.all()
    torch.testing.assert_close(values[0], values[1])
    torch.testing.assert_close(values[0], torch.tensor([-1.1, -1.2, -1.3]))


def test_response_logprobs_matches_a_loop_and_keeps_grad():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 9, (5, 11), generator=g)
    labels[torch.rand(5, 11, generator=g) < 0.5] = -100
    labels[3] = -100  # a row with nothing scored
    logp = torch.randn(5, 11, generator=g, requires_grad=True)
    values, mask = response_logprobs(logp, labels)
    rows = [[logp[r, t] for t in range(1, 11) if labels[r, t] != -100] for r in range(5)]
    assert values.shape[1] == max(len(r) for r in rows)
    for r, row in enumerate(rows):
        assert mask[r].sum() == len(row) and mask[r, : len(row)].all()
        if row:
            torch.testing.assert_close(values[r, : len(row)], torch.stack(row))
        assert (values[r, len(row) :] == 0).all()
    values.sum().backward()
    torch.testing.assert_close(logp.grad, (labels != -100).float() * (torch.arange(11) > 0))


def test_left_aligned_equals_response_logprobs_of_label_logprobs(tiny):
    ids, attn, labels = padded_batch(tiny.config.vocab_size)
    full = label_logprobs(tiny, ids, attn, labels, chunk_size=5)
    v1, m1 = response_logprobs(full, labels)
    v2, m2 = label_logprobs_left_aligned(tiny, ids, attn, labels, chunk_size=5)
    assert torch.equal(m1, m2)
    torch.testing.assert_close(v1, v2)


# ---------------------------------------------------------------------------------------------
# chunk size following the vocabulary (a bound on the head's extra peak memory)


@pytest.mark.parametrize(
    ("vocab_size", "memory_mb", "rows"),
    [
        (32_000, CHUNK_MEMORY_MB, 307),
        (49_152, CHUNK_MEMORY_MB, 200),
        (128_256, CHUNK_MEMORY_MB, 76),
        (256_000, CHUNK_MEMORY_MB, 38),
        (128_256, 512, 307),
        (128_256, 0.001, 1),  # a bound below one row still gives one row
    ],
)
def test_chunk_rows_keep_the_heads_peak_chunks_within_the_bound(vocab_size, memory_mb, rows):
    """The head peaks at HEAD_PEAK_CHUNKS chunks of fp32 logits (measured in
    test_chunked_head_memory.py): as many rows as keep those within memory_mb."""
    assert (CHUNK_MEMORY_MB, HEAD_PEAK_CHUNKS) == (128, 3.25)
    assert chunk_rows(vocab_size, memory_mb) == rows
    if rows > 1:  # the largest count that fits: one more row would pass the bound
        peak = HEAD_PEAK_CHUNKS * vocab_size * 4  # bytes per row
        assert rows * peak <= memory_mb * 1e6 < (rows + 1) * peak


@pytest.mark.parametrize("memory_mb", [0, -1.0, math.nan, math.inf])
def test_chunk_rows_refuses_a_budget_that_is_not_finite_positive(memory_mb):
    with pytest.raises(ValueError, match="chunk_memory_mb must be a finite number > 0"):
        chunk_rows(128_256, memory_mb)


def test_chunk_size_auto_is_the_default_and_follows_the_vocabulary(monkeypatch):
    """label_logprobs, label_logprobs_left_aligned and chunked_label_logprobs chunk by chunk_rows(V) of
    the output layer unless told otherwise, and give what a fixed chunk gives."""
    seen = []
    chunked = logprobs_module._chunked
    monkeypatch.setattr(
        logprobs_module,
        "_chunked",
        lambda project, hidden, labels, size: (
            seen.append(size) or chunked(project, hidden, labels, size)
        ),
    )
    for vocab_size in (300, 100_000):
        model = tiny_model(vocab_size=vocab_size, hidden_size=16, dtype=torch.float64)
        ids, attn, labels = padded_batch(vocab_size)
        seen.clear()
        auto = label_logprobs(model, ids, attn, labels)
        label_logprobs_left_aligned(model, ids, attn, labels)
        rows = model.lm_head.weight[:3].double()
        chunked_label_logprobs(rows, model.lm_head.weight, torch.tensor([0, 1, 2]))
        assert seen == [chunk_rows(vocab_size)] * 3 == [model_chunk_rows(model)] * 3
        fixed = label_logprobs(model, ids, attn, labels, chunk_size=3)
        torch.testing.assert_close(auto, fixed, **TOL)
    assert chunk_rows(300) == 32_820 and chunk_rows(100_000) == 98


def test_model_chunk_rows_reads_the_head_through_peft_and_a_smaller_budget_chunks_more():
    from peft import LoraConfig, get_peft_model

    model = tiny_model(vocab_size=512, tie_word_embeddings=False, dtype=torch.float64)
    budget = 3.5 * HEAD_PEAK_CHUNKS * 512 * 4 / 1e6  # the head's peak for 3.5 rows at V = 512
    assert model_chunk_rows(model, budget) == 3
    for targets, extra in ((["lm_head"], {}), (["up_proj"], {"modules_to_save": ["lm_head"]})):
        config = LoraConfig(r=2, target_modules=targets, init_lora_weights=False, **extra)
        peft_model = get_peft_model(tiny_model(vocab_size=512, tie_word_embeddings=False), config)
        assert model_chunk_rows(peft_model) == chunk_rows(512)
        assert model_chunk_rows(peft_model, budget) == 3
    assert_matches_naive(model, model_chunk_rows(model, budget))


def test_chunk_size_refuses_other_strings(tiny):
    ids, attn, labels = padded_batch(tiny.config.vocab_size)
    with pytest.raises(ValueError, match="chunk_size must be an integer >= 1, 'auto' or None"):
        label_logprobs(tiny, ids, attn, labels, chunk_size="big")
