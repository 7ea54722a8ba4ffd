"""Padding-free packing: one row of contexts with restarting position ids gives the padded layout's
scores, loss and gradients, under every attention implementation, and in the trainer; plus
length-grouped batching for the padded layout."""

from __future__ import annotations

import pytest
import torch

from cutkit.data.records import JudgmentRecord
from cutkit.models.lora import apply_lora
from cutkit.models.tiny import tiny_model
from cutkit.train.attention import (
    VARLEN_ATTENTION,
    context_boundaries,
    use_varlen_attention,
    varlen_attention_forward,
)
from cutkit.train.batching import (
    IGNORE_INDEX,
    CUTCollator,
    build_examples,
    context_length,
    pack_contexts,
)
from cutkit.train.logprobs import context_index, label_logprobs_left_aligned, response_token_mask
from cutkit.train.losses import cut_loss
from cutkit.train.objectives import build_objective_examples
from tests.helpers import (
    arithmetic_records,
    assert_same_weights,
    lora_weights,
    make_trainer,
    mixed_records,
)


def collate_both(tokenizer, examples):
    padded = CUTCollator(tokenizer.pad_token_id)(examples)
    packed = CUTCollator(tokenizer.pad_token_id, packing=True)(examples)
    return padded, packed


def cut_step(model, batch):
    """Loss, (R, Lr) log-probs and mask, and every parameter's gradient of one CUT step."""
    model.zero_grad(set_to_none=True)
    logp, mask = label_logprobs_left_aligned(
        model,
        batch["input_ids"],
        batch.get("attention_mask"),
        batch["labels"],
        position_ids=batch.get("position_ids"),
        chunk_size=7,
    )
    n = batch["negative"].shape[0]
    out = cut_loss(logp[:n], logp[batch["plain_row"]], mask[:n], batch["negative"])
    out.loss.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    return out.loss.detach(), logp.detach(), mask, grads


# ------------------------------------------------------------------------------- the layout


def test_packed_layout_has_no_padding_and_restarts_positions(tokenizer):
    examples, _ = build_examples(mixed_records(), tokenizer, "chat")
    padded, packed = collate_both(tokenizer, examples)
    assert set(packed) == {"input_ids", "labels", "position_ids", "negative", "plain_row"}
    real = padded["attention_mask"].bool()
    assert packed["input_ids"].shape == (1, int(real.sum()))  # every token real, none padding
    # the same contexts in the same order: row r of the padded batch is context r of the row
    assert torch.equal(packed["input_ids"][0], padded["input_ids"][real])
    assert torch.equal(packed["labels"][0], padded["labels"][real])
    lengths = real.sum(1)
    expected_positions = torch.cat([torch.arange(int(n)) for n in lengths])
    assert torch.equal(packed["position_ids"][0], expected_positions)
    assert torch.equal(
        context_boundaries(packed["position_ids"]).long(),
        torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)]),
    )
    assert torch.equal(context_index(packed["position_ids"]).bincount(), lengths)
    assert torch.equal(packed["negative"], padded["negative"])
    assert torch.equal(packed["plain_row"], padded["plain_row"])


def test_a_context_is_never_scored_from_the_one_before():
    # an empty prompt would make the response's first token predictable from the previous context:
    # the packed layout leaves it unscored, as position 0 of a padded row is
    packed = pack_contexts([([1, 2], [3, 4]), ([], [5, 6, 7])])
    assert packed["labels"].tolist() == [[IGNORE_INDEX, IGNORE_INDEX, 3, 4, IGNORE_INDEX, 6, 7]]
    assert packed["position_ids"].tolist() == [[0, 1, 2, 3, 0, 1, 2]]
    with pytest.raises(ValueError, match="empty context"):
        pack_contexts([([1], [2]), ([], [])])


def test_context_length_counts_every_row_an_example_adds(tokenizer):
    examples, _ = build_examples(mixed_records(), tokenizer, "chat")
    for example in examples:
        batch = CUTCollator(tokenizer.pad_token_id, packing=True)([example])
        assert context_length(example) == batch["input_ids"].shape[1], example["id"]


def test_response_token_mask_matches_the_scored_mask(tokenizer, tiny):
    examples, _ = build_examples(mixed_records(), tokenizer, "chat")
    padded, packed = collate_both(tokenizer, examples)
    _, mask = label_logprobs_left_aligned(
        tiny, padded["input_ids"], padded["attention_mask"], padded["labels"]
    )
    assert torch.equal(response_token_mask(padded["labels"]), mask)
    assert torch.equal(response_token_mask(packed["labels"], packed["position_ids"]), mask)
    with pytest.raises(ValueError, match=r"shape \(1, S\)"):
        context_index(torch.zeros(2, 5, dtype=torch.long))


# ------------------------------------------------------------------------------- equivalence


@pytest.mark.parametrize("attention", ["sdpa", "eager", VARLEN_ATTENTION])
def test_packed_gives_the_padded_loss_and_gradients(tokenizer, attention):
    examples, _ = build_examples(mixed_records(), tokenizer, "chat")
    padded, packed = collate_both(tokenizer, examples)
    model = apply_lora(
        tiny_model(seed=0), {"r": 4, "lora_dropout": 0.0, "init_lora_weights": "gaussian"}
    ).double()
    if attention == VARLEN_ATTENTION:
        assert use_varlen_attention(model) == VARLEN_ATTENTION
    else:
        model.get_base_model().set_attn_implementation(attention)
    loss_a, logp_a, mask_a, grads_a = cut_step(model, padded)
    loss_b, logp_b, mask_b, grads_b = cut_step(model, packed)
    assert torch.equal(mask_a, mask_b)
    torch.testing.assert_close(logp_b, logp_a, rtol=0, atol=1e-12)
    torch.testing.assert_close(loss_b, loss_a, rtol=0, atol=1e-12)
    assert grads_a.keys() == grads_b.keys() and grads_a  # the LoRA weights got gradients
    for key in grads_a:
        torch.testing.assert_close(grads_b[key], grads_a[key], rtol=1e-9, atol=1e-12, msg=key)


