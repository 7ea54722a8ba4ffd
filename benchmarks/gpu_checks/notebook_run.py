"""Execute a notebook top to bottom with injected parameters; what ``run.py`` runs for notebook 03.

    python benchmarks/gpu_checks/notebook_run.py NOTEBOOK EXECUTED.ipynb PROBE.json 'SCALE="full"' ...

Parameters are injected as tests/test_notebook_parameters.py does (papermill's way): one cell
after the notebook's ``# Parameters`` cell assigns the given ``NAME=<python literal>`` values. The
notebook runs in a Jupyter kernel (nbclient, kernel ``python3``) with its own folder as the working
directory; a last cell measures the kernel's peak memory (``torch.cuda.max_memory_allocated`` on
CUDA, peak RSS otherwise). The executed copy (also when a cell fails) goes to EXECUTED.ipynb and
PROBE.json holds: the wall-clock, the failing cell if any, each code cell's time, the peak memory
and the parameters the notebook ended up with.
"""

from __future__ import annotations

import ast
import json
import sys
import time
from datetime import datetime
from pathlib import Path

PROBE_MARK = "GPU_CHECKS_PROBE "
PROBE_CELL = """# Injected by benchmarks/gpu_checks: the kernel's peak memory and the settings it ran with
import json as _json, re as _re, torch as _torch
_cuda = _torch.cuda.is_available()
_rss = _re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read())
print("GPU_CHECKS_PROBE " + _json.dumps({
    "cuda": _cuda,
    "device": _torch.cuda.get_device_name(0) if _cuda else "cpu",
    "max_memory_allocated_gib": round(_torch.cuda.max_memory_allocated() / 2**30, 3) if _cuda else None,
    "max_memory_reserved_gib": round(_torch.cuda.max_memory_reserved() / 2**30, 3) if _cuda else None,
    "peak_rss_gib": round(int(_rss.group(1)) / 2**20, 3) if _rss else None,
    "SCALE": SCALE, "MODEL": str(MODEL), "FULL": bool(globals().get("FULL")),
    "CLAIMS": bool(globals().get("CLAIMS")),
    "optimizer_steps": int(trainer.state.global_step) if "trainer" in globals() else None,
    "train_records": len(train) if "train" in globals() else None,
}))
"""


def inject(notebook, values: dict[str, object]) -> int:
    """Insert the parameter cell after ``# Parameters``; returns its index."""
    import nbformat

    at = next(
        i for i, c in enumerate(notebook.cells) if c.source.lstrip().startswith("# Parameters")
    )
    source = "# Injected parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in values.items())
    notebook.cells.insert(at + 1, nbformat.v4.new_code_cell(source))
    return at + 1


def cell_seconds(cell) -> float | None:
    """A cell's execution time from the timing nbclient records in its metadata."""
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return None
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return round((parse(end) - parse(start)).total_seconds(), 2)


def main(argv: list[str]) -> int:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    source, executed, probe_path = (Path(a) for a in argv[:3])
    values = {}
    for item in argv[3:]:
        name, _, literal = item.partition("=")
        values[name] = ast.literal_eval(literal)
    notebook = nbformat.read(source, as_version=4)
    inject(notebook, values)
    notebook.cells.append(nbformat.v4.new_code_cell(PROBE_CELL))
    client = NotebookClient(
        notebook,
        timeout=3600,  # per cell; run.py bounds the whole run
        kernel_name="python3",
        resources={"metadata": {"path": str(source.parent)}},
    )
    error, start = None, time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as failure:
        error = str(failure)[-3000:]
    wall = time.perf_counter() - start
    nbformat.write(notebook, executed)
    probe = None
    for output in notebook.cells[-1].get("outputs", []):
        for line in output.get("text", "").splitlines():
            if line.startswith(PROBE_MARK):
                probe = json.loads(line[len(PROBE_MARK) :])
    failed_cell = next(
        (
            i
            for i, c in enumerate(notebook.cells)
            if any(o.get("output_type") == "error" for o in c.get("outputs", []))
        ),
        None,
    )
    cells = [
        {"cell": i, "seconds": cell_seconds(c), "first_line": c.source.splitlines()[0][:80]}
        for i, c in enumerate(notebook.cells)
        if c.cell_type == "code" and c.source.strip()
    ]
    result = {
        "ok": error is None,
        "wall_s": round(wall, 1),
        "error": error,
        "failed_cell": failed_cell,
        "parameters": values,
        "probe": probe,
        "cells": cells,
    }
    Path(probe_path).write_text(json.dumps(result, indent=1, default=str))
    return 0 if error is None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
