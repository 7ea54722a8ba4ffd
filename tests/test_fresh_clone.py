"""The notebooks pass nbval in a copy of the repository with nothing beside it.

A user clones the repository alone; a committed output made where a folder beside the repository
(``../shared``, say) exists differs on their machine. So the notebook suite does not run in place:
this test copies every file git would commit (tracked or new, minus what .gitignore drops, in its
working-tree state) into a temporary folder that holds nothing else, and runs nbval there in a
subprocess whose ``cutkit`` is the copy's (``PYTHONPATH``). Its kernels start in the copy's
``notebooks/``, so a path that leaves the repository finds nothing, and the committed outputs must be
exactly what this fresh copy produces.

Run a notebook in place while working on it: ``bash scripts/dev.sh test notebooks/04_token_inspection.ipynb``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.helpers import REPO


def repository_files() -> list[str]:
    """Paths (relative to REPO) of every file a commit of the working tree would hold."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [p for p in listed.split("\0") if p and (REPO / p).is_file()]


def test_copy_holds_the_notebooks_and_the_package(tmp_path):
    files = repository_files()
    assert "pyproject.toml" in files and "cutkit/__init__.py" in files
    assert any(p.startswith("notebooks/") and p.endswith(".ipynb") for p in files)
    assert not any(p.startswith((".venv/", "runs/")) for p in files), "ignored folders stay out"


@pytest.mark.slow
@pytest.mark.integration
def test_notebooks_pass_nbval_in_a_clone_with_nothing_beside_it(tmp_path):
    clone = tmp_path / "alone" / "cutkit"
    for relative in repository_files():
        (clone / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / relative, clone / relative)
    assert [p.name for p in clone.parent.iterdir()] == ["cutkit"], "nothing beside the copy"
    env = {**os.environ, "PYTHONPATH": str(clone), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "notebooks", "-p", "no:cacheprovider"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    tail = "\n".join((result.stdout + result.stderr).splitlines()[-80:])
    assert result.returncode == 0, f"nbval failed in a copy with nothing beside it:\n{tail}"
    assert " passed" in tail and "notebooks/05_online_alignment.ipynb" in result.stdout, tail
