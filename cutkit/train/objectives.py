r"""Training objectives: CUT and the paper's baselines on the same records (docs/method.md §8).

Every objective is a choice of *examples* built from the records plus a setting of the
:func:`cutkit.train.losses.cut_loss` switches; none needs loss code of its own. Notation: P / N the
positive / negative records, x the plain prompt, (x, j) the judged prompt, y the response ids
(+ EOS), y' the refinement ids (+ EOS), ``mean`` the normalisation the config selects
(``"official"``: token mean per micro-batch, ``"paper"``: per-example means, ``"token"``).

- ``cut`` (default): L = L_like + L_ul exactly as :mod:`cutkit.train.losses` documents:
  -log p(y | x) on P (Align-P), -log p(y | x, j) on N (Align-N), and on N in the plain context
  -w log(1 - p(y_t | x)) on flagged tokens, -log p(y_t | x) on the others (Misalign).
- ``sft``: L = mean_{P} -log p(y | x). Negatives are dropped (counted in the build report); a data
  set without positives raises. Align-P downsampling does not apply (it keeps positives in proportion
  to negatives, which SFT does not train on): every positive is used.
- ``hindsight`` (Chain-of-Hindsight style, "CUT without L1"): L = mean( -log p(y | x) on P,
  -log p(y | x, j) on N ) = ``cut`` with ``misalign=False``. Positives stay in the plain context
  (as in CUT's Align-P, so Hindsight differs from CUT by L1 alone, and positives usually have no
  judgment text anyway). Negatives are scored in the judged context only: no plain row is built,
  and the plain-context metrics (ul/flagged_frac, ul/logratio_mean, logps/plain) are not logged.
- ``forward`` (forward prediction): L = mean( -log p(y | x) - log p(j | x, y, m) ), one sequence
  per record: plain prompt, then y (+ EOS), then a judgment marker m (context, not scored), then j
  (+ EOS) (scored). m is ``"\n\n### Judgment:\n"`` for the alpaca template; for the chat template
  the judgment is the assistant's answer to a following user turn :data:`FORWARD_CHAT_REQUEST`
  (the tokenizer's chat template renders the turn boundary; y's EOS closes the assistant turn).
  Records without a judgment text contribute the response term only. The response and the
  judgment together get ``max_response_length`` tokens: y is cut first as in CUT, then j from the
  right (counted as a truncated response).
- ``ilf`` (imitation learning from language feedback, ILF-MLE): L = mean( -log p(y' | x) on N,
  -log p(y | x) on P ). A negative without a refinement raises a :class:`~cutkit.data.records.RecordError`
  naming the record and the field ``refinement``.
- ``ul_all`` (the paper's "no detection" ablation): ``cut`` with ``detect=False``: every token of
  a bad response gets -w log(1 - p(y_t | x)) in the Misalign term (never converges in the paper).
- ``self_distill`` (self-distillation from the judged context, :mod:`cutkit.train.distill`): the
  examples of ``cut``; on N, every response token gets w T^2 KL(q_t || p_t) in the Misalign term,
  q_t the detached softmax of the judged context (x, j) and p_t the plain context's (x), over the
  full vocabulary; -log p(y | x) on P (Align-P); no Align-N (the judged context is the teacher,
  not trained). ``distill_weight`` w, ``distill_temperature`` T, ``distill_top_k``.

Align-P downsampling (``align_p_ratio``) is applied to the records before the objective transforms
them, so ``cut``, ``hindsight``, ``ul_all``, ``forward`` and ``ilf`` see the same records (the
positives kept in proportion to the negatives); ``sft`` keeps all positives (see above). Junk
judgments are refused by every objective, as by CUT. The objective fixes the switches that define
it (``hindsight``: misalign=False; ``ul_all``: detect=False, misalign=True; ``self_distill``:
align_n=False, misalign=True; ``sft``, ``forward``,
``ilf``: align_p=True, all their rows being likelihood rows); the other switches apply as configured.
DPO (refinement preferred over response) and KTO (good / bad labels) go through TRL: see
:mod:`cutkit.train.dpo` and :mod:`cutkit.train.kto`.

>>> objective_switches("hindsight", {"misalign": True, "detect": True})
{'misalign': False, 'detect': True}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from cutkit.data.records import JudgmentRecord, refuse_junk, refuse_missing_refinements
from cutkit.data.templates import PromptTemplate, get_template
from cutkit.train.batching import IGNORE_INDEX
from cutkit.train.examples import BuildReport, downsample_positives, tokenize_examples
from cutkit.train.vocabulary import DEFAULT_MAX_LENGTH, DEFAULT_TEMPLATE, OBJECTIVES, TRL_OBJECTIVES

_SWITCHES: dict[str, dict[str, bool]] = {
    "cut": {},
    "sft": {"align_p": True},
    "hindsight": {"misalign": False},
    "forward": {"align_p": True},
    "ilf": {"align_p": True},
    "ul_all": {"detect": False, "misalign": True},
    "self_distill": {"align_n": False, "misalign": True},
}
"""The cut_loss switches each objective fixes (the others apply as configured)."""

PLAIN_CONTEXT_METRICS = ("ul/flagged_frac", "ul/logratio_mean", "logps/plain")
"""Metrics read from the plain (Misalign) context, meaningless when it is not scored."""

FORWARD_ALPACA_MARKER = "\n\n### Judgment:\n"
"""Forward prediction, alpaca template: the (unscored) text between the response's EOS and j."""

