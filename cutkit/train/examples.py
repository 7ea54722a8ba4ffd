"""From judgment records to tokenized CUT examples (the collator that batches them is
:mod:`cutkit.train.batching`).

Each record becomes one *example*: its response tokenized once (plus EOS) and the prompt(s) it is
scored under. A positive record (Align-P) has only the plain prompt; a negative record has the
judged prompt (Align-N) and the plain prompt (Misalign) over the *same* response ids, so the two
contexts pair up by response position (docs/method.md §10.1).

Each example also carries ``error_token_flags``: for a negative record with gold ``error_spans``,
one bool per response id (the token overlaps a criticised character span; EOS never does), else
None; the oracle detector (``CUTConfig(detector="spans")``) trains on these flags instead of the
model's judged/plain ratio. A record whose ``meta["truncated"]`` is true (an answer cut off at the
generation limit, kept by the online loop) is built without the EOS the model never produced.

Junk judgments are refused by :func:`build_examples` (records built in Python); the loaders refuse
them in files, and :func:`tokenize_examples` takes records already cleared.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cutkit._checks import check_number
from cutkit.data.records import JudgmentRecord, RecordError, refuse_junk
from cutkit.data.templates import PromptTemplate, get_template
from cutkit.train.vocabulary import DEFAULT_MAX_LENGTH, DEFAULT_TEMPLATE, RATIO_WHY


@dataclass
class BuildReport:
    """What :func:`build_examples` did to the records it was given."""

    n_records: int = 0
    n_examples: int = 0
    n_negative: int = 0
    n_positive: int = 0
    n_positive_dropped: int = 0  # Align-P downsampling
    n_prompt_truncated: int = 0  # prompt cut from the left to fit max_length
    n_response_truncated: int = 0  # response longer than its budget, cut from the right
    n_response_tokens_cut: int = 0  # tokens those responses lost (never scored or trained on)
    max_response_tokens: int = 0  # the response budget, tokens (with EOS)
    dropped_ids: list[str] = field(default_factory=list)
    objective: str = "cut"  # the objective the examples were built for (cutkit.train.objectives)
    n_negative_dropped: int = 0  # negatives an objective does not train on ("sft")
    n_refined: int = 0  # negatives replaced by their refinement ("ilf")
    n_without_eos: int = 0  # records marked truncated: built without EOS

    def __str__(self) -> str:
        text = (
            f"{self.n_examples} examples from {self.n_records} records: {self.n_negative} negative, "
            f"{self.n_positive} positive ({self.n_positive_dropped} positives dropped by Align-P "
            f"downsampling); prompts truncated: {self.n_prompt_truncated}, responses truncated: "
            f"{self.n_response_truncated}"
        )
        if self.n_response_tokens_cut:
            text += (
                f" ({self.n_response_tokens_cut} tokens past the {self.max_response_tokens}-token "
                "response budget cut)"
            )
        if self.n_without_eos:
            text += f"; {self.n_without_eos} cut-off responses built without EOS"
        if self.objective != "cut":
            text += f"; objective {self.objective!r}"
            if self.n_negative_dropped:
                text += f": {self.n_negative_dropped} negatives dropped"
            if self.n_refined:
                text += f": {self.n_refined} negatives replaced by their refinement"
        return text


def downsample_positives(
    records: Sequence[JudgmentRecord], ratio: float | None, seed: int = 42
) -> tuple[list[JudgmentRecord], list[JudgmentRecord]]:
    """Keep ``round(ratio * n_negative)`` positives chosen at random (the paper's Align-P
    downsampling, 0.25 in online rounds); ``ratio=None`` keeps all. Returns ``(kept, dropped)``,
    ``kept`` in the original order."""
    if ratio is None:
        return list(records), []
    check_number("align_p_ratio", ratio, minimum=0, why=RATIO_WHY)
    positives = [i for i, r in enumerate(records) if r.is_positive]
    n_keep = min(len(positives), round(ratio * (len(records) - len(positives))))
    keep = set(random.Random(seed).sample(positives, n_keep))
    kept = [r for i, r in enumerate(records) if r.is_negative or i in keep]
    dropped = [r for i, r in enumerate(records) if r.is_positive and i not in keep]
    return kept, dropped


def build_examples(
    records: Sequence[JudgmentRecord],
    tokenizer,
    template: str | PromptTemplate = DEFAULT_TEMPLATE,
    *,
    max_length: int = DEFAULT_MAX_LENGTH,
    max_response_length: int | None = None,
    align_p_ratio: float | None = None,
    seed: int = 42,
) -> tuple[list[dict[str, Any]], BuildReport]:
    """Tokenize records into CUT examples.

    Args:
        records: judgment records (junk judgments are refused: load them with cutkit.load_records).
        tokenizer: the model's tokenizer (needs an EOS token).
        template: "alpaca", "chat" or a PromptTemplate.
        max_length: longest context in tokens. A prompt longer than ``max_length`` minus its
            response is cut from the left (counted in ``n_prompt_truncated``), so the whole
            response survives; this happens to a long *instruction*. A negative record whose
            *judgment* would push the instruction out of the judged prompt is refused instead,
            with a :class:`RecordError` naming the record and what to change: the judged prompt
            does not fit while the plain one does, the judgment alone fills the budget, or the two
            cut contexts would be identical (:func:`check_judged_budget`). Nothing is dropped or
            shortened silently.
        max_response_length: a response (with EOS) longer than this is cut from the right, the same
            in both contexts, and counted; default ``max_length // 2``.
        align_p_ratio: keep this many positives per negative (None keeps all).
        seed: seed of the downsampling.

    Returns:
        ``(examples, report)``; each example is a dict with ``id``, ``negative``, ``response_ids``,
        ``plain_prompt_ids``, ``judged_prompt_ids`` (None for positives) and
        ``error_token_flags`` (module docstring).
    """
    response_budget_of(max_length, max_response_length)
    refuse_junk(records)
    return tokenize_examples(
        records,
        tokenizer,
        template,
        max_length=max_length,
        max_response_length=max_response_length,
        align_p_ratio=align_p_ratio,
        seed=seed,
    )


def response_budget_of(max_length: int, max_response_length: int | None) -> int:
    """The response budget in tokens (with EOS): ``max_response_length``, default
    ``max_length // 2``; ValueError unless it is in (0, max_length)."""
    response_budget = max_response_length or max_length // 2
    if not 0 < response_budget < max_length:
        raise ValueError(f"max_response_length must be in (0, max_length={max_length})")
    return response_budget


