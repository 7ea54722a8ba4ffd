"""``summary.md`` of a ``run.py`` run: the facts, one table per stage, the commands."""

from __future__ import annotations


def _fmt(value, spec: str = ".3g") -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def _configs(stage: dict) -> list[str]:
    tol = stage.get("tolerance", {})
    lines = [
        f"Agreement with the plain single-process run: every per-step loss within "
        f"{tol.get('loss_max_rel_diff')} (relative) and the LoRA B matrices within "
        f"{tol.get('lora_b_rel_l2')} relative L2.",
        "",
        "| run | status | setup seen | steps | median step s | peak GiB (alloc / reserved) "
        "| peak RSS GiB | loss max rel diff | LoRA B rel L2 | LoRA max abs diff | agrees |",
        "|---|---|---|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for name, run in stage.get("runs", {}).items():
        if run["status"] == "not run":
            lines.append(f"| {name} | not run: {run['reason']} | | | | | | | | | |")
            continue
        setup = run.get("setup") or {}
        seen = (
            f"{setup.get('distributed_type', '?')}, world {setup.get('world_size', '?')}, "
            f"{setup.get('wrapped_model', '?')}"
            if setup
            else ""
        )
        memory = f"{_fmt(run.get('peak_memory_allocated_gib'))} / " + _fmt(
            run.get("peak_memory_reserved_gib")
        )
        lines.append(
            f"| {name} | {run['status']} ({run.get('wall_s')} s) | {seen} | {_fmt(run.get('steps'))} "
            f"| {_fmt(run.get('median_step_s'))} | {memory} | {_fmt(run.get('peak_rss_gib'))} "
            f"| {_fmt(run.get('loss_max_rel_diff'))} | {_fmt(run.get('lora_b_rel_l2'))} "
            f"| {_fmt(run.get('lora_max_abs_diff'))} | {_fmt(run.get('agrees'))} |"
        )
    lines += ["", "Commands:", ""]
    lines += [f"- `{r['command']}`" for r in stage.get("runs", {}).values() if r.get("command")]
    parsed = stage.get("parsed", {})
    if parsed:
        lines += ["", "Configs as accelerate reads them:", ""]
        lines += [f"- `{name}`: {value}" for name, value in parsed.items()]
    return lines


def _notebook(stage: dict) -> list[str]:
    probe = stage.get("probe") or {}
    lines = [
        f"Parameters {stage.get('parameters')}; notebook wall-clock {stage.get('notebook_wall_s')} s (kernel start included: {stage.get('wall_s')} s); "
        f"ran on {probe.get('device')}, FULL={probe.get('FULL')}, CLAIMS={probe.get('CLAIMS')}, "
        f"{probe.get('optimizer_steps')} optimizer steps on {probe.get('train_records')} records.",
        f"Peak memory: {probe.get('max_memory_allocated_gib')} GiB allocated, "
        f"{probe.get('max_memory_reserved_gib')} GiB reserved (CUDA), peak RSS "
        f"{probe.get('peak_rss_gib')} GiB.",
    ]
    if stage.get("error"):
        lines += ["", f"Failed in cell {stage.get('failed_cell')}:", "", "```",
                  str(stage["error"])[-1500:], "```"]  # fmt: skip
    slow = sorted(stage.get("cells", []), key=lambda c: -(c["seconds"] or 0))[:5]
    if slow:
        lines += ["", "Slowest cells: " + "; ".join(
            f"{c['cell']} `{c['first_line']}` {c['seconds']} s" for c in slow)]  # fmt: skip
    if stage.get("command"):
        lines += ["", f"Command: `{stage['command']}`"]
    return lines


def _step(stage: dict) -> list[str]:
    lines = [
        "| model | mb | variant | step s | tokens/s | peak GiB | MFU | packed vs padded |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    ratio = {(r["model"], r["micro_batch"]): r for r in stage.get("packed_vs_padded", [])}
    for r in stage.get("rows", []):
        if "error" in r:
            lines.append(f"| {r['model']} | {r['micro_batch']} | {r['variant']} | {r['error']} "
                         "| | | | |")  # fmt: skip
            continue
        mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") is not None else "n/a"
        packed = ""
        if r["variant"] == "cutkit-packed":
            packed = _fmt(ratio.get((r["model"], r["micro_batch"]), {}).get("packed_vs_padded"))
        lines.append(
            f"| {r['model']} | {r['micro_batch']} | {r['variant']} | {r['step_s']:.4f} "
            f"| {r['tokens_per_s']:,.0f} | {r['peak_gib']:.2f} | {mfu} | {packed} |"
        )
    lines += [
        "",
        "Tables with every column: `step.md`; command: `" + str(stage.get("command")) + "`",
    ]
    return lines


def _onpolicy(stage: dict) -> list[str]:
    gate = stage.get("gate") or {}
    lines = [
        f"Preset `{stage.get('preset')}`, arms {stage.get('arms')}; prepare took "
        f"{stage.get('prepare_seconds')} s; gate: detection AUC {_fmt(gate.get('auc'))}, push "
        f"ratio {_fmt(gate.get('push_ratio'))} ({gate.get('n_records')} training negatives).",
        "",
        "| arm | validation runs | held-out seeds done | satisfaction per seed | train s per seed |",
        "|---|---:|---:|---|---|",
    ]
    for arm, progress in stage.get("progress", {}).items():
        seeds = progress["heldout_seeds"]
        rates = ", ".join(_fmt(s["satisfaction"]) for s in seeds)
        times = ", ".join(_fmt(s["train_seconds"], ".1f") for s in seeds)
        lines.append(
            f"| {arm} | {progress['validation_runs']} | {len(seeds)} | {rates} | {times} |"
        )
    lines += ["", "Intervals and the paired comparisons: `onpolicy.md` (the experiment's report)."]
    worker = stage.get("worker") or {}
    if worker.get("command"):
        lines += ["", f"Command: `{worker['command']}`"]
    return lines


SECTIONS = {"configs": _configs, "notebook": _notebook, "step": _step, "onpolicy": _onpolicy}


def markdown(summary: dict) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in summary.get("versions", {}).items())
    model = summary.get("model", {})
    lines = [
        f"# GPU checks{' — CPU dry run' if summary.get('dry_run') else ''}: "
        f"{summary.get('device')}",
        "",
        f"Commit `{summary.get('commit')}` (from {summary.get('source')}"
        f"{', with uncommitted changes' if summary.get('uncommitted_changes') else ''}); "
        f"started {summary.get('started')}; total {summary.get('wall_s')} s.  ",
        f"Command: `{summary.get('command')}`  ",
        f"{versions}; Python {summary.get('python')}, {summary.get('platform')}.  ",
        f"Model: `{model.get('name')}` ({model.get('weights') or model.get('error')}).",
    ]
    lines += [f"- {note}" for note in summary.get("plan", {}).get("notes", [])]
    lines += ["", "| stage | status | wall s | cap s | note |", "|---|---|---:|---:|---|"]
    for stage in summary.get("stages", {}).values():
        note = stage.get("reason") or stage.get("error") or ""
        lines.append(
            f"| {stage['title']} | {stage['status']} | {_fmt(stage.get('wall_s'))} "
            f"| {_fmt(stage.get('cap_s'))} | {str(note)[:200]} |"
        )
    for key, stage in summary.get("stages", {}).items():
        lines += ["", f"## {stage['title']}", ""]
        if stage["status"] == "skipped" or ("error" in stage and key != "notebook"):
            lines.append(f"{stage['status']}: {stage.get('reason') or stage.get('error')}")
            continue
        lines += SECTIONS[key](stage)
    return "\n".join(lines) + "\n"
