"""Every parameter a notebook documents works, alone and combined with the others.

nbval (pyproject's addopts) re-runs each notebook with the committed parameters. This test runs each
notebook again with every documented alternative value (the ``MATRIX`` below): once per
alternative alone, then all of them together. Real weights are not the point here, so every run
uses the tiny random model (``MODEL`` is always the tiny checkpoint); the notebooks assert their
claims about the default model only when ``MODEL`` is the default (their ``CLAIMS`` flag) and check
what holds for any model always. After the notebook, a probe cell checks that each changed
parameter reached the code it configures (a notebook that ignores ``TEMPLATE`` fails here, even
if it runs).

Parameters are injected as a cell after the notebook's ``# Parameters`` cell (papermill's way).
Each run executes a copy of the notebooks folder in a temporary directory with the repository's
``benchmarks/`` beside it, so run directories never mix with the committed runs.
"""

from __future__ import annotations

import ast
import shutil

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from tests.helpers import REPO

FIXTURES = REPO / "tests" / "fixtures" / "loaders"
TINY = "<tiny>"  # stands for the tiny random checkpoint folder (a session fixture)

# notebook -> documented parameter -> its alternative values (the defaults are in the notebook)
MATRIX: dict[str, dict[str, list[object]]] = {
    "01_judgment_exploration.ipynb": {
        "SCALE": ["full"],
        "DATA": [str(FIXTURES / "cut_alpaca.json")],
        "MODEL": [TINY],
        "THRESHOLD": [2.0],
        "OFFICIAL_DATA": [str(FIXTURES / "cut_junk.jsonl")],
    },
    "02_baseline_comparison.ipynb": {
        "SCALE": ["full"],
        "MODEL": [TINY],
        "TEMPLATE": ["alpaca"],
        "STEPS": [1],
    },
    "03_cut_training_gpu.ipynb": {
        "SCALE": ["full"],
        "MODEL": [TINY],
        "DATA": [str(FIXTURES / "cut_alpaca.json")],
        "HELD_OUT": [str(FIXTURES / "shepherd.jsonl")],
        "TEMPLATE": ["alpaca"],
    },
    "04_token_inspection.ipynb": {
        "SCALE": ["full"],
        "MODEL": [TINY],
        "TEMPLATE": ["alpaca"],
        "THRESHOLD": [2.0],
    },
    "05_online_alignment.ipynb": {
        "SCALE": ["full"],
        "MODEL": [TINY],
        "OBJECTIVE": ["sft", "hindsight"],
    },
}

# notebook -> parameter -> values every case that changes it also sets, to bound its cost (02's
# "full" is 13 arms x 3 seeds: one optimizer step each keeps it to minutes on the tiny model)
COMPANIONS: dict[str, dict[str, dict[str, object]]] = {
    "02_baseline_comparison.ipynb": {"SCALE": {"STEPS": 1}},
}

# notebook -> parameter -> a cell run after the notebook: did the parameter reach its code?
PROBES: dict[str, dict[str, str]] = {
    "01_judgment_exploration.ipynb": {
        "SCALE": 'assert DATA or all("judgments" in str(p) for p in paths.values()), paths',
        "DATA": "assert list(paths.values()) == [Path(DATA)]\n"
        "assert sum(map(len, records.values())) == len(cutkit.load_records(DATA))",
        "MODEL": "assert model.name_or_path == MODEL",
        "THRESHOLD": "import math\n"
        "assert scores.flagged.equals(scores.log_ratio > math.log(THRESHOLD))",
        "OFFICIAL_DATA": "assert report.n_skipped > 0 and report.skipped, report",
    },
    "02_baseline_comparison.ipynb": {
        "SCALE": "assert SEEDS == [0, 1, 2] and len(train) == 356\n"
        'assert set(frame[frame["objective"] != "base"]["seed"]) == {0, 1, 2}',
        "MODEL": "assert settings.model == MODEL",
        "TEMPLATE": "assert settings.template == TEMPLATE",
        "STEPS": 'assert set(frame[frame["objective"] != "base"]["steps"]) == {STEPS}',
    },
    "03_cut_training_gpu.ipynb": {
        "SCALE": "import torch\nassert FULL == torch.cuda.is_available()",
        "MODEL": "assert Path(MODEL).name in out.name and model.name_or_path == MODEL",
        "DATA": "assert len(train) == len(cutkit.load_records(DATA)) and Path(DATA).stem in out.name",
        "HELD_OUT": "assert len(test) == len(cutkit.load_records(HELD_OUT))",
        "TEMPLATE": "assert args.template == TEMPLATE and TEMPLATE in out.name\n"
        'assert json.loads((online.run_dir / "online_run.json").read_text())["config"]["template"] '
        "== TEMPLATE",
    },
    "04_token_inspection.ipynb": {
        "SCALE": "assert args.num_train_epochs == 3",
        "MODEL": "assert model.name_or_path == MODEL",
        "TEMPLATE": "assert inspector.template == TEMPLATE and args.template == TEMPLATE",
        "THRESHOLD": "import math\n"
        "assert base_scores.flagged.equals(base_scores.log_ratio > math.log(THRESHOLD))",
    },
    "05_online_alignment.ipynb": {
        "SCALE": "assert config.rounds == 3 and len(table) == 4",
        "MODEL": "assert config.model == MODEL",
        "OBJECTIVE": "assert config.objective == OBJECTIVE and OBJECTIVE in run.run_dir.name\n"
        'assert json.loads((run.run_dir / "online_run.json").read_text())["config"]["objective"] '
        "== OBJECTIVE",
    },
}


