"""The paper's baselines as CUTConfig objectives: the examples each one builds, its loss against a
direct full-softmax float64 computation on the tiny model, and short training runs."""

from __future__ import annotations

import math

import pytest
import torch

from cutkit.data.records import JudgmentRecord, RecordError
from cutkit.data.templates import get_template
from cutkit.models.tiny import tiny_model
from cutkit.train.batching import IGNORE_INDEX, CUTCollator, build_examples
from cutkit.train.config import CUTConfig
from cutkit.train.losses import cut_loss
from cutkit.train.objectives import (
    FORWARD_ALPACA_MARKER,
    FORWARD_CHAT_REQUEST,
    OBJECTIVES,
    build_objective_examples,
)
from cutkit.train.trainer import CUTTrainer
from tests.helpers import arithmetic_records, make_trainer

NEG1 = JudgmentRecord(
    "n1", "Capital of Australia?", "Sydney.", "Wrong: it is Canberra.", refinement="Canberra."
)
NEG2 = JudgmentRecord(
    "n2", "What is 3 + 4?", "It is 8.", "Incorrect sum, 3 + 4 is 7.", refinement="It is 7."
)
POS1 = JudgmentRecord("p1", "Say hi.", "Hi there!")
POS2 = JudgmentRecord("p2", "Name a colour.", "Blue.", "Perfect, a colour.")  # commended positive
RECORDS = [NEG1, POS1, NEG2, POS2]


def scored(batch, row: int) -> list[int]:
    labels = batch["labels"][row]
    return labels[labels != IGNORE_INDEX].tolist()


# ----------------------------------------------------------------------------- config


def test_unknown_objective_raises_listing_the_choices():
    with pytest.raises(
        ValueError,
        match=r"'cut', 'sft', 'hindsight', 'forward', 'ilf', 'ul_all', 'self_distill'.*'rlhf'",
    ):
        CUTConfig(output_dir="x", objective="rlhf")
    with pytest.raises(ValueError, match="train_dpo"):
        CUTConfig(output_dir="x", objective="dpo")
    with pytest.raises(ValueError, match="train_kto"):
        CUTConfig(output_dir="x", objective="kto")
    assert OBJECTIVES == ("cut", "sft", "hindsight", "forward", "ilf", "ul_all", "self_distill")


def test_objectives_fix_their_defining_switches_only():
    settings = {o: CUTConfig(output_dir="x", objective=o).loss_settings() for o in OBJECTIVES}
    assert settings["hindsight"]["misalign"] is False
    assert settings["ul_all"]["detect"] is False and settings["ul_all"]["misalign"] is True
    assert settings["self_distill"]["align_n"] is False and settings["self_distill"]["misalign"]
    assert settings["self_distill"]["distill_weight"] == 1.0
    assert "distill_weight" not in settings["cut"]
    assert all(settings[o]["align_p"] for o in ("sft", "forward", "ilf"))
    ablated = CUTConfig(output_dir="x", objective="ul_all", align_n=False, misalign=False)
    assert ablated.loss_settings()["align_n"] is False and ablated.loss_settings()["misalign"]
    assert settings["cut"] == CUTConfig(output_dir="x").loss_settings()


# ----------------------------------------------------------------------------- examples


def test_cut_and_ul_all_build_the_cut_examples(tokenizer):
    cut, _ = build_examples(RECORDS, tokenizer)
    for objective in ("cut", "ul_all"):
        examples, report = build_objective_examples(RECORDS, tokenizer, objective)
        assert examples == cut and report.objective == objective


def test_sft_keeps_positives_only_and_needs_one(tokenizer):
    examples, report = build_objective_examples(RECORDS, tokenizer, "sft", align_p_ratio=0.25)
    assert [e["id"] for e in examples] == ["p1", "p2"], "every positive: no downsampling"
    assert report.n_negative_dropped == 2 and report.n_records == 4
    batch = CUTCollator(tokenizer.pad_token_id)(examples)
    assert batch["input_ids"].shape[0] == 2 and not batch["negative"].any()
    t = get_template("alpaca")
    assert scored(batch, 0) == t.response_ids(tokenizer, POS1.response)
    assert batch["input_ids"][0, : len(examples[0]["plain_prompt_ids"])].tolist() == (
        t.prompt_ids(tokenizer, t.plain(POS1.instruction))
    )
    with pytest.raises(ValueError, match="'sft' trains on positive records only"):
        build_objective_examples([NEG1, NEG2], tokenizer, "sft")