FORWARD_CHAT_REQUEST = "Write a judgment of your response."
"""Forward prediction, chat template: the user turn after the response that the judgment answers."""

_SENTINEL = "\x00CUTKIT_RESPONSE\x00"


def check_objective(objective: str) -> str:
    """``objective`` if it is one of :data:`OBJECTIVES`, else a ValueError listing the choices."""
    if objective in OBJECTIVES:
        return objective
    hint = ""
    if objective in TRL_OBJECTIVES:
        hint = (
            f"; {objective.upper()} runs through TRL: use cutkit.train.{objective}.train_"
            f"{objective} (pip install cutkit[dpo])"
        )
    raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}{hint}")


def objective_switches(objective: str, switches: dict[str, Any]) -> dict[str, Any]:
    """``switches`` (cut_loss keyword arguments) with the ones ``objective`` fixes overridden."""
    fixed = _SWITCHES[check_objective(objective)]
    return {**switches, **{k: v for k, v in fixed.items() if k in switches}}


def unused_metrics(objective: str) -> tuple[str, ...]:
    """Metric names the trainer leaves out for ``objective`` (no plain context is scored)."""
    return PLAIN_CONTEXT_METRICS if check_objective(objective) == "hindsight" else ()


def ilf_records(records: Sequence[JudgmentRecord]) -> list[JudgmentRecord]:
    """Each negative record becomes a positive one whose response is its refinement; positives
    are kept. Raises :class:`~cutkit.data.records.RecordError` (field ``refinement``) for a
    negative without one."""
    refuse_missing_refinements(
        records,
        needed_by="objective 'ilf' trains on the refinement of every negative",
        fix="add refinements (e.g. the official data's i_ans), drop those records, or choose "
        "another objective",
    )
    return [record if record.is_positive else _refined(record) for record in records]


def _refined(record: JudgmentRecord) -> JudgmentRecord:
    """A negative record as the positive one ILF trains on: its refinement as the response."""
    return dataclasses.replace(
        record,
        response=record.refinement,
        judgment=None,
        is_positive=True,
        score=None,
        error_spans=[],
        meta={**record.meta, "ilf_refined_from": record.response},
    )


def forward_judgment_marker_ids(tokenizer, template: PromptTemplate) -> list[int]:
    """Token ids between a response's EOS and its judgment in a forward-prediction sequence."""
    if template.name == "alpaca":
        return tokenizer(FORWARD_ALPACA_MARKER, add_special_tokens=False)["input_ids"]
    text = template.tokenizer.apply_chat_template(
        [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": _SENTINEL},
            {"role": "user", "content": FORWARD_CHAT_REQUEST},
        ],
        add_generation_prompt=True,
        tokenize=False,
    )
    if _SENTINEL not in text:
        raise ValueError("the chat template did not render the assistant turn verbatim")
    marker = text.split(_SENTINEL, 1)[1]
    eos = tokenizer.eos_token
    if eos and marker.startswith(eos):  # the response ids already end with EOS
        marker = marker[len(eos) :]
    return tokenizer(marker, add_special_tokens=False)["input_ids"]