def tokenize_examples(
    records: Sequence[JudgmentRecord],
    tokenizer,
    template: str | PromptTemplate = DEFAULT_TEMPLATE,
    *,
    max_length: int = DEFAULT_MAX_LENGTH,
    max_response_length: int | None = None,
    align_p_ratio: float | None = None,
    seed: int = 42,
) -> tuple[list[dict[str, Any]], BuildReport]:
    """:func:`build_examples` of records already cleared of junk judgments: by
    :func:`cutkit.load_records` (the one refusal of the main path) or by a caller's own
    :func:`~cutkit.data.records.refuse_junk` (:func:`cutkit.train.objectives.build_objective_examples`
    calls it once for the records given straight to the trainer). Same arguments and result."""
    template = get_template(template, tokenizer)
    response_budget = response_budget_of(max_length, max_response_length)
    kept, dropped = downsample_positives(records, align_p_ratio, seed)
    report = BuildReport(
        n_records=len(records),
        n_positive_dropped=len(dropped),
        dropped_ids=[r.id for r in dropped],
        max_response_tokens=response_budget,
    )
    examples = []
    for index, record in enumerate(kept):
        response_ids = template.response_ids(tokenizer, record.response)
        if record.meta.get("truncated"):
            response_ids = response_ids[:-1]  # the model never produced this EOS
            report.n_without_eos += 1
            if not response_ids:
                raise RecordError(
                    "an empty cut-off response has no token to train on",
                    index=index,
                    field="response",
                    fix="drop the record",
                )
        if len(response_ids) > response_budget:
            report.n_response_tokens_cut += len(response_ids) - response_budget
            response_ids = response_ids[:response_budget]
            report.n_response_truncated += 1
        prompt_budget = max_length - len(response_ids)
        history = record.history
        if history and template.name != "chat":
            raise RecordError(
                "is a conversational record (earlier turns in history), and the "
                f"{template.name!r} template is single-turn",
                index=index,
                field="history",
                fix="use template='chat' (the tokenizer's chat template renders the turns)",
            )
        plain = template.prompt_ids(tokenizer, template.plain(record.prompt_instruction, history))
        judged = None
        if record.is_negative:
            judged = template.prompt_ids(
                tokenizer, template.judged(record.prompt_instruction, record.judgment, history)
            )
        if max(len(plain), len(judged or ())) > prompt_budget:
            if judged is not None:
                check_judged_budget(
                    record, index, plain, judged, prompt_budget, max_length, len(response_ids)
                )
            report.n_prompt_truncated += 1
            plain = plain[-prompt_budget:]
            judged = judged[-prompt_budget:] if judged is not None else None
        examples.append(
            {
                "id": record.id,
                "negative": record.is_negative,
                "response_ids": response_ids,
                "plain_prompt_ids": plain,
                "judged_prompt_ids": judged,
                "error_token_flags": error_token_flags(tokenizer, record, len(response_ids)),
            }
        )
        report.n_negative += record.is_negative
        report.n_positive += record.is_positive
    report.n_examples = len(examples)
    return examples, report


