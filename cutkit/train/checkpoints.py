"""Checkpoint integrity: which checkpoints of a training run are complete, and a trainer that
writes, resumes and loads them so that a damaged one is named rather than half-loaded.

:class:`CompleteCheckpoints` (a mixin of :class:`~cutkit.train.trainer.CUTTrainer`) writes
:data:`CHECKPOINT_MANIFEST` (``cutkit_checkpoint.json``: every file of the checkpoint and its size)
into a ``checkpoint-N`` folder last, atomically, once every other file is written. A checkpoint is
*complete* when its manifest is there, every file it lists has the listed size, and the torch /
safetensors / JSON files open (their structure is intact). A save killed half-way leaves no
manifest, so resuming skips that checkpoint for the newest complete one.
"""

from __future__ import annotations

import json
import os
import re
import struct
import zipfile
from pathlib import Path

from transformers.utils import logging

from cutkit.data.atomic_write import write_json_atomic

CHECKPOINT_MANIFEST = "cutkit_checkpoint.json"
CHECKPOINT_FOLDER = re.compile(r"^checkpoint-(\d+)$")
"""The name of a checkpoint folder, ``checkpoint-<step>``."""

logger = logging.get_logger("cutkit.train.trainer")  # the name its warnings had before the move


class CheckpointError(ValueError):
    """A checkpoint cannot be resumed from: missing, incomplete or damaged files (named)."""


def write_checkpoint_manifest(folder: str | os.PathLike, step: int) -> Path:
    """Fsync every file of ``folder`` and then write its :data:`CHECKPOINT_MANIFEST` (the
    files and their sizes) atomically: the mark that the checkpoint is complete."""
    folder = Path(folder)
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != CHECKPOINT_MANIFEST and not path.name.startswith("."):
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
            files[path.relative_to(folder).as_posix()] = path.stat().st_size
    manifest = folder / CHECKPOINT_MANIFEST
    write_json_atomic(manifest, {"step": step, "files": files})
    return manifest


def file_problem(path: Path) -> str | None:
    """Why ``path`` (a checkpoint file) is damaged, or None: a torch file (.pt, .pth, .bin) must
    be a complete zip archive, a .safetensors file must hold its header's data, a .json file must
    parse."""
    try:
        if path.suffix in (".pt", ".pth", ".bin"):
            with zipfile.ZipFile(path) as archive:
                archive.infolist()
        elif path.suffix == ".safetensors":
            with open(path, "rb") as handle:
                (length,) = struct.unpack("<Q", handle.read(8))
                header = json.loads(handle.read(length))
            end = max(
                (v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"),
                default=0,
            )
            if path.stat().st_size < 8 + length + end:
                return f"{path.name} is truncated ({path.stat().st_size} bytes)"
        elif path.suffix == ".json":
            json.loads(path.read_text())
    except (OSError, ValueError, zipfile.BadZipFile, struct.error, KeyError, TypeError) as error:
        return f"{path.name} is damaged ({type(error).__name__}: {error})"
    return None


def checkpoint_problems(folder: str | os.PathLike, *, require_manifest: bool = True) -> list[str]:
    """What makes checkpoint ``folder`` unusable (empty when it is complete): no manifest, a
    listed file missing or of another size, a damaged file (:func:`file_problem`). Without
    ``require_manifest`` a folder with no manifest is checked for a trainer state and weights."""
    folder = Path(folder)
    if not folder.is_dir():
        return [f"{folder} is not a folder"]
    manifest = folder / CHECKPOINT_MANIFEST
    problems = []
    if manifest.exists():
        try:
            files = json.loads(manifest.read_text())["files"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            return [f"{CHECKPOINT_MANIFEST} is damaged ({error})"]
        for name, size in files.items():
            path = folder / name
            if not path.is_file():
                problems.append(f"{name} is missing")
            elif path.stat().st_size != size:
                problems.append(f"{name} has {path.stat().st_size} bytes, {size} when it was saved")
    elif require_manifest:
        return [f"no {CHECKPOINT_MANIFEST}: the save did not finish (interrupted)"]
    else:
        names = {p.name for p in folder.iterdir()}
        if "trainer_state.json" not in names:
            problems.append("trainer_state.json is missing")
        if not any(n.endswith((".safetensors", ".bin")) and "model" in n for n in names):
            problems.append("no model or adapter weights")
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.name != CHECKPOINT_MANIFEST:
            problem = file_problem(path)
            if problem and not any(p.startswith(path.name + " ") for p in problems):
                problems.append(problem)
    return problems


def checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """The ``checkpoint-N`` folders of ``run_dir``, newest (highest N) first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [
        (int(m.group(1)), p) for p in run_dir.iterdir() if (m := CHECKPOINT_FOLDER.match(p.name))
    ]
    return [p for _, p in sorted(found, reverse=True) if p.is_dir()]


def latest_complete_checkpoint(
    run_dir: str | os.PathLike,
) -> tuple[Path, list[tuple[Path, list[str]]]]:
    """``(checkpoint, skipped)``: the newest complete checkpoint of ``run_dir`` and the newer
    incomplete ones passed over, each with its problems. Raises :class:`CheckpointError` when
    there is no complete one."""
    skipped = []
    for folder in checkpoints(run_dir):
        problems = checkpoint_problems(folder)
        if not problems:
            return folder, skipped
        skipped.append((folder, problems))
    if not skipped:
        raise CheckpointError(f"no checkpoint to resume in {Path(run_dir).resolve()}")
    detail = "; ".join(f"{p.name}: {', '.join(why)}" for p, why in skipped)
    raise CheckpointError(
        f"no complete checkpoint to resume in {Path(run_dir).resolve()} ({detail}); start "
        "again, or pass one checkpoint folder to --resume to try it anyway (its files are "
        "checked as it loads)"
    )


def describe_skipped(skipped: list[tuple[Path, list[str]]]) -> str:
    """One line per skipped checkpoint: its name and problems."""
    return "\n".join(f"skipped incomplete {p.name}: {', '.join(why)}" for p, why in skipped)


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


class naming_damaged_files:
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


class CompleteCheckpoints:
    """Mixin (before ``transformers.Trainer`` in the bases): checkpoints written with a manifest
    last, resumed only when complete, and a damaged file named when loading fails. Expects the
    trainer to have ``_check_finite_weights`` (:class:`~cutkit.train.nonfinite.NonFiniteGuard`).
    """

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
        with naming_damaged_files(resume_from_checkpoint, "the model weights"):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _load_optimizer_and_scheduler(self, checkpoint):
        with naming_damaged_files(checkpoint, "the optimizer and scheduler"):
            return super()._load_optimizer_and_scheduler(checkpoint)

    def _load_rng_state(self, checkpoint):
        with naming_damaged_files(checkpoint, "the random states"):
            return super()._load_rng_state(checkpoint)

    def _load_scaler(self, checkpoint):
        with naming_damaged_files(checkpoint, "the gradient scaler"):
            return super()._load_scaler(checkpoint)
