"""The report of a comparison (:func:`cutkit.eval.comparison.compare`'s frame, one row per run):
per arm the mean, spread and 95% interval over seeds of each figure (:func:`summarize`), the same as
a Markdown table with ties against the base model marked (:func:`summary_markdown`), and the
files a comparison leaves (:func:`save_comparison`).

Every summary states n (held-out pairs / records per run), the seeds, and a 95% interval over the
seeds (Student t); a difference to the base model inside the interval is marked a tie.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

HEADLINE = [
    "pref_accuracy",
    "pref_margin",
    "logp_good",
    "logp_error_tokens",
    "logp_other_tokens",
    "detect_f1",
    "gen_accuracy",
]
"""The figures :func:`summarize` reports by default (see :mod:`cutkit.eval.metrics`)."""


_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)
"""Student t 97.5% quantiles for 1..10 degrees of freedom (1.96 beyond)."""


def seed_interval(values: Sequence[float]) -> tuple[float, float]:
    """95% interval of the mean over seeds (Student t; NaN with fewer than two values)."""
    values = [v for v in values if not pd.isna(v)]
    if len(values) < 2:
        return (math.nan, math.nan)
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    t = _T975[len(values) - 2] if len(values) - 1 <= len(_T975) else 1.96
    half = t * sd / math.sqrt(len(values))
    return (mean - half, mean + half)


def summarize(frame: pd.DataFrame, figures: Sequence[str] = HEADLINE) -> pd.DataFrame:
    """Per arm (base first, then in the order they appear): for each figure its mean, standard
    deviation and 95% interval over seeds (``low``/``high``, :func:`seed_interval`), plus
    ``seeds``, ``n`` (held-out pairs, else records, per run) and mean ``train_seconds``."""
    figures = [f for f in figures if f in frame.columns]
    order = list(dict.fromkeys(frame["objective"]))
    grouped = frame.groupby("objective", sort=False)
    table = grouped[figures].agg(["mean", "std"])
    for figure in figures:
        bounds = grouped[figure].apply(lambda v: seed_interval(list(v)))
        table[(figure, "low")] = bounds.map(lambda b: b[0])
        table[(figure, "high")] = bounds.map(lambda b: b[1])
    table = table[[(f, stat) for f in figures for stat in ("mean", "std", "low", "high")]]
    table[("seeds", "")] = grouped["seed"].nunique()
    size = "n_pairs" if "n_pairs" in frame.columns else "n_records"
    if size in frame.columns:
        table[("n", "")] = grouped[size].max()
    table[("train_seconds", "mean")] = grouped["train_seconds"].mean()
    return table.loc[order]


def summary_markdown(frame: pd.DataFrame, figures: Sequence[str] = HEADLINE) -> str:
    """:func:`summarize` as a Markdown table: each figure as ``mean [95% interval]`` over seeds
    (3 decimals), ``(tie)`` where the base model's value lies inside the interval; a note under
    the table states n and the seeds."""
    table = summarize(frame, figures)
    names = [f for f in figures if f in frame.columns]
    base = table.loc["base"] if "base" in table.index else None
    lines = [
        "| objective | seeds | train s | " + " | ".join(names) + " |",
        "|---|---:|---:|" + "---:|" * len(names),
    ]
    for objective, row in table.iterrows():
        cells = []
        for name in names:
            mean, low, high = row[(name, "mean")], row[(name, "low")], row[(name, "high")]
            cell = f"{mean:.3f}"
            if not pd.isna(low):
                cell += f" [{low:.3f}, {high:.3f}]"
                reference = None if base is None else base[(name, "mean")]
                if objective != "base" and reference is not None and low <= reference <= high:
                    cell += " (tie)"
            cells.append(cell)
        lines.append(
            f"| {objective} | {int(row[('seeds', '')])} | {row[('train_seconds', 'mean')]:.0f} | "
            + " | ".join(cells)
            + " |"
        )
    seeds = sorted(int(s) for s in frame.loc[frame["objective"] != "base", "seed"].unique())
    n = f"n = {int(table[('n', '')].max())} held-out pairs per run; " if ("n", "") in table else ""
    lines.append("")
    lines.append(
        f"{n}seeds {seeds}; [low, high]: 95% interval of the mean over seeds (Student t); "
        "(tie): the base model's value lies inside it."
    )
    return "\n".join(lines)


def save_comparison(frame: pd.DataFrame, out: str | Path) -> Path:
    """Write ``runs.csv``, ``summary.csv`` and ``summary.md`` to ``out``; returns the folder."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "runs.csv", index=False)
    summarize(frame).round(4).to_csv(out / "summary.csv")
    (out / "summary.md").write_text(summary_markdown(frame) + "\n")
    return out
