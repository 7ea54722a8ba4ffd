"""Settings of an online run and what it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from cutkit._checks import check_number
from cutkit.online.generator import check_families
from cutkit.online.judges.factory import parse_judge_spec
from cutkit.online.judges.http import LIMIT_WHY
from cutkit.online.tasks import HELDOUT_SEED
from cutkit.train.settings import CUTLevers, TrainSettings, shared_field
from cutkit.train.vocabulary import ONLINE_OBJECTIVES

TRUNCATED_CHOICES = ("drop", "keep")
"""What the loop does with an answer cut off at ``max_new_tokens`` (``OnlineConfig.truncated``)."""

TRUNCATED_REASON = "truncated at max_new_tokens"
"""The ``reason`` of a dropped truncated answer in ``excluded.jsonl``."""

FINISH_RATE_NOTE = (
    "192 (benchmarks/finish_rate/finish_rate.py): no limit lets >= 95% of SmolLM2-135M-Instruct's "
    "greedy answers finish in every constraint family, because about 12% of them are repetitive "
    "loops that never end (all families: 82% finish within 96 tokens, 87.4% within 192, 88.1% "
    "within 320; json_keys 57% and exclude_word 70% at 192); past 192 a longer limit finishes 0.7 "
    "points more answers at about 1.7 times the generation cost"
)
"""Where the ``max_new_tokens`` default comes from (benchmarks/finish_rate/finish_rate.md)."""

NO_SPANS_REASON = "no error spans (detector='spans' cannot train on it)"
PROGRESS_FILE = "online_run.json"
HELDOUT_FILE = "heldout_tasks.jsonl"
RESUME_MAY_CHANGE = (
    "rounds",
    "show_progress",
    "report_to",
    "device",
    "judge_timeout",
    "judge_attempts",
    "judge_concurrency",
    "judge_max_reply_bytes",
    "judge_deadline",
)
"""Settings a resumed run may change (the API judge's timeout, attempts, concurrency, reply cap
and deadline only decide how patiently the endpoint is called); any other difference from the stored
config is refused. A stored config without a setting (a run from an older version) matches any
value of it."""


@dataclass
class OnlineConfig(CUTLevers, TrainSettings):
    """Settings of an online alignment run (every field is also a ``cutkit online`` option).

    The model, LoRA, template, context and budget fields are :class:`TrainSettings`', the CUT
    levers :class:`CUTLevers`'; this class adds the rounds, the tasks, the judge and generation."""

    PRESET: ClassVar[str] = "online"

    # online's own defaults for two shared settings (PRESET_OVERRIDES["online"]): 1024 tokens
    # keep a prompt, a judgment and an answer of up to max_new_tokens whole; the rounds train
    # with the paper's learning rate (CUTConfig's), the short CPU runs of demo / compare with 1e-3
    max_length: int = shared_field(TrainSettings, "max_length", "online")
    learning_rate: float = shared_field(TrainSettings, "learning_rate", "online")
    output_dir: str = field(
        default="runs/online",
        metadata={"help": "Run directory (resumed when it holds a run).", "aliases": ["--output"]},
    )
    rounds: int = field(default=3, metadata={"help": "Training rounds after the base evaluation."})
    instructions_per_round: int = field(
        default=64, metadata={"help": "New instructions answered and judged per round."}
    )
    heldout: int = field(default=60, metadata={"help": "Size of the fixed held-out task set."})
    heldout_seed: int = field(
        default=HELDOUT_SEED, metadata={"help": "Seed of the held-out task set."}
    )
    objective: str = field(
        default="cut",
        metadata={
            "help": f"Training objective, one of {ONLINE_OBJECTIVES} (sft: rejection-sampling "
            "fine-tuning on the accepted responses; kto: accepted responses desirable, rejected "
            "ones undesirable).",
            "choices": ONLINE_OBJECTIVES,
        },
    )
    judge: str = field(
        default="rule",
        metadata={"help": "Judge: rule | model:PATH | openai:URL,MODEL[,ENV_VAR] (API key var)."},
    )
    judge_content_check: bool = field(
        default=True,
        metadata={
            "help": "Rule judge: also criticise answers that meet every constraint but are no "
            "sound answer (degenerate, too short, a fragment list, an echoed word, a tautology, "
            "off topic: cutkit.eval.content), as honest satisfaction scores them."
        },
    )
    seed: int = field(
        default=42, metadata={"help": "Seed of the instructions, LoRA init and data order."}
    )
    max_new_tokens: int = field(
        default=192,
        metadata={
            "help": "Longest response in tokens; a longer answer is cut off (see --truncated). "
            f"Default {FINISH_RATE_NOTE}."
        },
    )
    truncated: str = field(
        default="drop",
        metadata={
            "help": f"Answers cut off at max_new_tokens, one of {TRUNCATED_CHOICES}: drop = "
            "neither judged nor trained on (counted, and listed in excluded.jsonl); keep = "
            "judged as they are and trained on without an EOS (meta['truncated'])."
        },
    )
    generation_batch_size: int = field(
        default=16, metadata={"help": "Prompts per generation batch."}
    )
    do_sample: bool = field(
        default=False, metadata={"help": "Sample responses instead of greedy decoding (training)."}
    )
    families: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated task families (cutkit.online.tasks.KINDS) to draw "
            "instructions from; default: all."
        },
    )
    device: str | None = field(
        default=None, metadata={"help": "cpu, cuda, cuda:1...; default: CUDA if available."}
    )
    judge_batch_size: int = field(default=8, metadata={"help": "Prompts per batch (model judge)."})
    judge_max_new_tokens: int = field(
        default=256, metadata={"help": "Longest judgment in tokens (model and API judges)."}
    )
    judge_timeout: float = field(
        default=60.0,
        metadata={
            "help": "API judge: seconds per request, one deadline for connecting and reading the "
            "whole reply (a timed-out request is retried, see --judge_attempts)."
        },
    )
    judge_attempts: int = field(
        default=5,
        metadata={
            "help": "API judge: requests per response at most (1 = no retries); a response is "
            "given up on (excluded, never trained on) after about judge_attempts x "
            "judge_timeout seconds plus backoff."
        },
    )
    judge_concurrency: int = field(
        default=4, metadata={"help": "API judge: requests in flight at once."}
    )
    judge_max_reply_bytes: int = field(
        default=1_000_000,
        metadata={"help": "API judge: largest reply accepted, in bytes (a larger one fails)."},
    )
    judge_deadline: float = field(
        default=180.0,
        metadata={
            "help": "API judge: seconds the judging of one round may take in all; no request "
            "runs past it, and responses not judged by then are excluded (a round whose every "
            "call failed stops the run, its partial folder kept for resume)."
        },
    )
    show_progress: bool = field(default=True, metadata={"help": "Progress bars and logs."})
    training: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "Further CUTConfig fields for every round (on the command line: a JSON "
            "object, e.g. '{\"gamma\": 0.5}')."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()  # the levers
        if self.objective not in ONLINE_OBJECTIVES:
            raise ValueError(
                f"objective must be one of {ONLINE_OBJECTIVES} for online rounds, got "
                f"{self.objective!r}"
            )
        check_number("rounds", self.rounds, minimum=0, integer=True, why="training rounds")
        check_number("heldout", self.heldout, minimum=0, integer=True, why="held-out tasks")
        if self.objective == "kto":
            check_number(
                "batch_size",
                self.batch_size,
                minimum=2,
                integer=True,
                why="objective 'kto' estimates its KL term within a micro-batch",
            )
        check_number(
            "instructions_per_round",
            self.instructions_per_round,
            minimum=1,
            integer=True,
            why="new instructions answered and judged per round",
        )
        if self.truncated not in TRUNCATED_CHOICES:
            raise ValueError(
                f"truncated must be one of {TRUNCATED_CHOICES} (drop: cut-off answers are not "
                f"judged or trained on; keep: trained on without EOS), got {self.truncated!r}"
            )
        check_number(
            "max_new_tokens", self.max_new_tokens, minimum=1, integer=True, why="response tokens"
        )
        check_number(
            "judge_timeout",
            self.judge_timeout,
            minimum=0,
            min_open=True,
            why=LIMIT_WHY["timeout"],
        )
        for name, limit in (
            ("judge_attempts", "max_attempts"),
            ("judge_concurrency", "concurrency"),
            ("judge_max_reply_bytes", "max_reply_bytes"),
        ):
            check_number(name, getattr(self, name), minimum=1, integer=True, why=LIMIT_WHY[limit])
        check_number(
            "judge_deadline",
            self.judge_deadline,
            minimum=0,
            min_open=True,
            why="seconds one round may spend judging before it stops with the judge's error",
        )
        parse_judge_spec(self.judge)
        self.task_families()  # an unknown family fails here, before any work

    def task_families(self) -> tuple[str, ...] | None:
        """The families of ``families`` (None: all), checked."""
        if not self.families:
            return None
        return check_families(f.strip() for f in self.families.split(",") if f.strip())