def test_hindsight_scores_negatives_in_the_judged_context_only(tokenizer):
    examples, _ = build_objective_examples(RECORDS, tokenizer, "hindsight")
    batch = CUTCollator(tokenizer.pad_token_id)(examples)
    assert batch["input_ids"].shape[0] == 4, "no plain rows"
    assert batch["plain_row"].tolist() == [0, 1, 2, 3]
    t = get_template("alpaca")
    for row, record in enumerate(RECORDS):
        prompt = (
            t.judged(record.instruction, record.judgment)
            if record.is_negative
            else t.plain(record.instruction)
        )
        prompt_ids = t.prompt_ids(tokenizer, prompt)
        assert batch["input_ids"][row, : len(prompt_ids)].tolist() == prompt_ids
        assert scored(batch, row) == t.response_ids(tokenizer, record.response)


def test_ilf_trains_on_refinements_and_refuses_negatives_without_one(tokenizer):
    examples, report = build_objective_examples(RECORDS, tokenizer, "ilf")
    t = get_template("alpaca")
    expected = [NEG1.refinement, POS1.response, NEG2.refinement, POS2.response]
    assert [e["response_ids"] for e in examples] == [t.response_ids(tokenizer, r) for r in expected]
    assert not any(e["negative"] for e in examples) and report.n_refined == 2
    assert all(
        e["plain_prompt_ids"] == t.prompt_ids(tokenizer, t.plain(r.instruction))
        for e, r in zip(examples, RECORDS, strict=True)
    )
    bare = JudgmentRecord("bare-7", "Q?", "A.", "Wrong.")
    with pytest.raises(RecordError, match=r"record 1, field 'refinement': .*'bare-7'"):
        build_objective_examples([POS1, bare], tokenizer, "ilf")


def test_forward_scores_response_then_judgment_not_the_marker(tokenizer):
    examples, _ = build_objective_examples(RECORDS, tokenizer, "forward")
    batch = CUTCollator(tokenizer.pad_token_id)(examples)
    assert batch["input_ids"].shape[0] == 4 and not batch["negative"].any()
    t = get_template("alpaca")
    marker = tokenizer(FORWARD_ALPACA_MARKER, add_special_tokens=False)["input_ids"]
    for row, record in enumerate(RECORDS):
        response = t.response_ids(tokenizer, record.response)
        judgment = t.response_ids(tokenizer, record.judgment) if record.judgment else []
        assert scored(batch, row) == response + judgment
        prompt = t.prompt_ids(tokenizer, t.plain(record.instruction))
        full = prompt + response + (marker + judgment if judgment else [])
        assert batch["input_ids"][row, : len(full)].tolist() == full
        assert batch["attention_mask"][row].sum() == len(full)
    assert examples[1]["judgment_start"] is None, "no judgment: the response term only"
    assert tokenizer.decode(scored(batch, 0)).endswith("Canberra.<|im_end|>")


def test_forward_chat_puts_the_judgment_in_a_following_assistant_turn(tokenizer):
    (example,), _ = build_objective_examples([NEG1], tokenizer, "forward", "chat")
    start = example["judgment_start"]
    text = tokenizer.decode(example["response_ids"])
    assert text == (
        f"Sydney.<|im_end|>\n<|im_start|>user\n{FORWARD_CHAT_REQUEST}<|im_end|>\n"
        "<|im_start|>assistant\nWrong: it is Canberra.<|im_end|>"
    )
    labels = example["response_labels"]
    assert labels[:start] == example["response_ids"][:start]
    assert tokenizer.decode([x for x in labels[start:] if x != IGNORE_INDEX]) == (
        "Wrong: it is Canberra.<|im_end|>"
    )


