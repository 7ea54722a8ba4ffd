"""CUTConfig and CUTTrainer: the CUT loss inside a standard ``transformers.Trainer``.

The trainer is thin: the collator lays out the contexts (:mod:`cutkit.train.batching`), one forward pass
scores every response token (:func:`cutkit.train.logprobs.label_logprobs_left_aligned`), and the pure loss
function (:func:`cutkit.train.losses.cut_loss`) does the maths. Everything else (LoRA, gradient
accumulation, checkpoints, DDP through ``torchrun`` / ``accelerate launch``, logging) is
``transformers.Trainer``'s own.

>>> from cutkit import load_model, load_records
>>> model, tok = load_model(lora=True)                                         # doctest: +SKIP
>>> args = CUTConfig(output_dir="runs/cut", max_steps=50, template="chat")     # doctest: +SKIP
>>> CUTTrainer(model, args, train_dataset=load_records("data/judgments/train.jsonl"),
...            processing_class=tok).train()                                   # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from cutkit._checks import check_number
from cutkit.train.distill import check_distill_settings
from cutkit.train.logprobs import CHUNK_MEMORY_MB, CHUNK_MEMORY_WHY, check_chunk_size
from cutkit.train.objectives import (
    check_objective,
    objective_switches,
)
from cutkit.train.settings import check_setting, setting
from cutkit.train.vocabulary import (
    DETECTORS,
    DISTILL_WEIGHT_WHY,
    GAMMA_WHY,
    NORMALIZATIONS,
    OBJECTIVES,
    UNFLAGGED,
)

RUN_FILE = "cutkit_run.json"


@dataclass
class CUTConfig(TrainingArguments):
    """Training arguments for CUT. Defaults follow the paper's recipe where it gives one
    (lr 4e-4, cosine, 100 warmup steps, 1 epoch, global batch 8 as micro-batch 1 x accumulation 8,
    cutoff 2048, lambda 1.1, alpha 1.0); every ``transformers.TrainingArguments`` field works too.

    Every numeric CUT setting (and the learning rate, warm-up, epochs and batch sizes) is checked
    at construction: a value that is not finite or out of range raises ValueError naming the
    field, the value, the range and why (:func:`cutkit._checks.check_number`)."""

    objective: str = field(
        default="cut",
        metadata={
            "help": f"Training objective, one of {OBJECTIVES}: CUT or one of the paper's "
            "baselines on the same records (equations in cutkit.train.objectives). The objective fixes "
            "the switches that define it (hindsight: misalign=False; ul_all: detect=False); DPO "
            "goes through cutkit.train.dpo.train_dpo."
        },
    )
    template: str = setting("template")
    max_length: int = setting("max_length")
    max_response_length: int | None = field(
        default=None,
        metadata={
            "help": "Responses longer than this (with EOS) are cut from the right; default max_length // 2."
        },
    )
    threshold: float = setting("threshold")
    ul_weight: float = setting("ul_weight")
    gamma: float = field(
        default=0.0,
        metadata={
            "help": "Dynamic weight exponent >= 0, finite: w_t = alpha * p_judged(t)^gamma (paper "
            "v4); 0 = constant alpha."
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
    align_p_ratio: float | None = setting("align_p_ratio")
    align_p: bool = field(
        default=True, metadata={"help": "Ablation switch: likelihood on good responses."}
    )
    align_n: bool = setting("align_n")
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
    detector: str = setting("detector")
    unflagged: str = setting("unflagged")
    distill_weight: float = field(
        default=1.0,
        metadata={
            "help": "self_distill only: weight (finite >= 0) of the per-token divergence "
            "T^2 KL(judged || plain) against the Align-P likelihood."
        },
    )
    distill_temperature: float = field(
        default=1.0,
        metadata={
            "help": "self_distill only: softmax temperature T > 0 of both contexts (the "
            "divergence is scaled by T^2)."
        },
    )
    distill_top_k: int | None = field(
        default=None,
        metadata={
            "help": "self_distill only: keep the teacher's k most probable tokens, renormalised; "
            "None distils the full vocabulary."
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
    chunk_size: int | str | None = field(
        default="auto",
        metadata={
            "help": "Output-layer rows per chunk when scoring tokens (memory vs speed): an "
            "integer >= 1; 'auto' (the default) follows the vocabulary, as many rows as keep the "
            "head's extra peak within chunk_memory_mb; none: no chunking, the full batch x "
            "length x vocabulary logits (as label_logprobs takes it)."
        },
    )
    chunk_memory_mb: float = field(
        default=CHUNK_MEMORY_MB,
        metadata={
            "help": "Bound of the output-layer head's extra peak memory over forward + backward, "
            "in MB (10**6 bytes), finite > 0, used when chunk_size is 'auto': a chunk of n rows "
            "holds n x V x 4 bytes of fp32 logits and the head peaks at about 3.25 chunks, so "
            "chunk_rows(V) = floor(chunk_memory_mb x 10**6 / (3.25 x 4 x V)) rows (76 at V = "
            "128,256 for 128 MB), at any number of tokens. Not in the bound, growing with the "
            "hidden size H: the hidden states' gradient (2 x H x 4 bytes per token) and, when "
            "the head is trained, the output weight's gradient (V x H x 4 bytes, up to 3 times "
            "that while the chunks' gradients are summed)."
        },
    )
    packing: bool = setting("packing")
    # paper recipe and CUT-friendly defaults for inherited fields (the shared ones declared in
    # cutkit.train.settings.SETTINGS)
    output_dir: str | None = field(
        default="runs/cut",
        metadata={
            "help": "Run directory: checkpoints, the adapter, the config and the metrics history.",
            "aliases": ["--output"],
        },
    )
    learning_rate: float = setting("learning_rate")
    lr_scheduler_type: str = field(
        default="cosine", metadata={"help": "Learning-rate schedule (paper: cosine)."}
    )
    warmup_steps: float = setting("warmup_steps")
    num_train_epochs: float = setting("num_train_epochs")
    per_device_train_batch_size: int = setting("per_device_train_batch_size")
    gradient_accumulation_steps: int = setting("gradient_accumulation_steps")
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
        check_setting(self, "threshold")
        self._check_numbers()
        if self.detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got {self.detector!r}")
        if self.unflagged not in UNFLAGGED:
            raise ValueError(f"unflagged must be one of {UNFLAGGED}, got {self.unflagged!r}")
        super().__post_init__()

    def _check_numbers(self) -> None:
        """Every numeric setting finite and in range (ValueError naming the field, the value, the
        range and why), before transformers or a model sees it."""
        check_setting(self, "ul_weight")
        check_number("gamma", self.gamma, minimum=0, why=GAMMA_WHY)
        check_number("distill_weight", self.distill_weight, minimum=0, why=DISTILL_WEIGHT_WHY)
        check_distill_settings(self.distill_temperature, self.distill_top_k)
        check_setting(self, "max_length")
        check_number(
            "max_response_length",
            self.max_response_length,
            minimum=1,
            maximum=self.max_length,
            max_open=True,
            integer=True,
            optional=True,
            why=f"the response shares max_length={self.max_length} with its prompt; None "
            "gives max_length // 2",
        )
        for name in ("align_p_ratio", "learning_rate", "warmup_steps"):
            check_setting(self, name)
        check_number(
            "num_train_epochs",
            self.num_train_epochs,
            minimum=0,
            min_open=not (self.max_steps and self.max_steps > 0),
            why="passes over the records (max_steps > 0 overrides it)",
        )
        for name in ("per_device_train_batch_size", "gradient_accumulation_steps"):
            check_setting(self, name)
        check_chunk_size(self.chunk_size)
        check_number(
            "chunk_memory_mb", self.chunk_memory_mb, minimum=0, min_open=True, why=CHUNK_MEMORY_WHY
        )

    def loss_settings(self) -> dict:
        """The keyword arguments of :func:`cutkit.train.losses.cut_loss` this config selects (the
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
        if self.objective == "self_distill":
            settings["distill_weight"] = self.distill_weight
        return objective_switches(self.objective, settings)

    def uses_span_detector(self) -> bool:
        """True when training flags tokens from gold spans (the objective has a detecting
        Misalign term and ``detector='spans'``)."""
        s = self.loss_settings()
        return self.detector == "spans" and s["misalign"] and s["detect"]