def documented_parameters(notebook: nbformat.NotebookNode) -> dict[str, object]:
    """The names and default values assigned in the notebook's ``# Parameters`` cell."""
    cell = next(c for c in notebook.cells if c.source.lstrip().startswith("# Parameters"))
    return {
        target.id: ast.literal_eval(node.value)
        for node in ast.parse(cell.source).body
        if isinstance(node, ast.Assign)
        for target in node.targets
    }


def cases() -> list[tuple[str, dict[str, object]]]:
    """(notebook, overrides): every alternative alone (always on the tiny model), then all."""
    out = []
    for name, alternatives in MATRIX.items():
        for parameter, values in alternatives.items():
            if parameter == "MODEL":
                continue  # every case sets it
            companions = COMPANIONS.get(name, {}).get(parameter, {})
            out += [(name, {"MODEL": TINY, parameter: value, **companions}) for value in values]
        out.append((name, {parameter: values[-1] for parameter, values in alternatives.items()}))
    return out


def case_id(case: tuple[str, dict[str, object]]) -> str:
    name, overrides = case
    changed = [k for k in overrides if k != "MODEL"]
    if len(changed) > 2 or (len(changed) == 2 and name not in COMPANIONS):
        return f"{name[:2]}-all"
    value = str(overrides[changed[0]])
    return f"{name[:2]}-{changed[0]}={value.rsplit('/', 1)[-1]}"


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_matrix_covers_every_documented_parameter(name):
    notebook = nbformat.read(REPO / "notebooks" / name, as_version=4)
    documented = documented_parameters(notebook)
    assert set(MATRIX[name]) == set(documented), (
        f"{name}: give every documented parameter an alternative value in MATRIX (documented: "
        f"{sorted(documented)})"
    )
    assert set(PROBES[name]) == set(documented), f"{name}: every parameter needs a probe"
    for parameter, values in MATRIX[name].items():
        assert documented[parameter] not in values, (
            f"{name}: {parameter}'s default is no alternative"
        )


def test_every_notebook_is_in_the_matrix():
    assert set(MATRIX) == {p.name for p in (REPO / "notebooks").glob("*.ipynb")}


@pytest.mark.slow
@pytest.mark.parametrize("case", cases(), ids=case_id)
def test_notebook_runs_with_changed_parameters(case, shared_tiny_checkpoint, tmp_path):
    name, overrides = case
    values = {k: str(shared_tiny_checkpoint) if v == TINY else v for k, v in overrides.items()}
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "benchmarks").symlink_to(REPO / "benchmarks")
    path = tmp_path / "notebooks" / name
    shutil.copy(REPO / "notebooks" / name, path)
    notebook = nbformat.read(path, as_version=4)
    at = next(
        i for i, c in enumerate(notebook.cells) if c.source.lstrip().startswith("# Parameters")
    )
    injected = "# Injected parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in values.items())
    notebook.cells.insert(at + 1, nbformat.v4.new_code_cell(injected))
    probe = "\n".join(
        ["import json", "from pathlib import Path"] + [PROBES[name][k] for k in values]
    )
    notebook.cells.append(nbformat.v4.new_code_cell(probe))
    client = NotebookClient(
        notebook,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path / "notebooks")}},
    )
    try:
        client.execute()
    except CellExecutionError as error:
        nbformat.write(notebook, path)  # the executed copy, for a look at what went wrong
        pytest.fail(f"{name} with {overrides} failed (executed copy: {path}):\n{error}")