def test_forward_cuts_the_judgment_to_the_response_budget(tokenizer):
    long = JudgmentRecord("l", "Q?", "Bad.", "Wrong " * 50)
    (example,), report = build_objective_examples(
        [long], tokenizer, "forward", max_length=64, max_response_length=20
    )
    assert len(example["response_ids"]) == 20 and report.n_response_truncated == 1
    assert example["response_ids"][:3] == get_template("alpaca").response_ids(tokenizer, "Bad.")


def test_downsampling_selects_the_same_records_for_every_objective_but_sft(tokenizer):
    data = arithmetic_records(4, refinements=True) + [
        JudgmentRecord(f"q{i}", f"Q{i}?", f"A{i}.") for i in range(4)
    ]
    ids = {}
    for objective in OBJECTIVES:
        examples, report = build_objective_examples(
            data, tokenizer, objective, align_p_ratio=0.25, seed=3
        )
        ids[objective] = [e["id"] for e in examples]
        assert report.n_records == 8 + 4
    assert len(ids["cut"]) == 4 + 1
    same = ("hindsight", "ul_all", "forward", "ilf", "self_distill")
    assert all(ids[o] == ids["cut"] for o in same)
    assert len(ids["sft"]) == 8


def test_every_objective_refuses_junk(tokenizer):
    junk = JudgmentRecord("j", "Q?", "A.", "$ERROR$", refinement="B.")
    for objective in OBJECTIVES:
        with pytest.raises(RecordError, match="lenient=True"):
            build_objective_examples([POS1, junk], tokenizer, objective)


# ----------------------------------------------------------------------------- losses


def _direct_distributions(model, prompt: list[int], continuation: list[int]) -> torch.Tensor:
    """Full-softmax log p (len(continuation), V) of the next token at every continuation
    position after prompt, float64."""
    ids = torch.tensor([prompt + continuation])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].double()  # (T, V)
    positions = torch.arange(len(prompt) - 1, len(prompt) + len(continuation) - 1)
    return torch.log_softmax(logits, dim=-1)[positions]


def _direct_logps(model, prompt: list[int], continuation: list[int]) -> torch.Tensor:
    """Full-softmax log p of every continuation token after prompt, float64."""
    logp = _direct_distributions(model, prompt, continuation)
    return logp[torch.arange(len(continuation)), torch.tensor(continuation)]


def _direct_loss(model, tokenizer, objective: str, threshold: float = 1.1) -> float:
    """The objective's 'official' loss on RECORDS, written out from its equation."""
    t = get_template("alpaca")
    ids = lambda text: t.response_ids(tokenizer, text)  # noqa: E731
    plain = lambda r: t.prompt_ids(tokenizer, t.plain(r.instruction))  # noqa: E731
    judged = lambda r: t.prompt_ids(tokenizer, t.judged(r.instruction, r.judgment))  # noqa: E731
    likelihood, misalign = [], []  # per-token log-probs / per-token Misalign losses
    for r in RECORDS:
        if objective == "sft" and r.is_negative:
            continue
        if objective == "ilf":
            likelihood.append(_direct_logps(model, plain(r), ids(r.refinement or r.response)))
        elif objective == "forward":
            response = ids(r.response)
            cont = response
            if r.judgment:
                marker = tokenizer(FORWARD_ALPACA_MARKER, add_special_tokens=False)["input_ids"]
                cont = response + marker + ids(r.judgment)
            lp = _direct_logps(model, plain(r), cont)
            keep = [k < len(response) or k >= len(response) + len(marker) for k in range(len(cont))]
            likelihood.append(lp[torch.tensor(keep)])
        elif r.is_positive:
            likelihood.append(_direct_logps(model, plain(r), ids(r.response)))
        else:
            if objective == "self_distill":  # KL(judged || plain) over the vocabulary
                q = _direct_distributions(model, judged(r), ids(r.response))
                p = _direct_distributions(model, plain(r), ids(r.response))
                misalign.append((q.exp() * (q - p)).sum(-1))
                continue
            lj = _direct_logps(model, judged(r), ids(r.response))
            lp = _direct_logps(model, plain(r), ids(r.response))
            likelihood.append(lj)
            if objective in ("cut", "ul_all"):
                flagged = (
                    torch.ones_like(lj, dtype=torch.bool)
                    if objective == "ul_all"
                    else lj > lp + math.log(threshold)
                )
                misalign.append(torch.where(flagged, -torch.log1p(-lp.exp()), -lp))
    l_like = -torch.cat(likelihood).mean()
    if not misalign:
        return float(l_like)
    return float((l_like + torch.cat(misalign).mean()) / 2)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_loss_equals_a_direct_float64_computation(tokenizer, tmp_path, objective):
    model = tiny_model(seed=1, dtype=torch.float64)
    config = CUTConfig(
        output_dir=str(tmp_path), objective=objective, align_p_ratio=None, use_cpu=True
    )
    trainer = CUTTrainer(model, config, train_dataset=RECORDS, processing_class=tokenizer)
    batch = trainer.data_collator(trainer.train_dataset)
    with torch.no_grad():
        out = trainer.cut_loss_output(model, batch)
    assert out.loss.dtype == torch.float64
    expected = _direct_loss(model, tokenizer, objective)
    assert float(out.loss) == pytest.approx(expected, rel=1e-10)
    if objective == "cut":  # the detection is non-trivial on these records
        assert out.flagged.any() and not out.flagged[batch["negative"]].all()
    if objective not in ("cut", "ul_all", "self_distill"):
        assert float(out.ul) == 0
    if objective == "self_distill":
        assert float(out.ul) > 0 and "distill/kl" in out.metrics()