def check_judged_budget(
    record: JudgmentRecord,
    index: int,
    plain: list[int],
    judged: list[int],
    prompt_budget: int,
    max_length: int,
    n_response: int,
) -> None:
    """Refuse (:class:`RecordError`) a negative record whose judged prompt cannot be cut to
    ``prompt_budget`` tokens from the left without losing what CUT needs (the context budget of
    :func:`build_examples`):

    - the two cut contexts would be the same tokens: CUT compares the response under the judged
      and the plain prompt, so the judgment must survive in the judged one;
    - the plain prompt fits whole but the judged one does not: the judgment would push the start of
      the instruction (and the template's header) out of the judged context only, silently;
    - the judgment's share of the judged prompt (its tokens beyond the plain prompt's) fills the
      whole budget: the judged context would keep none of the instruction.
    """
    needed, extra = len(judged), len(judged) - len(plain)
    where = dict(index=index, field="judgment")
    fix = (
        f"Raise max_length (now {max_length}), lower max_response_length (the response takes "
        f"{n_response}) or shorten the judgment"
    )
    if judged[-prompt_budget:] == plain[-prompt_budget:]:
        raise RecordError(
            f"record {record.id!r}: the judged and plain contexts would be identical once cut to "
            f"the {prompt_budget} prompt tokens that fit beside the response (max_length="
            f"{max_length}); CUT needs the judgment in the judged context",
            fix=fix,
            **where,
        )
    if len(plain) <= prompt_budget or extra >= prompt_budget:
        raise RecordError(
            f"record {record.id!r}: the judged prompt needs {needed} tokens but only "
            f"{prompt_budget} fit beside the {n_response}-token response (max_length="
            f"{max_length}); cutting it from the left would drop the "
            f"{'start of the ' if extra < prompt_budget else ''}instruction from the judged "
            "context only, so the judgment would not be the only difference between the contexts",
            fix=fix,
            **where,
        )


def response_char_spans(tokenizer, response: str, n_tokens: int) -> list[tuple[int, int]]:
    """Character span (start, end) in ``response`` of each of its first ``n_tokens`` tokens, as
    :meth:`PromptTemplate.response_ids` tokenizes it; the trailing EOS gets (len, len)."""
    encoded = tokenizer(response, add_special_tokens=False, return_offsets_mapping=True)
    spans = [tuple(span) for span in encoded["offset_mapping"]]
    spans.append((len(response), len(response)))  # EOS
    return spans[:n_tokens]


def overlaps_span(start: int, end: int, spans: Sequence[tuple[int, int]]) -> bool:
    """Does the token at characters [start, end) overlap one of ``spans``? (A zero-width token
    counts as the character at ``start``: EOS, at the end of the response, overlaps nothing.)"""
    return any(
        start < span_end and span_start < max(end, start + 1) for span_start, span_end in spans
    )


def error_token_flags(tokenizer, record: JudgmentRecord, n_tokens: int) -> list[bool] | None:
    """One bool per response token: inside the record's gold ``error_spans``; None for a positive
    record or one without spans."""
    if record.is_positive or not record.error_spans:
        return None
    spans = response_char_spans(tokenizer, record.response, n_tokens)
    return [overlaps_span(start, end, record.error_spans) for start, end in spans]
