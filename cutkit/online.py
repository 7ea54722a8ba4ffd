"""Online alignment: answer, get judged, train with CUT, repeat on new instructions.

Each round r = 1..R of :func:`run_online`:

1. takes ``instructions_per_round`` new tasks from :mod:`cutkit.constraints` (never a held-out
   instruction or one of an earlier round);
2. answers them with the current model (batched, greedy by default; the prompt is the plain
   context of ``template``, the same one training scores); an answer that hit
   ``max_new_tokens`` before its EOS is *truncated*;
3. has the judge write judgments (:mod:`cutkit.judges`); failed judge calls, empty responses and
   junk judgments are recorded with their reason and never trained on; truncated answers are
   dropped the same way (``truncated="drop"``, the default), or judged as they are and trained on
   without an EOS (``truncated="keep"``: the record's ``meta["truncated"]`` is True);
4. trains a fresh LoRA with the configured objective (``cut``; ``sft`` on the accepted responses,
   i.e. rejection-sampling fine-tuning; ``hindsight``) on the model of the previous round, with
   Align-P downsampling (``align_p_ratio``), then merges it into the weights;
5. answers the fixed held-out tasks greedily and measures the constraint-satisfaction rate
   (checked by :class:`~cutkit.judges.RuleJudge`, whatever judge trains), and how many held-out
   answers are truncated or degenerate (:mod:`cutkit.degeneration`).

Round 0 is the base model's held-out evaluation. Run directory layout::

    online_run.json          config, completed rounds, per-round summary (written atomically)
    heldout_tasks.jsonl      the fixed held-out tasks
    round-00/                metrics.json, heldout.jsonl, config.json
    round-01/                tasks.jsonl, records.jsonl (judged responses, cutkit record format:
                             cutkit.load_records reads it), excluded.jsonl (failed judge calls,
                             empty or truncated responses, junk; with reasons), adapter/ (peft),
                             trainer/ (trainer_state.json), heldout.jsonl, metrics.json,
                             config.json

A round is built in ``round-XX.partial/`` and renamed to ``round-XX/`` only when complete, then
``online_run.json`` is rewritten (temporary file + rename). An interrupted run started again with
the same settings (``rounds`` may grow) skips the completed rounds; if it stopped after judging,
the judged responses in ``round-XX.partial/`` are reused (no second round of judge calls).
The model is rebuilt on resume by re-applying the saved adapters to the base weights in order
and merging each (no merged checkpoints are stored: an adapter is a few MB, a merged model is
the full model); a SHA-256 fingerprint of the weights after every round, kept in its metrics,
checks the rebuild.

>>> run = run_online(OnlineConfig(rounds=2, instructions_per_round=64))   # doctest: +SKIP
>>> run.table()[["satisfaction_rate", "accept_rate"]]                     # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cutkit import __version__
from cutkit.constraints import (
    HELDOUT_SEED,
    Task,
    check,
    check_families,
    generate_tasks,
    heldout_tasks,
)
from cutkit.degeneration import DEGENERATION_KINDS, degeneration
from cutkit.judges import Judge, JudgeFailure, Judgment, RuleJudge, make_judge, parse_judge_spec
from cutkit.models import DEFAULT_MODEL
from cutkit.records import JUNK_REASONS, JudgmentRecord, junk_reason

if TYPE_CHECKING:
    from cutkit.generation import Generation

ONLINE_OBJECTIVES = ("cut", "sft", "hindsight")
"""Objectives the loop trains with (``sft``: on the responses the judge accepted)."""

TRUNCATED_CHOICES = ("drop", "keep")
"""What the loop does with an answer cut off at ``max_new_tokens`` (``OnlineConfig.truncated``)."""

TRUNCATED_REASON = "truncated at max_new_tokens"
"""The ``reason`` of a dropped truncated answer in ``excluded.jsonl``."""

FINISH_RATE_NOTE = (
    "192 (benchmarks/finish_rate.py): no limit lets >= 95% of SmolLM2-135M-Instruct's greedy "
    "answers finish in every constraint family, because about 12% of them are repetitive loops "
    "that never end (all families: 82% finish within 96 tokens, 87.4% within 192, 88.1% within "
    "320; json_keys 57% and exclude_word 70% at 192); past 192 a longer limit finishes 0.7 points "
    "more answers at about 1.7 times the generation cost"
)
"""Where the ``max_new_tokens`` default comes from (benchmarks/results/finish_rate.md)."""

NO_SPANS_REASON = "no error spans (detector='spans' cannot train on it)"
PROGRESS_FILE = "online_run.json"
HELDOUT_FILE = "heldout_tasks.jsonl"
RESUME_MAY_CHANGE = ("rounds", "show_progress", "device")
"""Settings a resumed run may change; any other difference from the stored config is refused."""


@dataclass
class OnlineConfig:
    """Settings of an online alignment run (every field is also a ``cutkit online`` option)."""

    model: str = field(
        default=DEFAULT_MODEL,
        metadata={"help": "Base model: a name, checkpoint folder, .gguf file or hub id."},
    )
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
            "fine-tuning on the accepted responses)."
        },
    )
    judge: str = field(
        default="rule",
        metadata={"help": "Judge: rule | model:PATH | openai:URL,MODEL[,ENV_VAR] (API key var)."},
    )
    seed: int = field(
        default=42, metadata={"help": "Seed of the instructions, LoRA init and data order."}
    )
    template: str = field(
        default="chat",
        metadata={"help": "Prompt template for answering and training: chat or alpaca."},
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
    epochs: float = field(default=1.0, metadata={"help": "Training epochs per round."})
    learning_rate: float = field(
        default=4e-4,
        metadata={"help": "Peak learning rate of each round's LoRA.", "aliases": ["--lr"]},
    )
    batch_size: int = field(default=8, metadata={"help": "Micro-batch size (records)."})
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "Micro-batches per optimizer step."}
    )
    warmup: float = field(
        default=0.1, metadata={"help": "Warm-up: a fraction of the steps (< 1) or a step count."}
    )
    align_p_ratio: float | None = field(
        default=0.25,
        metadata={"help": "Positives kept per negative (paper: 0.25); 'none' keeps all."},
    )
    threshold: float = field(default=1.1, metadata={"help": "Detection lambda."})
    detector: str = field(
        default="model",
        metadata={
            "help": "CUT lever: 'model' (the paper's judged/plain ratio) or 'spans' (the "
            "judge's error_spans; docs/method.md)."
        },
    )
    unflagged: str = field(
        default="mle",
        metadata={
            "help": "CUT lever: 'mle' (paper) or 'ignore' (no plain-prompt loss on "
            "unflagged tokens of a bad answer)."
        },
    )
    align_n: bool = field(
        default=True,
        metadata={"help": "CUT lever: the likelihood of a bad answer given its judgment."},
    )
    families: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated task families (cutkit.constraints.KINDS) to draw "
            "instructions from; default: all."
        },
    )
    ul_weight: float = field(default=1.0, metadata={"help": "Unlikelihood weight alpha."})
    max_length: int = field(default=1024, metadata={"help": "Longest training context, tokens."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank (paper: 16)."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha (paper: 16)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout (paper: 0.05)."})
    device: str | None = field(
        default=None, metadata={"help": "cpu, cuda, cuda:1...; default: CUDA if available."}
    )
    judge_batch_size: int = field(default=8, metadata={"help": "Prompts per batch (model judge)."})
    judge_max_new_tokens: int = field(
        default=256, metadata={"help": "Longest judgment in tokens (model and API judges)."}
    )
    show_progress: bool = field(default=True, metadata={"help": "Progress bars and logs."})
    training: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Further CUTConfig fields for every round (Python API only)."},
    )

    def __post_init__(self) -> None:
        if self.objective not in ONLINE_OBJECTIVES:
            raise ValueError(
                f"objective must be one of {ONLINE_OBJECTIVES} for online rounds, got "
                f"{self.objective!r}"
            )
        for name in ("rounds", "heldout"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.instructions_per_round < 1:
            raise ValueError("instructions_per_round must be >= 1")
        if self.truncated not in TRUNCATED_CHOICES:
            raise ValueError(
                f"truncated must be one of {TRUNCATED_CHOICES} (drop: cut-off answers are not "
                f"judged or trained on; keep: trained on without EOS), got {self.truncated!r}"
            )
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        parse_judge_spec(self.judge)
        self.task_families()  # an unknown family fails here, before any work
        from cutkit.losses import UNFLAGGED
        from cutkit.trainer import DETECTORS

        if self.detector not in DETECTORS or self.unflagged not in UNFLAGGED:
            raise ValueError(
                f"detector must be one of {DETECTORS} and unflagged one of {UNFLAGGED}, got "
                f"{self.detector!r} and {self.unflagged!r}"
            )

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
        """One row per round: held-out satisfaction rate and the round's training figures."""
        import pandas as pd

        return pd.DataFrame([summary_row(m) for m in self.metrics]).set_index("round")


