"""The training run directory: who owns it, and which of its checkpoints are complete.

Ownership: ``cutkit train`` writes :data:`OWNER_FILE` (``cutkit_owner.json``) into the run
directory before it trains: the cutkit version, the settings (paths resolved) and a fingerprint of
the training records. Another run into a directory that holds one is refused unless it asks to
overwrite; a resume must match the stored settings (but for :data:`RESUME_MAY_CHANGE`) and data.

Checkpoints: :class:`~cutkit.train.trainer.CUTTrainer` writes :data:`CHECKPOINT_MANIFEST`
(``cutkit_checkpoint.json``: every file of the checkpoint and its size) into a ``checkpoint-N``
folder last, atomically, once every other file is written. A checkpoint is *complete* when its
manifest is there, every file it lists has the listed size, and the torch / safetensors / JSON
files open (their structure is intact). A save killed half-way leaves no manifest, so resuming
skips that checkpoint for the newest complete one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import zipfile
from collections.abc import Iterable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from cutkit.data.atomic_write import write_json_atomic  # re-exported: its old home

OWNER_FILE = "cutkit_owner.json"
CHECKPOINT_MANIFEST = "cutkit_checkpoint.json"
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
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


class RunDirError(ValueError):
    """The run directory refuses this run (another run's, or other settings on resume)."""


class CheckpointError(ValueError):
    """A checkpoint cannot be resumed from: missing, incomplete or damaged files (named)."""


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
    return bool(names & markers) or any(_CHECKPOINT.match(n) for n in names)


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


# -------------------------------------------------------------------------------- checkpoints


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
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if (m := _CHECKPOINT.match(p.name))]
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
