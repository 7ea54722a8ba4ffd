"""The CUT trainer: a ``transformers.Trainer`` whose loss scores both contexts of every example
and applies :func:`~cutkit.train.losses.cut_loss`; it keeps the loss and its bookkeeping (the item
counts of a step, the metrics). The non-finite guard (:mod:`cutkit.train.nonfinite`) and
checkpoint integrity (:mod:`cutkit.train.checkpoints`) are mixins of its own.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch
from transformers import Trainer
from transformers.trainer_pt_utils import LengthGroupedSampler

from cutkit._version import __version__
from cutkit.data.atomic_write import write_text_atomic
from cutkit.data.records import JudgmentRecord, RecordError
from cutkit.train.attention import use_varlen_attention
from cutkit.train.batching import CUTCollator, context_length
from cutkit.train.checkpoints import CompleteCheckpoints
from cutkit.train.checkpoints import check_checkpoint as check_checkpoint  # its old home
from cutkit.train.config import RUN_FILE, CUTConfig
from cutkit.train.detection import flag_tokens
from cutkit.train.distill import logprobs_and_divergence
from cutkit.train.examples import BuildReport
from cutkit.train.logprobs import label_logprobs_left_aligned, model_chunk_rows, response_token_mask
from cutkit.train.losses import CUTLossOutput, count_items, cut_loss
from cutkit.train.nonfinite import NonFiniteError as NonFiniteError  # its old home
from cutkit.train.nonfinite import NonFiniteGuard
from cutkit.train.objectives import (
    build_objective_examples,
    unused_metrics,
)


def _refuse_empty(train_dataset, stage: str) -> None:
    """A ValueError for a train_dataset with no rows, before the Trainer builds its sampler."""
    if train_dataset is not None and hasattr(train_dataset, "__len__") and not len(train_dataset):
        raise ValueError(
            f"train_dataset is empty ({stage}): CUTTrainer has nothing to train on; pass at least "
            "one JudgmentRecord (cutkit.load_records reads a file), or train_dataset=None to "
            "only evaluate"
        )


class CUTTrainer(NonFiniteGuard, CompleteCheckpoints, Trainer):
    """A ``transformers.Trainer`` whose loss is CUT (or a baseline: ``args.objective``).

    ``train_dataset`` / ``eval_dataset`` may be lists of :class:`~cutkit.JudgmentRecord` (tokenized
    here for the config's objective with its template, lengths and Align-P downsampling; the build
    report is kept in ``self.build_reports``) or lists of examples from
    :func:`cutkit.train.objectives.build_objective_examples` / :func:`cutkit.train.batching.build_examples`.
    ``processing_class`` is the tokenizer.
    """

    def __init__(
        self,
        model,
        args: CUTConfig,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        data_collator=None,
        **kwargs,
    ):
        if processing_class is None:
            raise ValueError("CUTTrainer needs the tokenizer: pass processing_class=tokenizer")
        self.build_reports: dict[str, BuildReport] = {}
        _refuse_empty(train_dataset, "given")
        train_dataset = self._as_examples(train_dataset, "train", args, processing_class)
        _refuse_empty(train_dataset, f"built for objective {args.objective!r}")
        eval_dataset = self._as_examples(
            eval_dataset, "eval", args, processing_class, downsample=False
        )
        data_collator = data_collator or CUTCollator(
            processing_class.pad_token_id, packing=args.packing
        )
        if args.packing:
            use_varlen_attention(model)
        super().__init__(
            model=model,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            data_collator=data_collator,
            **kwargs,
        )
        # The loss normalises itself: "official" per micro-batch (the Trainer then averages over
        # accumulation steps, as the released code did); "paper"/"token" by the item count of the
        # whole step, computed in get_batch_samples.
        self.model_accepts_loss_kwargs = False
        self.loss_is_scaled_for_ga = args.normalization != "official"
        self._step_items: torch.Tensor | None = None
        self._stats: dict[str, dict[str, torch.Tensor]] = {
            "train": defaultdict(float),
            "eval": defaultdict(float),
        }
        self._last_eval_metrics: dict[str, float] = {}
        # output-layer rows per chunk for the whole run: the configured count, None (no chunking),
        # or ("auto") as many as keep the head's extra peak within chunk_memory_mb at this model's
        # vocabulary
        self.head_chunk_rows = (
            model_chunk_rows(self.model, args.chunk_memory_mb)
            if args.chunk_size == "auto"
            else args.chunk_size
        )

    def _as_examples(self, data, split, args, tokenizer, downsample=True):
        if data is None or not isinstance(data, Sequence) or not data:
            return data
        if not isinstance(data[0], JudgmentRecord):
            return data
        examples, report = build_objective_examples(
            data,
            tokenizer,
            args.objective,
            args.template,
            max_length=args.max_length,
            max_response_length=args.max_response_length,
            align_p_ratio=args.align_p_ratio if downsample else None,
            seed=args.seed,
        )
        self.build_reports[split] = report
        if args.uses_span_detector():
            for index, example in enumerate(examples):
                if example["negative"] and example.get("error_token_flags") is None:
                    raise RecordError(
                        f"detector='spans' needs gold error spans, and negative record "
                        f"{example['id']!r} has none",
                        index=index,
                        field="error_spans",
                        fix="add the criticised character spans, or use detector='model'",
                    )
        return examples

    # ------------------------------------------------------------------ batching
    def _get_train_sampler(self, train_dataset=None):
        """``train_sampling_strategy='group_by_length'`` sorts CUT examples by their tokens in a
        micro-batch (:func:`cutkit.train.batching.context_length`); transformers would look for an
        ``input_ids`` column they do not have."""
        dataset = self.train_dataset if train_dataset is None else train_dataset
        grouped = self.args.train_sampling_strategy == "group_by_length"
        if grouped and isinstance(dataset, Sequence) and dataset and isinstance(dataset[0], dict):
            return LengthGroupedSampler(
                self.args.train_batch_size * self.args.gradient_accumulation_steps,
                lengths=[context_length(example) for example in dataset],
            )
        return super()._get_train_sampler(train_dataset)

    # ------------------------------------------------------------------ loss normalisation
    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batch_samples, num_items = super().get_batch_samples(epoch_iterator, num_batches, device)
        if self.args.normalization != "official" and batch_samples:
            items = sum(self._count_items(batch) for batch in batch_samples)
            items = torch.as_tensor(items, device=device)
            if self.accelerator.num_processes > 1:
                items = self.accelerator.reduce(items, reduction="sum")
            self._step_items = items
        return batch_samples, num_items

    def _count_items(self, batch) -> torch.Tensor:
        n = batch["negative"].shape[0]
        mask = response_token_mask(batch["labels"], batch.get("position_ids"))[:n]  # (B, Lr)
        s = self.args.loss_settings()
        return count_items(
            mask,
            batch["negative"],
            normalization=s["normalization"],
            align_p=s["align_p"],
            align_n=s["align_n"],
            misalign=s["misalign"],
        )

    # ------------------------------------------------------------------ the loss
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out = self.cut_loss_output(model, inputs)
        loss = out.loss
        if self.args.normalization != "official" and model.training:
            loss = loss * self.accelerator.num_processes  # DDP averages gradients over ranks
        self._accumulate(out, "train" if model.training else "eval")
        if model.training:
            self._track_nonfinite(out, loss)
        return (loss, {"flagged": out.flagged}) if return_outputs else loss

    def cut_loss_output(self, model, inputs) -> CUTLossOutput:
        """Score the micro-batch and return the full :class:`CUTLossOutput`."""
        n = inputs["negative"].shape[0]
        distill = None
        if self.args.objective == "self_distill":
            logp, mask, distill = self._logprobs_and_divergence(model, inputs)
        else:
            logp, mask = self._response_logprobs(model, inputs)  # (R, Lr) each
        num_items = None
        if self.args.normalization != "official" and model.training:
            num_items = self._step_items
        settings = self.args.loss_settings()
        return cut_loss(
            logp[:n],
            logp[inputs["plain_row"]],
            mask[:n],
            inputs["negative"],
            num_items=num_items,
            flagged=self._flags_from_outside_the_loss(model, inputs, mask[:n], settings, distill),
            distill=distill,
            check_inputs=False,  # log_softmax values; the non-finite guard covers NaN and inf
            **settings,
        )

    def _logprobs_and_divergence(self, model, inputs):
        """Response log-probs (R, Lr), their mask, and the (B, Lr) self-distillation divergence
        of each negative row's judged context (teacher) into its plain context (student)."""
        negative = inputs["negative"]
        rows = negative.nonzero(as_tuple=True)[0]  # (P,) negative first-context rows
        logp, mask, pairs = logprobs_and_divergence(
            model,
            inputs["input_ids"],
            inputs.get("attention_mask"),
            inputs["labels"],
            teacher_rows=rows,
            student_rows=inputs["plain_row"][rows],
            position_ids=inputs.get("position_ids"),
            chunk_size=self.head_chunk_rows,
            temperature=self.args.distill_temperature,
            top_k=self.args.distill_top_k,
        )
        divergence = pairs.new_zeros(negative.shape[0], pairs.shape[1])
        divergence[rows] = pairs
        return logp, mask, divergence

    def _response_logprobs(self, model, inputs):
        """Every context row's response log-probs, left-aligned: values and mask, (R, Lr)."""
        return label_logprobs_left_aligned(
            model,
            inputs["input_ids"],
            inputs.get("attention_mask"),
            inputs["labels"],
            position_ids=inputs.get("position_ids"),
            chunk_size=self.head_chunk_rows,
        )

    def _flags_from_outside_the_loss(self, model, inputs, mask, settings, distill):
        """The ``flagged=`` of :func:`cut_loss` (which then keeps the negative tokens among them,
        :func:`~cutkit.train.detection.flag_tokens`): the gold spans (``detector="spans"``),
        an eval-mode pass while training without ``detection_dropout``, or None (the loss
        detects from its own log-probs, or does not detect)."""
        if not (settings["misalign"] and settings["detect"]):
            return None
        if self.args.detector == "spans":
            return _align(inputs["error_token_flags"], mask)
        if (
            distill is None
            and model.training
            and not self.args.detection_dropout
            and inputs["negative"].any()
        ):
            return self._detect_without_dropout(model, inputs)
        return None

    @torch.no_grad()
    def _detect_without_dropout(self, model, inputs) -> torch.Tensor:
        """(B, L) flags from an eval-mode (dropout-free) pass over the same micro-batch."""
        model.eval()
        try:
            logp, mask = self._response_logprobs(model, inputs)
        finally:
            model.train()
        n = inputs["negative"].shape[0]
        negative_tokens = mask[:n] & inputs["negative"][:, None]
        return flag_tokens(
            logp[:n], logp[inputs["plain_row"]], negative_tokens, self.args.threshold
        )

    # ------------------------------------------------------------------ the run directory
    def save_run(self, **extra) -> Path:
        """Save the adapter (or model), the tokenizer, ``trainer_state.json`` (metrics history)
        and ``cutkit_run.json`` (this config, the build reports and ``extra``) to output_dir."""
        out = Path(self.args.output_dir)
        self._check_finite_weights(f"the run to {out}")
        self.save_model(str(out))
        self.save_state()
        if self.accelerator.is_main_process:
            run = {
                "cutkit_version": __version__,
                "config": self.args.to_dict(),
                "build_reports": {k: asdict(v) for k, v in self.build_reports.items()},
                **extra,
            }
            write_text_atomic(out / RUN_FILE, json.dumps(run, indent=1, default=str))
        return out

    # ------------------------------------------------------------------ metrics
    def _accumulate(self, out: CUTLossOutput, mode: str) -> None:
        stats = self._stats[mode]
        for key, value in out.stats.items():
            stats[key] = stats[key] + value.detach().float()
        stats["mle"] = stats["mle"] + out.mle.detach().float()
        stats["ul"] = stats["ul"] + out.ul.detach().float()
        # "official" losses (and every eval batch) are micro-batch means: average them. "paper" and
        # "token" training losses are shares of the step's loss: sum them within a step.
        per_step = mode == "train" and self.args.normalization != "official"
        share = 1.0 / self.current_gradient_accumulation_steps if per_step else 1.0
        stats["loss_terms"] = stats["loss_terms"] + share

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "eval" if any(key.startswith("eval_") for key in logs) else "train"
        stats = self._stats[mode]
        if stats:
            keys = sorted(stats)
            values = torch.stack(
                [
                    torch.as_tensor(stats[k], dtype=torch.float32, device=self.args.device)
                    for k in keys
                ]
            )
            if self.accelerator.num_processes > 1:
                values = self.accelerator.reduce(values, reduction="sum")
            summed = dict(zip(keys, values, strict=True))
            terms = summed.pop("loss_terms")
            mle, ul = summed.pop("mle") / terms, summed.pop("ul") / terms
            metrics = CUTLossOutput(
                loss=mle + ul, mle=mle, ul=ul, flagged=None, stats=summed
            ).metrics()
            prefix = "eval_" if mode == "eval" else ""
            unused = unused_metrics(self.args.objective)
            metrics = {f"{prefix}{k}": round(v, 6) for k, v in metrics.items() if k not in unused}
            if mode == "eval":
                self._last_eval_metrics = metrics
            logs = {**logs, **metrics}
            stats.clear()
        super().log(logs, start_time)

    def evaluate(self, *args, **kwargs) -> dict[str, float]:
        """``Trainer.evaluate`` plus the CUT metrics (eval_loss/mle, eval_ul/flagged_frac, ...)."""
        self._last_eval_metrics = {}
        metrics = super().evaluate(*args, **kwargs)
        return {**metrics, **self._last_eval_metrics}


def _align(flags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L') left-aligned flags cut or padded with False to ``mask``'s (B, L), on its device."""
    out = torch.zeros_like(mask, dtype=torch.bool)
    width = min(flags.shape[1], mask.shape[1])
    out[:, :width] = flags[:, :width].to(mask.device)
    return out & mask
