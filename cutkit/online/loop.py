"""Online alignment: answer, get judged, train with CUT, repeat on new instructions.

Each round r = 1..R of :func:`run_online`:

1. takes ``instructions_per_round`` new tasks from :mod:`cutkit.online.generator` (never a
   held-out instruction or one of an earlier round);
2. answers them with the current model (batched, greedy by default; the prompt is the plain
   context of ``template``, the same one training scores); an answer that hit
   ``max_new_tokens`` before its EOS is *truncated*;
3. has the judge write judgments (:mod:`cutkit.online.judges`); failed judge calls, empty
   responses and junk judgments are recorded with their reason and never trained on; truncated
   answers are dropped the same way (``truncated="drop"``, the default), or judged as they are
   and trained on without an EOS (``truncated="keep"``: the record's ``meta["truncated"]`` is
   True);
4. trains a fresh LoRA with the configured objective (``cut``; ``sft`` on the accepted responses,
   i.e. rejection-sampling fine-tuning; ``hindsight``) on the model of the previous round, with
   Align-P downsampling (``align_p_ratio``), then merges it into the weights
   (:mod:`cutkit.online.training`);
5. answers the fixed held-out tasks greedily and measures the constraint-satisfaction rate
   (checked by :class:`~cutkit.online.judges.rule.RuleJudge`, whatever judge trains), and how
   many held-out answers are truncated or degenerate (:mod:`cutkit.eval.degeneration`).

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
The model is rebuilt on resume (:mod:`cutkit.online.resume`) by re-applying the saved adapters
to the base weights in order and merging each (no merged checkpoints are stored: an adapter is a
few MB, a merged model is the full model); a SHA-256 fingerprint of the weights after every
round, kept in its metrics, checks the rebuild.

>>> run = run_online(OnlineConfig(rounds=2, instructions_per_round=64))   # doctest: +SKIP
>>> run.table()[["satisfaction_rate", "accept_rate"]]                     # doctest: +SKIP
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cutkit._version import __version__
from cutkit.eval.generation import Generation
from cutkit.online.config import HELDOUT_FILE, PROGRESS_FILE, OnlineConfig, OnlineRun, summary_row
from cutkit.online.generator import generate_tasks, heldout_tasks
from cutkit.online.judges.base import Judge, JudgeFailure, JudgeUnavailable
from cutkit.online.judges.factory import judge_options, make_judge
from cutkit.online.resume import (
    check_resumable,
    completed_metrics,
    completed_rounds,
    rebuild_model,
    trained_rounds,
)
from cutkit.online.rounds import exclude_unspanned, heldout_metrics, judged_records, judging_summary
from cutkit.online.rundir import read_jsonl, round_dir, weights_fingerprint, write_json, write_jsonl
from cutkit.online.tasks import Task
from cutkit.online.text import clip
from cutkit.online.training import train_round
from cutkit.train.tracking import log_figures

logger = logging.getLogger(__name__)


class OnlineLoop:
    """The state of one run directory; :meth:`run` does the rounds (see the module docstring).

    Args:
        config: the run's settings.
        judge: a judge object; default: built from ``config.judge``
            (:func:`cutkit.online.judges.factory.make_judge`).
    """

    def __init__(self, config: OnlineConfig, judge: Judge | None = None):
        self.config = config
        self.run_dir = Path(config.output_dir)
        self._judge = judge
        self.model = self.tokenizer = None

    # ---------------------------------------------------------------- logging and state
    def log(self, message: str) -> None:
        """Progress: printed when ``show_progress`` (what ``cutkit online`` shows), else logged
        at INFO level."""
        if self.config.show_progress:
            print(f"[cutkit online] {message}", flush=True)
        else:
            logger.info(message)

    @property
    def judge(self) -> Judge:
        if self._judge is None:
            c = self.config
            options = judge_options(
                c.judge,
                batch_size=c.judge_batch_size,
                max_new_tokens=c.judge_max_new_tokens,
                show_progress=c.show_progress,
                timeout=c.judge_timeout,
                attempts=c.judge_attempts,
                concurrency=c.judge_concurrency,
                max_reply_bytes=c.judge_max_reply_bytes,
                deadline=c.judge_deadline,
                content_check=c.judge_content_check,
            )
            self._judge = make_judge(c.judge, seed=c.seed, device=c.device, **options)
        return self._judge

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
    def _load(self, metrics: Sequence[dict]) -> None:
        """The base model, with the adapters of the completed rounds (``metrics``) merged in."""
        trained = trained_rounds(self.run_dir, [m["round"] for m in metrics])
        if trained:
            self.log(
                f"resuming: re-applying the adapters of rounds {trained} to {self.config.model}"
            )
        self.model, self.tokenizer = rebuild_model(self.config, self.run_dir, metrics)

    # ---------------------------------------------------------------- rounds
    def run(self) -> OnlineRun:
        """Do every round not done yet; returns all rounds' metrics and the final model."""
        c = self.config
        # everything that can refuse the run comes before the run directory is made, so a failed
        # start leaves no empty run directory: a file in its place, other settings, the judge
        # (a bad API key), the model
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise ValueError(
                f"output_dir {self.run_dir} is a file, not a run directory; choose a folder path"
            )
        check_resumable(self.run_dir, c)
        completed = completed_rounds(self.run_dir)
        metrics = completed_metrics(self.run_dir, completed)
        if completed:
            self.log(f"{self.run_dir}: rounds {completed} are complete; they are not redone")
        if c.rounds >= len(completed) and c.rounds > 0:
            self.log(f"judge: {self.judge.name}")  # built now: a bad API key fails before work
        self._load(metrics)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        heldout = self._heldout_tasks()
        for r in range(c.rounds + 1):
            if r in completed:
                continue
            metrics.append(self.run_round(r, heldout))
            self._save_progress(metrics)
        return OnlineRun(self.run_dir, metrics, self.model, self.tokenizer)

    def _answer(self, tasks: Sequence[Task], *, sample: bool) -> list[Generation]:
        from cutkit.eval.generation import generate_answers

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
        log_figures(metrics["heldout"], self.run_dir / "tensorboard", c.report_to, step=r)
        write_jsonl(stage / "heldout.jsonl", rows)
        metrics["seconds"]["evaluate"] = round(time.perf_counter() - start, 2)
        metrics["fingerprint"] = weights_fingerprint(self.model)
        self.log(
            f"round {r}: held-out constraint satisfaction "
            f"{metrics['heldout']['satisfaction_rate']:.3f} "
            f"({metrics['heldout']['n_satisfied']}/{metrics['heldout']['n_tasks']}; honest "
            f"{metrics['heldout']['honest_rate']:.3f}; "
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
            from cutkit.data.loading import load_records

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
            raise judge_unavailable(r, self.judge, failures, stage)
        records, excluded = judged_records(
            r, tasks, responses, results, self.judge.name, truncated=truncated
        )
        write_jsonl(excluded_file, excluded)
        write_jsonl(records_file, [record.to_dict() for record in records])
        return records, excluded

    def _train_round(self, r: int, heldout: Sequence[Task], stage: Path, metrics: dict):
        """Round ``r``'s new tasks answered, judged and trained on; ``(train metrics, trainer
        settings or None)``."""
        c = self.config
        tasks = self._round_tasks(r, heldout)
        write_jsonl(stage / "tasks.jsonl", [t.to_dict() for t in tasks])
        records, excluded = self._judged(r, tasks, stage, metrics)
        if c.detector == "spans" and c.objective == "cut":
            records, excluded = exclude_unspanned(records, excluded)
            write_jsonl(stage / "excluded.jsonl", excluded)
        train = judging_summary(len(tasks), records, excluded, c.truncated)
        self.log(
            f"round {r}: {train['n_judged']} judged ({train['n_positive']} accepted, "
            f"{train['n_negative']} criticised), {train['n_excluded']} excluded; "
            f"{train['n_truncated']} answers hit max_new_tokens ({c.truncated})"
        )
        outcome = train_round(self.model, self.tokenizer, records, c, stage, seed=c.seed + r)
        train |= outcome.summary
        if outcome.args is None:
            self.log(f"round {r}: not training: {train['skip_reason']}")
            return train, None
        self.model = outcome.model
        metrics["seconds"]["train"] = outcome.seconds
        return train, outcome.args


def judge_unavailable(
    r: int, judge: Judge, failures: Sequence[JudgeFailure], stage: Path
) -> JudgeUnavailable:
    """The error of round ``r`` whose every judge call failed: which judge and endpoint, the most
    common reasons, what to do, and that ``stage`` (the partial round) is kept for resume."""
    reasons = "; ".join(
        f"{clip(reason, 160)} ({n}x)"
        for reason, n in Counter(f.reason for f in failures).most_common(3)
    )
    endpoint = getattr(judge, "url", None)
    where = f"{judge.name}" + (f", endpoint {endpoint}" if endpoint else "")
    return JudgeUnavailable(
        f"round {r}: all {len(failures)} judge calls failed ({where}); most common reasons: "
        f"{reasons}. Check that the endpoint is up and serves that model (URL, model name, API "
        "key, rate limit), or raise --judge_timeout / --judge_deadline. The partial round "
        f"{stage} is kept: run the same command again to resume from round {r} (its tasks are "
        "kept, its responses are judged again)"
    )


def run_online(config: OnlineConfig | None = None, *, judge: Judge | None = None) -> OnlineRun:
    """Run (or resume) online alignment as ``config`` says; see the module docstring."""
    return OnlineLoop(config or OnlineConfig(), judge).run()