@dataclass
class OnlineRun:
    """What :func:`run_online` returns: the run directory, every round's metrics (round 0 = the
    base model) and the final (merged) model with its tokenizer."""

    run_dir: Path
    metrics: list[dict[str, Any]]
    model: Any = None
    tokenizer: Any = None

    def table(self):
        """One row per round: held-out satisfaction rates (raw and honest) and the round's
        training figures."""
        import pandas as pd

        return pd.DataFrame([summary_row(m) for m in self.metrics]).set_index("round")


def summary_row(metrics: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of one round's metrics."""
    train = metrics.get("train") or {}
    return {
        "round": metrics["round"],
        "satisfaction_rate": metrics["heldout"]["satisfaction_rate"],
        "honest_rate": metrics["heldout"].get("honest_rate"),  # absent in runs made before it
        "accept_rate": train.get("accept_rate"),
        "n_negative": train.get("n_negative"),
        "n_positive": train.get("n_positive"),
        "n_excluded": train.get("n_excluded"),
        "n_truncated": train.get("n_truncated"),
        "heldout_truncated": metrics["heldout"].get("n_truncated"),
        "heldout_degenerate": metrics["heldout"].get("n_degenerate"),
        "trained": train.get("trained"),
        "train_loss": train.get("train_loss"),
    }
