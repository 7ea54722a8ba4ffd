"""The step benchmark compares like with like: the released-code re-implementation computes cutkit's
"official" loss, every variant scores the same tokens, and the script runs end to end."""

from __future__ import annotations

import sys

import pytest
import torch

from cutkit.batching import CUTCollator, build_examples
from cutkit.logprobs import label_logprobs_packed
from cutkit.losses import cut_loss
from cutkit.tiny import tiny_model

from .conftest import REPO
from .test_packing import mixed_records

sys.path.insert(0, str(REPO / "benchmarks"))

import bench_step
from released_step import released_collate, released_loss


def test_released_layout_doubles_the_batch_with_all_pad_dummy_rows(tokenizer):
    examples, _ = build_examples(mixed_records(), tokenizer, "chat")  # n, p, n, p
    batch = released_collate(examples, tokenizer.pad_token_id)
    R = len(examples)
    assert batch["input_ids"].shape[0] == 2 * R
    dummy = [R + i for i, ex in enumerate(examples) if not ex["negative"]]
    assert dummy and all(batch["attention_mask"][row].sum() == 0 for row in dummy)
    assert all((batch["labels"][row] == -100).all() for row in dummy)
    lengths = batch["attention_mask"].sum(1)
    assert batch["input_ids"].shape[1] == int(lengths.max())  # one padded length for all rows


@pytest.mark.parametrize("threshold", [1.1, 1e9])
def test_released_loss_is_cutkits_official_loss(tokenizer, threshold):
    """Same model, same records: the released head on its doubled batch and cutkit's chunked
    head + cut_loss(normalization='official') on its dummy-free batch give the same loss and
    the same gradients (threshold 1e9: nothing flagged, every negative token likelihood)."""
    examples, _ = build_examples(mixed_records(), tokenizer, "chat")
    model = tiny_model(seed=0).double()
    released = released_collate(examples, tokenizer.pad_token_id)
    logits = model(
        input_ids=released["input_ids"], attention_mask=released["attention_mask"]
    ).logits
    loss_released = released_loss(logits, released["labels"], released["negative"], threshold)
    loss_released.backward()
    grads_released = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad()

    batch = CUTCollator(tokenizer.pad_token_id)(examples)
    logp, mask = label_logprobs_packed(
        model, batch["input_ids"], batch["attention_mask"], batch["labels"]
    )
    n = len(examples)
    out = cut_loss(
        logp[:n], logp[batch["plain_row"]], mask[:n], batch["negative"], threshold=threshold
    )
    out.loss.backward()
    # the released code adds 1e-5 to 1 - p only where it is exactly 0: never here
    torch.testing.assert_close(out.loss, loss_released, rtol=1e-10, atol=1e-10)
    for key, param in model.named_parameters():
        torch.testing.assert_close(param.grad, grads_released[key], rtol=1e-7, atol=1e-10)


def test_step_benchmark_runs_every_variant_on_the_same_tokens(tmp_path):
    results = bench_step.main(
        ["--model", "tiny", "--micro-batch", "2", "--steps", "1", "--warmup", "0",
         "--out", str(tmp_path / "step")]
    )  # fmt: skip
    assert [r["variant"] for r in results] == list(bench_step.VARIANTS)
    assert all("error" not in r for r in results), results
    assert len({(r["tokens"], r["scored_tokens"]) for r in results}) == 1  # identical work
    packed = results[-1]
    assert packed["max_logp_diff_vs_padded"] < 1e-3  # fp32 on CPU
    assert all(r["tokens_per_s"] > 0 and r["peak_gib"] > 0 for r in results)
    ratios = bench_step.ratios(results)
    assert {r["variant"] for r in ratios} == {"cutkit", "cutkit-packed"}
    assert all(r["speed_vs_released"] and r["time_per_scored_vs_trl"] for r in ratios)
    report = (tmp_path / "step.md").read_text()
    assert "| tiny | lora | 2 | released |" in report and "time/scored vs TRL" in report


def test_lengths_follow_the_official_sample_profile():
    examples = bench_step.draw_examples(400, vocab=49152, eos=2, seed=0)
    profile = bench_step.json.loads(bench_step.PROFILE.read_text())
    share = profile["negative"] / profile["examples"]
    negatives = sum(ex["negative"] for ex in examples) / len(examples)
    assert abs(negatives - share) < 0.08
    known = {tuple(row) for row in profile["lengths"]}
    for ex in examples:
        judged = len(ex["judged_prompt_ids"] or ())
        assert (len(ex["plain_prompt_ids"]), judged, len(ex["response_ids"])) in known
        assert ex["response_ids"][-1] == 2
