"""The CUT trainer: a ``transformers.Trainer`` whose loss scores both contexts of every example
and applies :func:`~cutkit.train.losses.cut_loss`.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch
from transformers import Trainer
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.utils import logging

from cutkit._version import __version__
from cutkit.data.atomic_write import write_text_atomic
from cutkit.data.records import JudgmentRecord, RecordError
from cutkit.train.attention import use_varlen_attention
from cutkit.train.batching import BuildReport, CUTCollator, context_length
from cutkit.train.config import RUN_FILE, CUTConfig
from cutkit.train.detection import flag_tokens
from cutkit.train.distill import logprobs_and_divergence
from cutkit.train.logprobs import label_logprobs_packed, model_chunk_rows, response_token_mask
from cutkit.train.losses import CUTLossOutput, count_items, cut_loss
from cutkit.train.objectives import (
    build_objective_examples,
    unused_metrics,
)
from cutkit.train.rundir import (
    CheckpointError,
    checkpoint_problems,
    describe_skipped,
    file_problem,
    latest_complete_checkpoint,
    write_checkpoint_manifest,
)

_TERMS = ("align_p", "align_n", "misalign", "likelihood (align_p + align_n)", "loss")


class NonFiniteError(FloatingPointError):
    """A loss term or the gradient went NaN or inf during training; ``step`` is the optimizer
    step being taken and ``term`` what went non-finite (align_p, align_n, misalign, ..., or
    gradient). Raised before the optimizer step, so the weights stay finite and nothing is saved."""

    def __init__(self, message: str, *, step: int, term: str):
        super().__init__(message)
        self.step, self.term = step, term


logger = logging.get_logger(__name__)


def _refuse_empty(train_dataset, stage: str) -> None:
    """A ValueError for a train_dataset with no rows, before the Trainer builds its sampler."""
    if train_dataset is not None and hasattr(train_dataset, "__len__") and not len(train_dataset):
        raise ValueError(
            f"train_dataset is empty ({stage}): CUTTrainer has nothing to train on; pass at least "
            "one JudgmentRecord (cutkit.load_records reads a file), or train_dataset=None to "
            "only evaluate"
        )


class CUTTrainer(Trainer):
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
        self._nonfinite: torch.Tensor | None = None  # (len(_TERMS),) first bad values this step
        # output-layer rows per chunk for the whole run: the configured count, or (chunk_size None)
        # as many as fit chunk_memory_mb of fp32 logits at this model's vocabulary
        self.head_chunk_rows = (
            args.chunk_size
            if args.chunk_size is not None
            else model_chunk_rows(self.model, args.chunk_memory_mb)
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

    # ------------------------------------------------------------------ the non-finite guard
    def _track_nonfinite(self, out: CUTLossOutput, loss: torch.Tensor) -> None:
        """Keep the first non-finite value of each term this step (no device sync; checked
        once per optimizer step in :meth:`_get_grad_norm`)."""
        mle = out.mle.detach().float()
        bad_mle = ~torch.isfinite(mle)
        pos, judged = (out.stats[k].detach().float() for k in ("pos_sum", "judged_sum"))
        values = torch.stack(
            [
                torch.where(bad_mle & ~torch.isfinite(pos), mle, 0.0),  # align_p
                torch.where(bad_mle & ~torch.isfinite(judged), mle, 0.0),  # align_n
                out.ul.detach().float(),  # misalign
                mle,
                loss.detach().float(),
            ]
        )
        if self._nonfinite is None or self._nonfinite.device != values.device:
            self._nonfinite = torch.zeros_like(values)
        first = torch.isfinite(self._nonfinite) & ~torch.isfinite(values)
        self._nonfinite = torch.where(first, values, self._nonfinite)

    def _get_grad_norm(self, model, grad_norm=None):
        """The Trainer's gradient norm (after clipping, before the optimizer step), and the
        guard: a non-finite loss term this step, or a non-finite gradient, raises
        :class:`NonFiniteError` naming the step and the term before the weights change."""
        grad_norm = super()._get_grad_norm(model, grad_norm=grad_norm)
        step = self.state.global_step + 1
        found, self._nonfinite = self._nonfinite, None
        if found is not None and not bool(torch.isfinite(found).all()):
            values = dict(zip(_TERMS, found.tolist(), strict=True))
            bad = [t for t in _TERMS if not math.isfinite(values[t])]
            named = [t for t in bad if t in ("align_p", "align_n", "misalign")] or bad[:1]
            terms = ", ".join(f"{t}={values[t]}" for t in named)
            raise NonFiniteError(
                f"training stopped at step {step}: non-finite loss term {terms} (loss="
                f"{values['loss']}); the weights were not updated by this step and the run was "
                "not saved. Check ul_weight, gamma and threshold, lower the learning rate, or "
                "train in float32",
                step=step,
                term=named[0].split(" ")[0],
            )
        norm = float(grad_norm) if grad_norm is not None else 0.0
        if not math.isfinite(norm):
            names = [
                name
                for name, p in model.named_parameters()
                if p.grad is not None and not bool(torch.isfinite(p.grad).all())
            ]
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            raise NonFiniteError(
                f"training stopped at step {step}: the gradient norm is {norm} (non-finite "
                f"gradient in {shown or 'the parameters'}) although the loss terms are finite; "
                "the weights were not updated by this step and the run was not saved. Lower "
                "the learning rate, set max_grad_norm, or train in float32",
                step=step,
                term="gradient",
            )
        return grad_norm

    def _check_finite_weights(self, what: str) -> None:
        """Refuse to save non-finite trainable weights (``what`` is being saved)."""
        bad = [
            name
            for name, p in self.model.named_parameters()
            if p.requires_grad and not bool(torch.isfinite(p.detach()).all())
        ]
        if bad:
            raise NonFiniteError(
                f"not saving {what}: {len(bad)} trainable tensor(s) hold NaN or inf "
                f"({', '.join(bad[:3])}); nothing was written",
                step=self.state.global_step,
                term="weights",
            )

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
        return label_logprobs_packed(
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

    # ------------------------------------------------------------------ checkpoints and resume
    def train(self, resume_from_checkpoint=None, trial=None, ignore_keys_for_eval=None, **kwargs):
        """``Trainer.train``; ``resume_from_checkpoint=True`` resumes the newest *complete*
        checkpoint of output_dir (incomplete newer ones are skipped with a warning) and a given
        checkpoint is checked first (:func:`~cutkit.train.rundir.checkpoint_problems`): a damaged
        or missing file stops with its name. A run that already reached its last step takes no
        further step."""
        if isinstance(resume_from_checkpoint, bool) and resume_from_checkpoint:
            checkpoint, skipped = latest_complete_checkpoint(self.args.output_dir)
            if skipped:
                logger.warning(describe_skipped(skipped))
            resume_from_checkpoint = str(checkpoint)
        if resume_from_checkpoint:
            check_checkpoint(resume_from_checkpoint)
        return super().train(
            resume_from_checkpoint=resume_from_checkpoint,
            trial=trial,
            ignore_keys_for_eval=ignore_keys_for_eval,
            **kwargs,
        )

    def _run_epoch(self, *args, **kwargs):
        # transformers would take one more step when resuming a run that finished mid-epoch
        if 0 < self.state.max_steps <= self.state.global_step:
            self.control.should_training_stop = True
            return None
        return super()._run_epoch(*args, **kwargs)

    def _save_checkpoint(self, model, trial) -> None:
        """``Trainer._save_checkpoint``, then :data:`~cutkit.train.rundir.CHECKPOINT_MANIFEST`
        written last: a checkpoint without one (a save killed half-way) is incomplete. Older
        checkpoints are rotated out only after the new one is complete."""
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

        self._check_finite_weights(f"checkpoint {self.state.global_step}")
        run_dir = self._get_output_dir(trial=trial)
        folder = Path(run_dir) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        if self.args.should_save and folder.exists():  # left by an interrupted run: replace it
            import shutil

            shutil.rmtree(folder)
        self.accelerator.wait_for_everyone()
        limit = self.args.save_total_limit
        self.args.save_total_limit = None
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.save_total_limit = limit
        self.accelerator.wait_for_everyone()  # every rank's files (rng states) are written
        if self.args.should_save:
            write_checkpoint_manifest(folder, self.state.global_step)
            rotate_checkpoints(
                output_dir=run_dir,
                save_total_limit=limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=True,
            )

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        with _naming_damaged_files(resume_from_checkpoint, "the model weights"):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _load_optimizer_and_scheduler(self, checkpoint):
        with _naming_damaged_files(checkpoint, "the optimizer and scheduler"):
            return super()._load_optimizer_and_scheduler(checkpoint)

    def _load_rng_state(self, checkpoint):
        with _naming_damaged_files(checkpoint, "the random states"):
            return super()._load_rng_state(checkpoint)

    def _load_scaler(self, checkpoint):
        with _naming_damaged_files(checkpoint, "the gradient scaler"):
            return super()._load_scaler(checkpoint)

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


def check_checkpoint(folder: str | os.PathLike) -> None:
    """Raise :class:`~cutkit.train.rundir.CheckpointError` naming what is missing or damaged in
    checkpoint ``folder`` (one without a manifest, from other tools, is checked for a trainer
    state and weights and for damaged files)."""
    problems = checkpoint_problems(folder, require_manifest=False)
    if problems:
        raise CheckpointError(
            f"cannot resume from {folder}: {'; '.join(problems)}. Resume an earlier checkpoint "
            "(--resume last picks the newest complete one)"
        )


class _naming_damaged_files:
    """Turn an error while loading ``what`` from a checkpoint into a :class:`CheckpointError`
    naming the damaged file (found by :func:`~cutkit.train.rundir.file_problem`)."""

    def __init__(self, checkpoint, what: str):
        self.checkpoint, self.what = Path(checkpoint), what

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if error is None or not isinstance(error, Exception) or isinstance(error, CheckpointError):
            return False
        damaged = []
        if self.checkpoint.is_dir():
            damaged = [
                problem
                for path in sorted(self.checkpoint.iterdir())
                if path.is_file() and (problem := file_problem(path))
            ]
        where = "; ".join(damaged) if damaged else f"{type(error).__name__}: {error}"
        raise CheckpointError(
            f"cannot load {self.what} from {self.checkpoint}: {where}. Resume an earlier "
            "checkpoint (--resume last picks the newest complete one)"
        ) from error


def _align(flags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L') left-aligned flags cut or padded with False to ``mask``'s (B, L), on its device."""
    out = torch.zeros_like(mask, dtype=torch.bool)
    width = min(flags.shape[1], mask.shape[1])
    out[:, :width] = flags[:, :width].to(mask.device)
    return out & mask
