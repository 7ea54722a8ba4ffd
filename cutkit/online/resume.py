"""Resuming an online run: which rounds are done, whether the settings match, and the model
rebuilt from the base weights and the saved adapters."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cutkit.online.config import PROGRESS_FILE, RESUME_MAY_CHANGE, OnlineConfig
from cutkit.online.rundir import read_json, round_dir, weights_fingerprint
from cutkit.train.rundir import load_adapter


def completed_rounds(run_dir: Path) -> list[int]:
    """Rounds 0, 1, ... whose folder is complete (a round folder only gets its final name once
    everything in it is written, so this also covers a run stopped between that rename and the
    progress-file update)."""
    r = 0
    while (round_dir(run_dir, r) / "metrics.json").exists():
        r += 1
    return list(range(r))


def redo_round_fix(run_dir: Path, r: int) -> str:
    """What to do about a damaged file of completed round ``r``: redo it from round ``r - 1``."""
    later = "" if r == 0 else f" (round {r} is redone on the model of round {r - 1})"
    return (
        f"delete {round_dir(run_dir, r)} and any later round folders, then run the same command "
        f"again to resume{later}; or choose a new --output"
    )


def completed_metrics(run_dir: Path, rounds: Sequence[int]) -> list[dict[str, Any]]:
    """The metrics of the completed ``rounds``, each file named when damaged."""
    return [
        read_json(round_dir(run_dir, r) / "metrics.json", fix=redo_round_fix(run_dir, r))
        for r in rounds
    ]


def check_resumable(run_dir: Path, config: OnlineConfig) -> None:
    """Raise ValueError when ``run_dir`` holds a run made with settings ``config`` may not change
    (any but :data:`~cutkit.online.config.RESUME_MAY_CHANGE`, and ``output_dir``, which is
    ``run_dir`` itself: ``run``, ``run/`` and ``/abs/path/run`` resume the same run); a new
    directory passes."""
    path = run_dir / PROGRESS_FILE
    stored = {}
    if path.exists():
        progress = read_json(
            path,
            fix="delete it and run the same command again (the completed round folders are "
            "kept and resumed; only the settings check is lost), or choose a new --output",
        )
        stored = progress.get("config", {}) if isinstance(progress, dict) else {}
    current = json.loads(json.dumps(asdict(config), default=str))
    changed = [
        f"{k}: {stored.get(k)!r} -> {current[k]!r}"
        for k in current
        # output_dir names the run being resumed (run_dir itself), however it is written: an
        # absolute path, a trailing slash, another working directory or a moved folder
        if k not in (*RESUME_MAY_CHANGE, "output_dir") and k in stored and stored[k] != current[k]
    ]
    if changed:
        raise ValueError(
            f"{run_dir} holds a run made with other settings ({'; '.join(changed)}). "
            f"Resume it with the same settings (only {', '.join(RESUME_MAY_CHANGE)} may "
            "change), or choose a new --output directory"
        )


def trained_rounds(run_dir: Path, rounds: Sequence[int]) -> list[int]:
    """Those of ``rounds`` that saved an adapter (a round may have had nothing to train on)."""
    return [r for r in rounds if (round_dir(run_dir, r) / "adapter").exists()]


def rebuild_model(config: OnlineConfig, run_dir: Path, metrics: Sequence[dict[str, Any]]):
    """``(model, tokenizer)``: the base model with the adapters of the completed rounds
    (``metrics``, one per round) applied and merged in order; warns when the weights'
    fingerprint differs from the one the last round recorded."""
    from cutkit.models.loading import load_model

    model, tokenizer = load_model(config.model, device=config.device)
    adapters = trained_rounds(run_dir, [m["round"] for m in metrics])
    if adapters:
        for r in adapters:
            adapter = round_dir(run_dir, r) / "adapter"
            model = load_adapter(model, adapter, fix=redo_round_fix(run_dir, r)).merge_and_unload()
    if metrics:
        expected, found = metrics[-1].get("fingerprint"), weights_fingerprint(model)
        if expected and found != expected:
            warnings.warn(
                f"the rebuilt model's weights (fingerprint {found}) differ from those round "
                f"{metrics[-1]['round']} ended with ({expected}); numerics may differ (e.g. "
                "another device or dtype)",
                stacklevel=3,
            )
    return model, tokenizer