def build_forward_examples(
    records: Sequence[JudgmentRecord],
    tokenizer,
    template: PromptTemplate,
    *,
    max_length: int,
    response_budget: int,
    report: BuildReport,
) -> list[dict[str, Any]]:
    """One likelihood example per record: plain prompt -> y + EOS [+ marker + j + EOS], the
    marker unscored (``response_labels`` -100); ``judgment_start`` is the index of the marker in
    ``response_ids`` (None without a judgment). Updates ``report`` in place."""
    marker = forward_judgment_marker_ids(tokenizer, template)
    examples = []
    for record in records:
        response = template.response_ids(tokenizer, record.response)
        judgment: list[int] = []
        if record.judgment is not None and record.judgment.strip():
            judgment = template.response_ids(tokenizer, record.judgment)  # j + EOS
        truncated = len(response) > response_budget
        response = response[:response_budget]
        room = response_budget - len(response) - len(marker)
        if judgment and room < len(judgment):
            truncated = True
            judgment = judgment[: max(room, 0)]
        tail = [*marker, *judgment] if judgment else []
        report.n_response_truncated += truncated
        plain = template.prompt_ids(
            tokenizer, template.plain(record.prompt_instruction, record.history)
        )
        prompt_budget = max_length - len(response) - len(tail)
        if len(plain) > prompt_budget:
            report.n_prompt_truncated += 1
            plain = plain[-prompt_budget:]
        examples.append(
            {
                "id": record.id,
                "negative": False,
                "response_ids": [*response, *tail],
                "response_labels": [*response, *([IGNORE_INDEX] * len(marker)), *judgment]
                if judgment
                else list(response),
                "plain_prompt_ids": plain,
                "judged_prompt_ids": None,
                "judgment_start": len(response) if judgment else None,
            }
        )
        report.n_negative += record.is_negative
        report.n_positive += record.is_positive
    report.n_examples = len(examples)
    return examples


def build_objective_examples(
    records: Sequence[JudgmentRecord],
    tokenizer,
    objective: str = "cut",
    template: str | PromptTemplate = DEFAULT_TEMPLATE,
    *,
    max_length: int = DEFAULT_MAX_LENGTH,
    max_response_length: int | None = None,
    align_p_ratio: float | None = None,
    seed: int = 42,
) -> tuple[list[dict[str, Any]], BuildReport]:
    """Tokenize ``records`` into the examples ``objective`` trains on (module docstring).

    Arguments as :func:`cutkit.train.batching.build_examples`; the examples go through
    :class:`cutkit.train.batching.CUTCollator` and :func:`cutkit.train.losses.cut_loss` unchanged.
    """
    check_objective(objective)
    records = list(records)
    refuse_junk(records)
    if objective in ("cut", "ul_all", "hindsight", "self_distill"):
        examples, report = tokenize_examples(
            records,
            tokenizer,
            template,
            max_length=max_length,
            max_response_length=max_response_length,
            align_p_ratio=align_p_ratio,
            seed=seed,
        )
        if objective == "hindsight":  # Align-N only: no plain (Misalign) row for negatives
            for example in examples:
                if example["negative"]:
                    example["plain_prompt_ids"] = None
        report.objective = objective
        return examples, report

    if objective == "sft":
        kept = [r for r in records if r.is_positive]
        if not kept:
            raise ValueError(
                f"objective 'sft' trains on positive records only, and none of the {len(records)} "
                "records is positive; use 'ilf' to train on refinements, or another objective"
            )
        dropped: list[JudgmentRecord] = []
    else:
        kept, dropped = downsample_positives(records, align_p_ratio, seed)
    n_negative = sum(r.is_negative for r in kept)
    if objective == "forward":
        template = get_template(template, tokenizer)
        budget = max_response_length or max_length // 2
        if not 0 < budget < max_length:
            raise ValueError(f"max_response_length must be in (0, max_length={max_length})")
        report = BuildReport()
        examples = build_forward_examples(
            kept, tokenizer, template, max_length=max_length, response_budget=budget, report=report
        )
    else:
        if objective == "ilf":
            kept = ilf_records(kept)
        examples, report = tokenize_examples(
            kept,
            tokenizer,
            template,
            max_length=max_length,
            max_response_length=max_response_length,
            align_p_ratio=None,
        )
    report.objective = objective
    report.n_records = len(records)
    report.n_positive_dropped = len(dropped)
    report.dropped_ids = [r.id for r in dropped]
    if objective == "sft":
        report.n_negative_dropped = len(records) - len(kept)
    if objective == "ilf":
        report.n_refined = n_negative
    return examples, report
