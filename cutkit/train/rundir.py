"""The training run directory: who owns it, and the adapter it leaves.

Ownership: ``cutkit train`` writes :data:`OWNER_FILE` (``cutkit_owner.json``) into the run
directory before it trains: the cutkit version, the settings (paths resolved) and a fingerprint of
the training records. Another run into a directory that holds one is refused unless it asks to
overwrite; a resume must match the stored settings (but for :data:`RESUME_MAY_CHANGE`) and data.

Checkpoints (which are complete, and how the trainer writes and resumes them) live in
:mod:`cutkit.train.checkpoints`; their names are re-exported here, their home before.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from cutkit.data.atomic_write import write_json_atomic as write_json_atomic  # its old home
from cutkit.train.checkpoints import CHECKPOINT_FOLDER, file_problem

# re-exported from their home before cutkit.train.checkpoints (``X as X``: kept on purpose)
from cutkit.train.checkpoints import CHECKPOINT_MANIFEST as CHECKPOINT_MANIFEST
from cutkit.train.checkpoints import CheckpointError as CheckpointError
from cutkit.train.checkpoints import checkpoint_problems as checkpoint_problems
from cutkit.train.checkpoints import checkpoints as checkpoints
from cutkit.train.checkpoints import describe_skipped as describe_skipped
from cutkit.train.checkpoints import latest_complete_checkpoint as latest_complete_checkpoint
from cutkit.train.checkpoints import write_checkpoint_manifest as write_checkpoint_manifest

OWNER_FILE = "cutkit_owner.json"
RESUME_MAY_CHANGE = frozenset(
    {
        "resume",
        "overwrite",
        "eval_data",
        "logging_steps",
        "logging_first_step",
        "logging_strategy",
        "logging_dir",
        "log_level",
        "save_steps",
        "save_strategy",
        "save_total_limit",
        "eval_steps",
        "eval_strategy",
        "disable_tqdm",
        "report_to",
        "run_name",
        "dataloader_num_workers",
        "dataloader_prefetch_factor",
        "dataloader_persistent_workers",
        "dataloader_pin_memory",
        "use_cpu",
        "output_dir",
    }
)
"""Settings a resumed run may change: what it logs, saves and shows, and where it runs."""


class RunDirError(ValueError):
    """The run directory refuses this run (another run's, or other settings on resume)."""


# ---------------------------------------------------------------------------------- ownership


def records_fingerprint(records: Iterable[Any]) -> str:
    """SHA-256 (hex) of the records' fields in order: the data a run trains on, whatever file,
    format or path it was read from."""
    digest = hashlib.sha256()
    for record in records:
        fields = asdict(record) if is_dataclass(record) else record
        digest.update(json.dumps(fields, sort_keys=True, default=str).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def resolved(value: Any) -> Any:
    """A path-like setting as its resolved absolute path (when it names an existing file or
    folder); anything else unchanged."""
    if isinstance(value, str | os.PathLike) and str(value) and Path(value).expanduser().exists():
        return str(Path(value).expanduser().resolve())
    return value


def run_identity(settings: dict[str, Any], data_fingerprint: str, version: str) -> dict:
    """What :data:`OWNER_FILE` holds: the cutkit version, the settings (JSON values, existing paths
    resolved) and the training data's fingerprint."""
    settings = json.loads(json.dumps(settings, default=str))
    return {
        "cutkit_version": version,
        "settings": {key: resolved(value) for key, value in sorted(settings.items())},
        "data_sha256": data_fingerprint,
    }


def is_run_directory(path: Path) -> bool:
    """Whether ``path`` holds what a training run writes (an owner file, a run file, a
    checkpoint, a trainer state or a saved adapter)."""
    names = {p.name for p in Path(path).iterdir()}
    markers = {OWNER_FILE, "cutkit_run.json", "trainer_state.json", "adapter_config.json"}
    return bool(names & markers) or any(CHECKPOINT_FOLDER.match(n) for n in names)


def identity_differences(stored: dict, current: dict) -> list[str]:
    """'what: stored -> current' for each setting (but :data:`RESUME_MAY_CHANGE`) and the data
    that differ between two :func:`run_identity` records."""
    changes = []
    if stored.get("data_sha256") != current.get("data_sha256"):
        changes.append(
            f"the training data (records fingerprint {str(stored.get('data_sha256'))[:12]} -> "
            f"{str(current.get('data_sha256'))[:12]})"
        )
    old, new = stored.get("settings", {}), current.get("settings", {})
    for key in sorted(old.keys() | new.keys()):
        if key in RESUME_MAY_CHANGE:
            continue
        if old.get(key, "<unset>") != new.get(key, "<unset>"):
            changes.append(f"{key}: {old.get(key, '<unset>')!r} -> {new.get(key, '<unset>')!r}")
    return changes


def check_run_directory(
    output_dir: str | os.PathLike, identity: dict, *, resume: bool, overwrite: bool
) -> Path:
    """Check, without changing anything, that this run may use ``output_dir``; returns the
    resolved directory.

    - A new run (``resume=False``) needs a new or empty directory, or one holding a run with
      ``overwrite=True`` (:func:`claim_run_directory` clears it); a non-empty folder that is not a
      run directory is never cleared.
    - A resume needs the directory's :data:`OWNER_FILE` to describe the same run: same data
      fingerprint and settings but :data:`RESUME_MAY_CHANGE` (a run directory without one, made
      before cutkit recorded owners, is resumed unchecked).

    Raises :class:`RunDirError` saying what differs and what to do."""
    out = Path(output_dir).expanduser().resolve()
    owner = out / OWNER_FILE
    if resume and overwrite:
        raise RunDirError(
            "--resume continues the run in --output and --overwrite deletes it; use one of them"
        )
    if resume:
        if not out.is_dir():
            raise RunDirError(f"--resume: the run directory {out} does not exist")
        if owner.exists():
            changes = identity_differences(_read_owner(owner), identity)
            if changes:
                raise RunDirError(
                    f"--resume: {out} holds a run made with other settings or data "
                    f"({'; '.join(changes)}). Resume it with the same settings and data, or "
                    "start a new run in another --output (or --overwrite this one)"
                )
        return out
    if out.is_dir() and any(out.iterdir()):
        if not is_run_directory(out):
            raise RunDirError(
                f"--output {out} is a non-empty folder that holds no cutkit run; choose a new "
                "or empty folder (--overwrite only clears run directories)"
            )
        if not overwrite:
            what = "a run"
            if owner.exists():
                changes = identity_differences(_read_owner(owner), identity)
                what = (
                    f"another run ({'; '.join(changes)})"
                    if changes
                    else "a run with the same settings"
                )
            raise RunDirError(
                f"--output {out} already holds {what}. Continue it with --resume last, start "
                "again there with --overwrite (which deletes it), or choose another --output"
            )
    return out


def claim_run_directory(
    output_dir: str | os.PathLike, identity: dict, *, resume: bool, overwrite: bool
) -> Path:
    """:func:`check_run_directory`, then clear the directory (a new run with ``overwrite``) and
    write :data:`OWNER_FILE`; returns the resolved directory."""
    import shutil

    out = check_run_directory(output_dir, identity, resume=resume, overwrite=overwrite)
    if not resume and overwrite and out.is_dir():
        for child in out.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / OWNER_FILE, {**identity, "resumed": True} if resume else identity)
    return out


def _read_owner(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise RunDirError(
            f"{path} (the run directory's owner record) cannot be read ({error}); start a new "
            "run in another --output, or --overwrite this one"
        ) from error


def load_adapter(model, folder: str | os.PathLike, *, fix: str):
    """``model`` with the LoRA adapter saved in ``folder`` (a ``peft.PeftModel``); an adapter
    folder without its config, or with a damaged file (:func:`file_problem`: cut short by an
    interrupted save or copy), is a ValueError naming the file and ``fix`` (what to do)."""
    folder = Path(folder)
    config = folder / "adapter_config.json"
    if not config.is_file():
        raise ValueError(f"{folder} holds no adapter_config.json, so it is no LoRA adapter; {fix}")
    weights = [folder / name for name in ("adapter_model.safetensors", "adapter_model.bin")]
    for path in [config, *(p for p in weights if p.exists())]:
        problem = file_problem(path)
        if problem:
            raise ValueError(f"{path}: {problem}; {fix}")
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, folder)
    except Exception as error:  # peft, safetensors and torch say it without the file
        raise ValueError(
            f"cannot load the LoRA adapter in {folder} ({type(error).__name__}: "
            f"{str(error)[:300]}); {fix}"
        ) from error
