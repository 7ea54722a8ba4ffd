"""Experiment tracking: where training logs and held-out summaries go.

Training logs go wherever ``report_to`` sends them, through transformers' own integrations
(TensorBoard, trackio, Weights & Biases, MLflow, ...). The summaries that cutkit computes after
training (``compare``'s held-out figures per run, ``online``'s per round) are written by
:func:`log_figures` to the trackers cutkit writes itself: TensorBoard (``pip install
cutkit[tracking]``). Other trackers get the training logs only; the summaries are in the run
folders' CSV and JSON files either way.

>>> trackers("tensorboard,wandb")
['tensorboard', 'wandb']
>>> trackers("none"), trackers(["none"])
([], [])
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

SUMMARY_TRACKERS = ("tensorboard",)
"""Trackers :func:`log_figures` writes to."""


def trackers(report_to: str | Sequence[str] | None) -> list[str]:
    """``report_to`` as transformers reads it (a name, a comma-separated list or a list; "none"
    for none; "all" for every installed integration) -> the list of tracker names."""
    if report_to is None:
        return []
    names = report_to.split(",") if isinstance(report_to, str) else list(report_to)
    names = [n.strip() for n in names if n.strip() and n.strip() != "none"]
    if names == ["all"]:
        from transformers.integrations import get_available_reporting_integrations

        return list(get_available_reporting_integrations())
    return names


def check_report_to(report_to: str | Sequence[str] | None) -> None:
    """ValueError before any training when a tracker cutkit writes summaries to is asked for and
    not installed (transformers itself only fails once the trainer starts)."""
    if "tensorboard" in trackers(report_to):
        try:
            import tensorboard  # noqa: F401
        except ImportError as err:
            raise ValueError(
                "report_to='tensorboard' needs the tensorboard package: pip install "
                "cutkit[tracking] (or pip install tensorboard==2.21.0)"
            ) from err


def log_figures(
    figures: Mapping[str, object],
    log_dir: str | Path,
    report_to: str | Sequence[str] | None,
    *,
    step: int = 0,
    prefix: str = "heldout",
) -> list[str]:
    """Write the finite numeric ``figures`` as scalars ``<prefix>/<name>`` at ``step`` to every
    tracker of ``report_to`` in :data:`SUMMARY_TRACKERS` (TensorBoard: event files in
    ``log_dir``). Returns the trackers written to; warns once about the others."""
    names = trackers(report_to)
    others = [n for n in names if n not in SUMMARY_TRACKERS]
    if others:
        warnings.warn(
            f"report_to {others}: the training logs go there through transformers; cutkit writes "
            f"its summaries only to {list(SUMMARY_TRACKERS)} (and to the run folder's files)",
            stacklevel=2,
        )
    scalars = {
        f"{prefix}/{k}": float(v)
        for k, v in figures.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }
    written = []
    if "tensorboard" in names and scalars:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(log_dir))
        for tag, value in scalars.items():
            writer.add_scalar(tag, value, global_step=step)
        writer.close()
        written.append("tensorboard")
    return written