def test_ul_all_flags_every_negative_token(tokenizer, tmp_path):
    trainer = make_trainer(
        arithmetic_records(3, refinements=True),
        tokenizer,
        tmp_path,
        objective="ul_all",
        max_steps=1,
    )
    batch = trainer.data_collator(trainer.train_dataset)
    n = batch["negative"].shape[0]
    with torch.no_grad():
        out = trainer.cut_loss_output(trainer.model, batch)
    mask = (batch["labels"][:n] != IGNORE_INDEX).sum(1)  # response tokens per example
    expected = torch.arange(out.flagged.shape[1])[None, :] < mask[:, None]
    assert torch.equal(out.flagged, expected & batch["negative"][:, None])
    assert out.metrics()["ul/flagged_frac"] == 1.0


# ----------------------------------------------------------------------------- training


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_a_short_run_lowers_the_loss(tokenizer, tmp_path, objective):
    trainer = make_trainer(
        arithmetic_records(2, refinements=True),
        tokenizer,
        tmp_path,
        objective=objective,
        max_steps=3,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=1,
    )
    batch = trainer.data_collator(trainer.train_dataset)
    n = batch["negative"].shape[0]

    def loss(flagged=None):
        """The objective on the whole data set; CUT's with the given flags (its detection is a
        moving target: each step descends the loss with the flags of that step)."""
        with torch.no_grad():
            if objective == "self_distill":  # no flags: the loss is a fixed function
                return trainer.cut_loss_output(trainer.model, batch)
            logp, mask = trainer._response_logprobs(trainer.model, batch)
            return cut_loss(
                logp[:n],
                logp[batch["plain_row"]],
                mask[:n],
                batch["negative"],
                flagged=flagged,
                **trainer.args.loss_settings(),
            )

    before = loss()
    trainer.train()
    assert float(loss(before.flagged).loss) < float(before.loss) - 0.5
    history = [h for h in trainer.state.log_history if "loss" in h]
    assert all("loss/mle" in h and "num_tokens" in h for h in history)
    for h in history:
        assert h["loss"] == pytest.approx(h["loss/mle"] + h["loss/ul"], rel=1e-4)
    if objective == "hindsight":
        assert "logps/judged" in history[0]
        assert not any(k in history[0] for k in ("ul/flagged_frac", "logps/plain"))
    if objective in ("sft", "ilf", "forward"):
        assert history[0]["loss/ul"] == 0 and "logps/positive" in history[0]
