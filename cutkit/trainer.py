"""CUTConfig and CUTTrainer: the CUT loss inside a standard ``transformers.Trainer``.

The trainer is thin: the collator lays out the contexts (:mod:`cutkit.batching`), one forward pass
scores every response token (:func:`cutkit.logprobs.label_logprobs_packed`), and the pure loss
function (:func:`cutkit.losses.cut_loss`) does the maths. Everything else (LoRA, gradient
accumulation, checkpoints, DDP through ``torchrun`` / ``accelerate launch``, logging) is
``transformers.Trainer``'s own.

>>> from cutkit import load_model, load_records
>>> model, tok = load_model(lora=True)                                         # doctest: +SKIP
>>> args = CUTConfig(output_dir="runs/cut", max_steps=50, template="chat")     # doctest: +SKIP
>>> CUTTrainer(model, args, train_dataset=load_records("data/judgments/train.jsonl"),
...            processing_class=tok).train()                                   # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import Trainer, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler

from cutkit import __version__
from cutkit.attention import use_varlen_attention
from cutkit.batching import BuildReport, CUTCollator, context_length
from cutkit.logprobs import label_logprobs_packed, response_token_mask
from cutkit.losses import (
    NORMALIZATIONS,
    UNFLAGGED,
    CUTLossOutput,
    count_items,
    cut_loss,
    detect_flagged,
)
from cutkit.objectives import (
    OBJECTIVES,
    build_objective_examples,
    check_objective,
    objective_switches,
    unused_metrics,
)
from cutkit.records import JudgmentRecord, RecordError

RUN_FILE = "cutkit_run.json"
DETECTORS = ("model", "spans")
"""Where the flagged tokens come from: the model's judged/plain ratio (the paper) or the records'
gold ``error_spans`` (oracle detection)."""


@dataclass
class CUTConfig(TrainingArguments):
    """Training arguments for CUT. Defaults follow the paper's recipe where it gives one
    (lr 4e-4, cosine, 100 warmup steps, 1 epoch, global batch 8 as micro-batch 1 x accumulation 8,
    cutoff 2048, lambda 1.1, alpha 1.0); every ``transformers.TrainingArguments`` field works too."""

    objective: str = field(
        default="cut",
        metadata={
            "help": f"Training objective, one of {OBJECTIVES}: CUT or one of the paper's "
            "baselines on the same records (equations in cutkit.objectives). The objective fixes "
            "the switches that define it (hindsight: misalign=False; ul_all: detect=False); DPO "
            "goes through cutkit.dpo.train_dpo."
        },
    )
    template: str = field(
        default="alpaca",
        metadata={
            "help": "Prompt template: 'alpaca' (paper-exact) or 'chat' (the tokenizer's chat "
            "template). Use the same one at inference."
        },
    )
    max_length: int = field(
        default=2048,
        metadata={
            "help": "Longest context in tokens; prompts are cut from the left so the response survives."
        },
    )
    max_response_length: int | None = field(
        default=None,
        metadata={
            "help": "Responses longer than this (with EOS) are cut from the right; default max_length // 2."
        },
    )
    threshold: float = field(
        default=1.1,
        metadata={
            "help": "lambda: a token is flagged when p(y_t | x, j) > lambda * p(y_t | x) (1.1 online, 1.2 Shepherd)."
        },
    )
    ul_weight: float = field(
        default=1.0,
        metadata={
            "help": "alpha: weight of the unlikelihood term on flagged tokens (1.0 online, 0.5 Shepherd)."
        },
    )
    gamma: float = field(
        default=0.0,
        metadata={
            "help": "Dynamic weight exponent: w_t = alpha * p_judged(t)^gamma (paper v4); 0 = constant alpha."
        },
    )
    normalization: str = field(
        default="official",
        metadata={
            "help": "Loss normalisation: 'official' (released code, per micro-batch), 'paper' "
            "(per example, v4) or 'token'; 'paper' and 'token' are normalised over the whole "
            "accumulation step, so they do not depend on how records fall into micro-batches."
        },
    )
    align_p_ratio: float | None = field(
        default=0.25,
        metadata={
            "help": "Keep this many positive (Align-P) records per negative, chosen with `seed`; None keeps all."
        },
    )
    align_p: bool = field(
        default=True, metadata={"help": "Ablation switch: likelihood on good responses."}
    )
    align_n: bool = field(
        default=True,
        metadata={"help": "Ablation switch: likelihood on bad responses given their judgment."},
    )
    misalign: bool = field(
        default=True,
        metadata={"help": "Ablation switch: the Misalign term (L1); False gives Hindsight."},
    )
    detect: bool = field(
        default=True,
        metadata={
            "help": "Ablation switch: False puts unlikelihood on every token of a bad response (no detection)."
        },
    )
    detector: str = field(
        default="model",
        metadata={
            "help": "Which tokens get unlikelihood: 'model' (the paper: p(y_t | x, j) > lambda * "
            "p(y_t | x)) or 'spans' (oracle: the tokens inside each negative record's gold "
            "error_spans; every negative record must have spans)."
        },
    )
    unflagged: str = field(
        default="mle",
        metadata={
            "help": "Unflagged tokens of a bad response under the plain prompt: 'mle' (the "
            "paper: likelihood) or 'ignore' (no loss). 'mle' teaches the rest of the bad "
            "response back; see docs/method.md."
        },
    )
    detection_dropout: bool = field(
        default=True,
        metadata={
            "help": "Detect flagged tokens in the training forward pass, dropout active, as "
            "the released code does; False detects with an extra gradient-free pass in eval "
            "mode (no dropout)."
        },
    )
    chunk_size: int = field(
        default=1024,
        metadata={"help": "Output-layer rows per chunk when scoring tokens (memory vs speed)."},
    )
    packing: bool = field(
        default=False,
        metadata={
            "help": "Padding-free micro-batches: every context of a micro-batch laid end to end in "
            "one row with restarting position ids; the model attends per context (flash attention "
            "2/3 if set, else cutkit.attention's 'cutkit_varlen'). Same loss and gradients as the "
            "padded layout, no pad tokens computed. For the padded layout, "
            "train_sampling_strategy='group_by_length' batches records of similar length instead."
        },
    )
    # paper recipe and CUT-friendly defaults for inherited fields
    output_dir: str | None = field(
        default="runs/cut",
        metadata={
            "help": "Run directory: checkpoints, the adapter, the config and the metrics history.",
            "aliases": ["--output"],
        },
    )
    learning_rate: float = field(
        default=4e-4, metadata={"help": "Peak learning rate (paper: 4e-4 with LoRA)."}
    )
    lr_scheduler_type: str = field(
        default="cosine", metadata={"help": "Learning-rate schedule (paper: cosine)."}
    )
    warmup_steps: float = field(
        default=100, metadata={"help": "Linear warm-up steps (paper: 100)."}
    )
    num_train_epochs: float = field(default=1.0, metadata={"help": "Epochs (paper: 1)."})
    per_device_train_batch_size: int = field(
        default=1, metadata={"help": "Micro-batch size (paper: 1)."}
    )
    gradient_accumulation_steps: int = field(
        default=8, metadata={"help": "Accumulation steps (paper: 8)."}
    )
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Kept False: CUT examples carry their own columns."}
    )
    logging_steps: float = field(default=10, metadata={"help": "Log every N optimizer steps."})

    def __post_init__(self):
        check_objective(self.objective)
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}"
            )
        if self.threshold < 1:
            raise ValueError(f"threshold (lambda) must be >= 1, got {self.threshold}")
        if self.detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got {self.detector!r}")
        if self.unflagged not in UNFLAGGED:
            raise ValueError(f"unflagged must be one of {UNFLAGGED}, got {self.unflagged!r}")
        super().__post_init__()

    def loss_settings(self) -> dict:
        """The keyword arguments of :func:`cutkit.losses.cut_loss` this config selects (the
        objective's own switches override the configured ones)."""
        settings = dict(
            threshold=self.threshold,
            ul_weight=self.ul_weight,
            gamma=self.gamma,
            normalization=self.normalization,
            align_p=self.align_p,
            align_n=self.align_n,
            misalign=self.misalign,
            detect=self.detect,
            unflagged=self.unflagged,
        )
        return objective_switches(self.objective, settings)

    def uses_span_detector(self) -> bool:
        """True when training flags tokens from gold spans (the objective has a detecting
        Misalign term and ``detector='spans'``)."""
        s = self.loss_settings()
        return self.detector == "spans" and s["misalign"] and s["detect"]


class CUTTrainer(Trainer):
    """A ``transformers.Trainer`` whose loss is CUT (or a baseline: ``args.objective``).

    ``train_dataset`` / ``eval_dataset`` may be lists of :class:`~cutkit.JudgmentRecord` (tokenized
    here for the config's objective with its template, lengths and Align-P downsampling; the build
    report is kept in ``self.build_reports``) or lists of examples from
    :func:`cutkit.objectives.build_objective_examples` / :func:`cutkit.batching.build_examples`.
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
        train_dataset = self._as_examples(train_dataset, "train", args, processing_class)
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
        micro-batch (:func:`cutkit.batching.context_length`); transformers would look for an
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
        return (loss, {"flagged": out.flagged}) if return_outputs else loss

    def cut_loss_output(self, model, inputs) -> CUTLossOutput:
        """Score the micro-batch and return the full :class:`CUTLossOutput`."""
        logp, mask = self._response_logprobs(model, inputs)  # (R, Lr) each
        n = inputs["negative"].shape[0]
        num_items = None
        if self.args.normalization != "official" and model.training:
            num_items = self._step_items
        settings = self.args.loss_settings()
        flagged = None
        detects = settings["misalign"] and settings["detect"]
        if detects and self.args.detector == "spans":
            flagged = _align(inputs["error_token_flags"], mask[:n])
        elif (
            detects
            and model.training
            and not self.args.detection_dropout
            and inputs["negative"].any()
        ):
            flagged = self._detect_without_dropout(model, inputs)
        return cut_loss(
            logp[:n],
            logp[inputs["plain_row"]],
            mask[:n],
            inputs["negative"],
            num_items=num_items,
            flagged=flagged,
            **settings,
        )

    def _response_logprobs(self, model, inputs):
        """Every context row's response log-probs, left-aligned: values and mask, (R, Lr)."""
        return label_logprobs_packed(
            model,
            inputs["input_ids"],
            inputs.get("attention_mask"),
            inputs["labels"],
            position_ids=inputs.get("position_ids"),
            chunk_size=self.args.chunk_size,
        )

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
        return detect_flagged(
            logp[:n], logp[inputs["plain_row"]], negative_tokens, self.args.threshold
        )

    # ------------------------------------------------------------------ the run directory
    def save_run(self, **extra) -> Path:
        """Save the adapter (or model), the tokenizer, ``trainer_state.json`` (metrics history)
        and ``cutkit_run.json`` (this config, the build reports and ``extra``) to output_dir."""
        out = Path(self.args.output_dir)
        self.save_model(str(out))
        self.save_state()
        if self.accelerator.is_main_process:
            run = {
                "cutkit_version": __version__,
                "config": self.args.to_dict(),
                "build_reports": {k: asdict(v) for k, v in self.build_reports.items()},
                **extra,
            }
            (out / RUN_FILE).write_text(json.dumps(run, indent=1, default=str))
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