def summary_row(metrics: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of one round's metrics."""
    train = metrics.get("train") or {}
    return {
        "round": metrics["round"],
        "satisfaction_rate": metrics["heldout"]["satisfaction_rate"],
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


# ----------------------------------------------------------------------------- files


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    """Write JSON to ``path`` atomically (temporary file + rename)."""
    _write_atomic(path, json.dumps(data, indent=1, default=str) + "\n")


def write_jsonl(path: Path, rows: Sequence[dict]) -> None:
    """Write one JSON object per line to ``path`` atomically."""
    _write_atomic(path, "".join(json.dumps(row, default=str) + "\n" for row in rows))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def round_dir(run_dir: Path, r: int) -> Path:
    return Path(run_dir) / f"round-{r:02d}"


def weights_fingerprint(model) -> str:
    """SHA-256 of every parameter and buffer's bytes, in name order (16 hex digits)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(dtype=_u8()).numpy())
    return digest.hexdigest()[:16]


def _u8():
    import torch

    return torch.uint8


# ----------------------------------------------------------------------------- records


def judged_records(
    r: int,
    tasks: Sequence[Task],
    responses: Sequence[str],
    results: Sequence[Judgment | JudgeFailure | None],
    judge_name: str,
    *,
    truncated: Sequence[bool] | None = None,
) -> tuple[list[JudgmentRecord], list[dict[str, Any]]]:
    """Records to train on and the excluded rows (failed judge call, empty or truncated response,
    junk judgment, each with its ``reason``). ``results[i]`` is None for a response never judged.

    ``truncated[i]`` is True for a response cut off at ``max_new_tokens`` (None: none was): a
    judged one becomes a record with ``meta["truncated"] = True`` (trained on without EOS), an
    unjudged one is excluded with :data:`TRUNCATED_REASON`; excluded rows of truncated responses
    carry ``"truncated": True``."""
    records, excluded = [], []
    flags = [False] * len(tasks) if truncated is None else truncated
    for task, response, result, cut in zip(tasks, responses, results, flags, strict=True):
        record_id = f"r{r:02d}-{task.id}"
        row = {"id": record_id, "instruction": task.instruction, "output": response}
        if cut:
            row["truncated"] = True
        if result is None:
            reason = TRUNCATED_REASON if cut and response.strip() else "empty response (not judged)"
            excluded.append({**row, "reason": reason})
            continue
        if isinstance(result, JudgeFailure):
            excluded.append({**row, "reason": result.reason, "attempts": result.attempts})
            continue
        record = JudgmentRecord(
            id=record_id,
            instruction=task.instruction,
            response=response,
            judgment=result.text,
            is_positive=result.is_positive,
            error_spans=result.error_spans,
            meta={
                "round": r,
                "judge": judge_name,
                "attempts": result.attempts,
                "task": task.to_dict(),
                **result.meta,
                **({"truncated": True} if cut else {}),
            },
        )
        reason = junk_reason(record)
        if reason is not None:
            excluded.append({**row, "judgment": result.text, "reason": JUNK_REASONS[reason]})
            continue
        records.append(record)
    return records, excluded


def heldout_metrics(
    tasks: Sequence[Task],
    responses: Sequence[str | Generation],
    finished: Sequence[bool] | None = None,
) -> tuple[dict, list[dict]]:
    """Constraint-satisfaction figures of ``responses`` to the held-out ``tasks`` and one row per
    task (response, whether it finished, RuleJudge judgment, violated kinds, degeneration).

    Args:
        tasks: the held-out tasks.
        responses: one answer per task: a string, or a :class:`~cutkit.generation.Generation`
            (its ``finished`` flag is used).
        finished: per answer, False when it was cut off at ``max_new_tokens``; None: taken from
            Generation answers, and every plain-string answer counts as finished.

    Returns ``(metrics, rows)``; metrics: ``satisfaction_rate`` (share of tasks with every
    constraint met by a non-empty response), ``by_family`` (the same per family),
    ``by_constraint`` (share of constraints of each kind met), ``mean_words``, ``n_empty``,
    ``n_truncated`` (answers cut off at the token limit), ``n_degenerate`` (empty, truncated or
    repetitive: :func:`cutkit.degeneration.degeneration`) and ``degenerate`` (the count of each
    of those reasons, the first that applies per answer).
    """
    from cutkit.generation import Generation

    if finished is None:
        finished = [r.finished if isinstance(r, Generation) else True for r in responses]
    responses = [r.text if isinstance(r, Generation) else r for r in responses]
    judge = RuleJudge(seed=0)
    rows, family, kinds = [], {}, {}
    for task, response, done in zip(tasks, responses, finished, strict=True):
        violations = check(task, response)
        broken = {v.kind for v in violations}
        ok = not violations and bool(response.strip())  # an empty answer is no answer
        family.setdefault(task.family, []).append(ok)
        for c in task.constraints:
            kinds.setdefault(c.kind, []).append(bool(response.strip()) and c.kind not in broken)
        rows.append(
            {
                "id": task.id,
                "family": task.family,
                "instruction": task.instruction,
                "response": response,
                "finished": bool(done),
                "satisfied": ok,
                "violations": sorted(broken) if response.strip() else ["empty"],
                "degenerate": degeneration(response, bool(done)),
                "judgment": judge.judge_one(task, response).text,
            }
        )
    n = len(rows)
    metrics = {
        "n_tasks": n,
        "n_satisfied": sum(row["satisfied"] for row in rows),
        "satisfaction_rate": sum(row["satisfied"] for row in rows) / n if n else float("nan"),
        "by_family": {k: sum(v) / len(v) for k, v in sorted(family.items())},
        "by_constraint": {k: sum(v) / len(v) for k, v in sorted(kinds.items())},
        "mean_words": sum(len(r.split()) for r in responses) / n if n else float("nan"),
        "n_empty": sum(not r.strip() for r in responses),
        "n_truncated": sum(not row["finished"] for row in rows),
        "n_degenerate": sum(row["degenerate"] is not None for row in rows),
        "degenerate": {
            kind: sum(row["degenerate"] == kind for row in rows) for kind in DEGENERATION_KINDS
        },
    }
    return metrics, rows


# ----------------------------------------------------------------------------- the loop


class OnlineLoop:
    """The state of one run directory; :meth:`run` does the rounds (see the module docstring).

    Args:
        config: the run's settings.
        judge: a judge object; default: built from ``config.judge`` (:func:`cutkit.judges.make_judge`).
    """

    def __init__(self, config: OnlineConfig, judge: Judge | None = None):
        self.config = config
        self.run_dir = Path(config.output_dir)
        self._judge = judge
        self.model = self.tokenizer = None

    # ---------------------------------------------------------------- logging and state
    def log(self, message: str) -> None:
        if self.config.show_progress:
            print(f"[cutkit online] {message}", flush=True)

    @property
    def judge(self) -> Judge:
        if self._judge is None:
            c = self.config
            options: dict[str, Any] = {}
            if c.judge.startswith("model:"):
                options = dict(
                    batch_size=c.judge_batch_size,
                    max_new_tokens=c.judge_max_new_tokens,
                    show_progress=c.show_progress,
                )
            elif c.judge.startswith("openai:"):
                options = dict(max_tokens=c.judge_max_new_tokens, show_progress=c.show_progress)
            self._judge = make_judge(c.judge, seed=c.seed, device=c.device, **options)
        return self._judge

    def _progress(self) -> dict[str, Any]:
        path = self.run_dir / PROGRESS_FILE
        if path.exists():
            return json.loads(path.read_text())
        return {}

    def _check_resumable(self, progress: dict[str, Any]) -> None:
        stored = progress.get("config", {})
        current = json.loads(json.dumps(asdict(self.config), default=str))
        changed = [
            f"{k}: {stored.get(k)!r} -> {current[k]!r}"
            for k in current
            if k not in RESUME_MAY_CHANGE and k in stored and stored[k] != current[k]
        ]
        if changed:
            raise ValueError(
                f"{self.run_dir} holds a run made with other settings ({'; '.join(changed)}). "
                "Resume it with the same settings (only rounds, show_progress and device may "
                "change), or choose a new --output directory"
            )

    def _completed_rounds(self) -> list[int]:
        """Rounds 0, 1, ... whose folder is complete (a round folder only gets its final name
        once everything in it is written, so this also covers a run stopped between that rename
        and the progress-file update)."""
        r = 0
        while (round_dir(self.run_dir, r) / "metrics.json").exists():
            r += 1
        return list(range(r))

    def _save_progress(self, metrics: list[dict[str, Any]]) -> None:
        write_json(
            self.run_dir / PROGRESS_FILE,
            {
                "cutkit_version": __version__,
                "config": asdict(self.config),
                "judge": self._judge.name if self._judge else self.config.judge,
                "completed_rounds": [m["round"] for m in metrics],
                "summary": [summary_row(m) for m in metrics],
                "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
        )

    def _heldout_tasks(self) -> list[Task]:
        path = self.run_dir / HELDOUT_FILE
        if path.exists():
            return [Task.from_dict(row) for row in read_jsonl(path)]
        tasks = heldout_tasks(
            self.config.heldout, self.config.heldout_seed, self.config.task_families()
        )
        write_jsonl(path, [t.to_dict() for t in tasks])
        return tasks

    def _round_tasks(self, r: int, heldout: Sequence[Task]) -> list[Task]:
        used = {t.instruction for t in heldout}
        for earlier in range(1, r):
            tasks_file = round_dir(self.run_dir, earlier) / "tasks.jsonl"
            used |= {row["instruction"] for row in read_jsonl(tasks_file)}
        return generate_tasks(
            self.config.instructions_per_round,
            self.config.seed,
            exclude=used,
            families=self.config.task_families(),
        )

    # ---------------------------------------------------------------- model
    def _load(self, completed: Sequence[int], metrics: Sequence[dict]) -> None:
        from cutkit.models import load_model

        c = self.config
        self.model, self.tokenizer = load_model(c.model, device=c.device)
        trained = [r for r in completed if (round_dir(self.run_dir, r) / "adapter").exists()]
        if trained:
            from peft import PeftModel

            self.log(f"resuming: re-applying the adapters of rounds {trained} to {c.model}")
            for r in trained:
                adapter = round_dir(self.run_dir, r) / "adapter"
                self.model = PeftModel.from_pretrained(self.model, adapter).merge_and_unload()
        if metrics:
            expected = metrics[-1].get("fingerprint")
            found = weights_fingerprint(self.model)
            if expected and found != expected:
                warnings.warn(
                    f"the rebuilt model's weights (fingerprint {found}) differ from those round "
                    f"{metrics[-1]['round']} ended with ({expected}); numerics may differ (e.g. "
                    "another device or dtype)",
                    stacklevel=2,
                )

    # ---------------------------------------------------------------- rounds
    def run(self) -> OnlineRun:
        """Do every round not done yet; returns all rounds' metrics and the final model."""
        c = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        progress = self._progress()
        if progress:
            self._check_resumable(progress)
        completed = self._completed_rounds()
        metrics = [
            json.loads((round_dir(self.run_dir, r) / "metrics.json").read_text()) for r in completed
        ]
        if completed:
            self.log(f"{self.run_dir}: rounds {completed} are complete; they are not redone")
        if c.rounds >= len(completed) and c.rounds > 0:
            self.log(f"judge: {self.judge.name}")  # built now: a bad API key fails before work
        heldout = self._heldout_tasks()
        self._load(completed, metrics)
        for r in range(c.rounds + 1):
            if r in completed:
                continue
            metrics.append(self.run_round(r, heldout))
            self._save_progress(metrics)
        return OnlineRun(self.run_dir, metrics, self.model, self.tokenizer)

    def _answer(self, tasks: Sequence[Task], *, sample: bool) -> list[Generation]:
        from cutkit.generation import generate_answers

        c = self.config
        return generate_answers(
            self.model,
            self.tokenizer,
            [t.instruction for t in tasks],
            template=c.template,
            batch_size=c.generation_batch_size,
            max_new_tokens=c.max_new_tokens,
            do_sample=sample,
            progress=c.show_progress,
        )

    def run_round(self, r: int, heldout: Sequence[Task]) -> dict[str, Any]:
        """Round ``r`` (0: evaluate the base model only), written to ``round-XX/``."""
        c = self.config
        stage = round_dir(self.run_dir, r).with_name(f"round-{r:02d}.partial")
        stage.mkdir(exist_ok=True)
        metrics: dict[str, Any] = {"round": r, "seconds": {}}
        training_config = None
        if r > 0:
            self.log(f"round {r}/{c.rounds}")
            train_metrics, training_config = self._train_round(r, heldout, stage, metrics)
            metrics["train"] = train_metrics
        start = time.perf_counter()
        answers = self._answer(heldout, sample=False)
        metrics["heldout"], rows = heldout_metrics(heldout, answers)
        write_jsonl(stage / "heldout.jsonl", rows)
        metrics["seconds"]["evaluate"] = round(time.perf_counter() - start, 2)
        metrics["fingerprint"] = weights_fingerprint(self.model)
        self.log(
            f"round {r}: held-out constraint satisfaction "
            f"{metrics['heldout']['satisfaction_rate']:.3f} "
            f"({metrics['heldout']['n_satisfied']}/{metrics['heldout']['n_tasks']}; "
            f"{metrics['heldout']['n_truncated']} truncated, "
            f"{metrics['heldout']['n_degenerate']} degenerate)"
        )
        write_json(
            stage / "config.json",
            {
                "cutkit_version": __version__,
                "round": r,
                "online": asdict(c),
                "judge": self.judge.name if r > 0 else None,
                "training": training_config,
            },
        )
        write_json(stage / "metrics.json", metrics)
        final = round_dir(self.run_dir, r)
        if final.exists():  # a complete folder the progress file did not list was not adopted
            shutil.rmtree(final)
        stage.rename(final)
        return metrics

    def _judged(self, r: int, tasks: list[Task], stage: Path, metrics: dict):
        """Answer and judge this round's tasks, or reuse what an interrupted attempt saved."""
        records_file, excluded_file = stage / "records.jsonl", stage / "excluded.jsonl"
        if records_file.exists() and excluded_file.exists():
            from cutkit.loaders import load_records

            self.log(f"round {r}: reusing the judged responses saved before an interruption")
            records = load_records(records_file) if records_file.stat().st_size else []
            return records, read_jsonl(excluded_file)
        start = time.perf_counter()
        answers = self._answer(tasks, sample=self.config.do_sample)
        responses = [a.text for a in answers]
        truncated = [not a.finished for a in answers]
        metrics["seconds"]["generate"] = round(time.perf_counter() - start, 2)
        start = time.perf_counter()
        keep = self.config.truncated == "keep"
        to_judge = [
            i
            for i, response in enumerate(responses)
            if response.strip() and (keep or not truncated[i])
        ]
        self.log(f"round {r}: judging {len(to_judge)} responses with {self.judge.name}")
        results: list[Any] = [None] * len(tasks)
        judged = self.judge.judge([tasks[i] for i in to_judge], [responses[i] for i in to_judge])
        for i, result in zip(to_judge, judged, strict=True):
            results[i] = result
        metrics["seconds"]["judge"] = round(time.perf_counter() - start, 2)
        failures = [x for x in judged if isinstance(x, JudgeFailure)]
        if judged and len(failures) == len(judged):
            reasons = Counter(f.reason for f in failures).most_common(3)
            raise RuntimeError(
                f"round {r}: all {len(judged)} judge calls failed ({self.judge.name}); most "
                f"common reasons: {reasons}. Check the judge (endpoint, model name, API key)"
            )
        records, excluded = judged_records(
            r, tasks, responses, results, self.judge.name, truncated=truncated
        )
        write_jsonl(excluded_file, excluded)
        write_jsonl(records_file, [record.to_dict() for record in records])
        return records, excluded

    def _train_round(self, r: int, heldout: Sequence[Task], stage: Path, metrics: dict):
        from transformers import set_seed

        from cutkit.models import apply_lora
        from cutkit.objectives import build_objective_examples
        from cutkit.trainer import CUTConfig, CUTTrainer

        c = self.config
        tasks = self._round_tasks(r, heldout)
        write_jsonl(stage / "tasks.jsonl", [t.to_dict() for t in tasks])
        records, excluded = self._judged(r, tasks, stage, metrics)
        if c.detector == "spans" and c.objective == "cut":
            # oracle detection needs the criticised spans; a judgment without them is kept out
            # of training (counted with its reason), never trained with made-up flags
            no_spans = [rec for rec in records if rec.is_negative and not rec.error_spans]
            records = [rec for rec in records if rec not in no_spans]
            known = {row["id"] for row in excluded}
            excluded = excluded + [
                {
                    "id": rec.id,
                    "instruction": rec.instruction,
                    "output": rec.response,
                    "judgment": rec.judgment,
                    "reason": NO_SPANS_REASON,
                }
                for rec in no_spans
                if rec.id not in known
            ]
            write_jsonl(stage / "excluded.jsonl", excluded)
        n_positive = sum(rec.is_positive for rec in records)
        n_truncated = sum(bool(rec.meta.get("truncated")) for rec in records)
        n_truncated += sum(bool(row.get("truncated")) for row in excluded)
        train: dict[str, Any] = {
            "n_instructions": len(tasks),
            "n_judged": len(records),
            "n_excluded": len(excluded),
            "n_truncated": n_truncated,
            "truncated": c.truncated,
            "excluded": dict(Counter(_reason_kind(row["reason"]) for row in excluded)),
            "n_positive": n_positive,
            "n_negative": len(records) - n_positive,
            "accept_rate": n_positive / len(records) if records else float("nan"),
            "trained": False,
        }
        self.log(
            f"round {r}: {len(records)} judged ({n_positive} accepted, "
            f"{len(records) - n_positive} criticised), {len(excluded)} excluded; "
            f"{n_truncated} answers hit max_new_tokens ({c.truncated})"
        )
        seed = c.seed + r
        args = CUTConfig(
            **{
                "output_dir": str(stage / "trainer"),
                "objective": c.objective,
                "template": c.template,
                "max_length": c.max_length,
                "align_p_ratio": c.align_p_ratio,
                "threshold": c.threshold,
                "ul_weight": c.ul_weight,
                "detector": c.detector,
                "unflagged": c.unflagged,
                "align_n": c.align_n,
                "num_train_epochs": c.epochs,
                "learning_rate": c.learning_rate,
                "per_device_train_batch_size": c.batch_size,
                "gradient_accumulation_steps": c.gradient_accumulation_steps,
                "warmup_steps": c.warmup,
                "logging_steps": 1,
                "save_strategy": "no",
                "report_to": "none",
                "disable_tqdm": not c.show_progress,
                "seed": seed,
                "data_seed": seed,
                "use_cpu": str(self.model.device) == "cpu",
                **c.training,
            }
        )
        examples, report = [], None
        try:
            if records:
                examples, report = build_objective_examples(
                    records,
                    self.tokenizer,
                    c.objective,
                    c.template,
                    max_length=args.max_length,
                    max_response_length=args.max_response_length,
                    align_p_ratio=args.align_p_ratio,
                    seed=seed,
                )
        except ValueError as error:  # e.g. sft without any accepted response
            train["skip_reason"] = str(error)
        if report is not None:
            train["build_report"] = asdict(report)
        if not examples:
            train.setdefault("skip_reason", "no training examples (see build_report / excluded)")
            self.log(f"round {r}: not training: {train['skip_reason']}")
            return train, None
        start = time.perf_counter()
        set_seed(seed)  # the LoRA initialisation draws from the global generator
        model = apply_lora(
            self.model, {"r": c.lora_r, "lora_alpha": c.lora_alpha, "lora_dropout": c.lora_dropout}
        )
        trainer = CUTTrainer(model, args, train_dataset=examples, processing_class=self.tokenizer)
        if not c.show_progress:
            from transformers import PrinterCallback

            trainer.remove_callback(PrinterCallback)  # it prints every log line without tqdm
        output = trainer.train()
        trainer.save_state()
        model.save_pretrained(stage / "adapter")
        self.model = model.merge_and_unload()
        self.model.eval()
        metrics["seconds"]["train"] = round(time.perf_counter() - start, 2)
        train |= {
            "trained": True,
            "n_examples": len(examples),
            "steps": output.global_step,
            "train_loss": output.training_loss,
            "log_history": trainer.state.log_history,
        }
        return train, args.to_dict()


def _reason_kind(reason: str) -> str:
    """A short key for counting exclusion reasons ("HTTP 500", "timed out", ...)."""
    return reason.split(":")[0].split(" (")[0]


def run_online(config: OnlineConfig | None = None, *, judge: Judge | None = None) -> OnlineRun:
    """Run (or resume) online alignment as ``config`` says; see the module docstring."""
    return OnlineLoop(config or OnlineConfig(), judge).run()


# ----------------------------------------------------------------------------- CLI


def _optional_float(text: str) -> float | None:
    return None if text.lower() in ("none", "null", "") else float(text)


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


_ARG_TYPES = {
    "int": int,
    "float": float,
    "str": str,
    "bool": _bool,
    "float | None": _optional_float,
    "str | None": str,
}
_CLI_ALIASES = {"epochs": ["--num-train-epochs"], "batch_size": ["--per-device-train-batch-size"]}


def add_online_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add one option per :class:`OnlineConfig` field (``--instructions-per-round``, ...;
    ``--output`` and ``--lr`` are aliases) to ``parser``; returns it."""
    for f in dataclasses.fields(OnlineConfig):
        if f.name == "training":
            continue
        flags = [f"--{f.name.replace('_', '-')}", *f.metadata.get("aliases", [])]
        flags += _CLI_ALIASES.get(f.name, [])
        if "_" in f.name:
            flags.append(f"--{f.name}")
        default = f.default
        parser.add_argument(
            *flags,
            dest=f.name,
            type=_ARG_TYPES[str(f.type)],
            default=default,
            metavar=f.name.upper(),
            help=f"{f.metadata['help']} (default: {default})".replace("%", "%%"),
        )
    return parser


def run_online_from_args(args: argparse.Namespace) -> OnlineRun:
    """Run :func:`run_online` with the options of :func:`add_online_arguments` and print the
    per-round table."""
    names = {f.name for f in dataclasses.fields(OnlineConfig)}
    config = OnlineConfig(**{k: v for k, v in vars(args).items() if k in names})
    run = run_online(config)
    print(run.table().to_string(float_format=lambda x: f"{x:.3f}"))
    print(f"[cutkit online] run directory: {run.run_dir}/")
    return run


def online_main(argv: list[str] | None = None) -> OnlineRun:
    """``cutkit online``: online alignment rounds with a judge (module docstring)."""
    parser = argparse.ArgumentParser(
        prog="cutkit online",
        description="Online alignment: each round answers new instructions, has them judged, "
        "trains a fresh LoRA on the merged model of the previous round, and evaluates "
        "constraint satisfaction on a fixed held-out set. Resumes an interrupted run.",
    )
    add_online_arguments(parser)
    return run_online_from_args(parser.parse_args(argv))