def test_context_boundaries_are_computed_once_per_forward(tokenizer, monkeypatch):
    """label_logprobs hands the boundaries to every layer (flash-attention varlen kwargs), so the
    attention never derives them itself: on CUDA each derivation is a device-to-host sync."""
    import cutkit.train.attention

    examples, _ = build_examples(mixed_records(), tokenizer, "chat")
    packed = CUTCollator(tokenizer.pad_token_id, packing=True)(examples)
    model = tiny_model(seed=0)
    assert model.config.num_hidden_layers > 1
    use_varlen_attention(model)
    calls = []
    derive = cutkit.train.attention.context_boundaries
    monkeypatch.setattr(
        cutkit.train.attention, "context_boundaries", lambda ids: calls.append(1) or derive(ids)
    )
    args = (packed["input_ids"], None, packed["labels"])
    with torch.no_grad():
        label_logprobs_left_aligned(model, *args, position_ids=packed["position_ids"])
    assert len(calls) == 1


def test_varlen_attention_is_plain_sdpa_outside_packed_batches(tokenizer):
    """A model switched to cutkit_varlen still scores padded batches and generates as with sdpa."""
    examples, _ = build_examples(mixed_records(), tokenizer, "chat")
    padded = CUTCollator(tokenizer.pad_token_id)(examples)
    reference, switched = tiny_model(seed=0).double(), tiny_model(seed=0).double()
    use_varlen_attention(switched)
    args = (padded["input_ids"], padded["attention_mask"], padded["labels"])
    with torch.no_grad():
        expected = label_logprobs_left_aligned(reference, *args)
        got = label_logprobs_left_aligned(switched, *args)
    torch.testing.assert_close(got[0], expected[0], rtol=0, atol=1e-12)
    prompt = padded["input_ids"][:1, :12]
    generate = dict(max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert torch.equal(
        switched.generate(prompt, **generate), reference.generate(prompt, **generate)
    )


def test_varlen_attention_refuses_attention_dropout():
    q = torch.randn(1, 2, 4, 8)
    positions = torch.tensor([[0, 1, 0, 1]])
    with pytest.raises(ValueError, match="dropout"):
        varlen_attention_forward(
            torch.nn.Module(), q, q, q, None, dropout=0.1, position_ids=positions
        )


def test_models_already_on_flash_attention_keep_it():
    model = tiny_model()
    model.config._attn_implementation = "flash_attention_2"  # no kernel needed to read the name
    assert use_varlen_attention(model) == "flash_attention_2"


# ------------------------------------------------------------------------------- the trainer


@pytest.mark.parametrize("objective", ["cut", "hindsight", "forward", "self_distill"])
def test_trainer_with_packing_takes_the_padded_steps(tokenizer, tmp_path, objective):
    """Two optimizer steps of 2 micro-batches x 3 records: same losses, same weights after."""
    data = arithmetic_records(6)
    common = dict(
        max_steps=2,
        per_device_train_batch_size=3,
        gradient_accumulation_steps=2,
        normalization="token",
        objective=objective,
    )
    padded = make_trainer(data, tokenizer, tmp_path / "padded", **common)
    packed = make_trainer(data, tokenizer, tmp_path / "packed", packing=True, **common)
    assert packed.data_collator.packing and not padded.data_collator.packing
    assert packed.model.config._attn_implementation == VARLEN_ATTENTION
    padded.train()
    packed.train()
    assert_same_weights(lora_weights(packed), lora_weights(padded), atol=1e-5)
    logs = [[h for h in t.state.log_history if "loss" in h] for t in (padded, packed)]
    assert len(logs[0]) == len(logs[1]) == 2
    for a, b in zip(*logs, strict=True):
        for key in ("loss", "loss/mle", "loss/ul", "num_tokens"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-4), key


def test_group_by_length_batches_records_of_similar_length(tokenizer, tmp_path):
    records = []
    for i in range(128):  # response lengths 1..32 words, in shuffled order
        words = " ".join(["word"] * (1 + (i * 13) % 32))
        records.append(JudgmentRecord(f"r{i}", f"Repeat {i}.", words))
    trainer = make_trainer(
        records,
        tokenizer,
        tmp_path,
        max_steps=1,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=1,
        train_sampling_strategy="group_by_length",
    )
    examples = trainer.train_dataset
    order = list(trainer._get_train_sampler())
    assert sorted(order) == list(range(len(examples)))
    lengths = [context_length(examples[i]) for i in order]
    # transformers sorts within mega-batches of min(n // (4 * batch), 50) batches: here 8 x 4
    spread = [max(lengths[i : i + 4]) - min(lengths[i : i + 4]) for i in range(0, 128, 4)]
    random_spread = [  # the same examples in their dataset order
        max(x) - min(x)
        for x in ([context_length(e) for e in examples[i : i + 4]] for i in range(0, 128, 4))
    ]
    assert sum(spread) < sum(random_spread) / 3  # grouped micro-batches pad far less
    trainer.train()  # and it trains through the sampler
    assert trainer.state.global_step == 1


def test_objective_examples_pack_like_cut_examples(tokenizer):
    """Baselines' examples (plain-row-free negatives, unscored continuation) pack exactly too."""
    examples, _ = build_objective_examples(mixed_records(), tokenizer, "forward", "chat")
    padded, packed = collate_both(tokenizer, examples)
    real = padded["attention_mask"].bool()
    assert torch.equal(packed["labels"][0], padded["labels"][real])
