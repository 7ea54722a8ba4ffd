"""Every public name resolves, and `import cutkit` stays light (no torch / transformers)."""

import subprocess
import sys

import cutkit


def test_every_public_name_resolves():
    for name in cutkit.__all__:
        assert getattr(cutkit, name) is not None, name
    assert sorted(dir(cutkit)) == sorted(cutkit.__all__)


def test_import_is_lazy():
    code = "import sys, cutkit; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_submodules_do_not_shadow_public_functions():
    """Importing a submodule sets it as a package attribute: no module may share a public name."""
    import importlib
    import pkgutil

    modules = {info.name for info in pkgutil.iter_modules(cutkit.__path__)}
    assert not modules & set(cutkit.__all__), modules & set(cutkit.__all__)
    importlib.import_module("cutkit.eval.comparison")
    assert callable(cutkit.compare) and cutkit.compare.__module__ == "cutkit.eval.comparison"


def test_mechanism_measures_are_public():
    from cutkit.eval import detection

    for name in ("detection_quality", "push_balance", "record_groups"):
        assert name in cutkit.__all__ and getattr(cutkit, name) is getattr(detection, name)


def _user_code() -> dict[str, str]:
    """The Python a user reads: every notebook's code cells and README.md's python blocks."""
    import json
    import re
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    code = {}
    for path in sorted((repo / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        code[path.name] = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    readme = (repo / "README.md").read_text()
    code["README.md"] = "\n".join(re.findall(r"```python\n(.*?)```", readme, re.DOTALL))
    return code


def test_notebooks_and_readme_use_only_public_names():
    """Users learn the API from the notebooks and the README: what they use must be public, so a
    refactor of the package's insides cannot break them."""
    import re

    used, deep = set(), []
    for where, code in _user_code().items():
        used |= {
            (where, n) for n in re.findall(r"(?<![\"'])\bcutkit\.(\w+)", code)
        }  # not logger names
        for names in re.findall(r"^\s*from cutkit import ([\w, ]+)", code, re.MULTILINE):
            used |= {(where, n.strip()) for n in names.split(",")}
        deep += [(where, m) for m in re.findall(r"(?:from|import) (cutkit\.[\w.]+)", code)]
    assert len(used) > 20, "the scan found the notebooks' cutkit calls"
    assert not deep, f"deep imports of non-public modules: {deep}"
    missing = sorted((w, n) for w, n in used if n not in cutkit.__all__)
    assert not missing, f"names used but not public (add them to cutkit._PUBLIC): {missing}"
    for _, name in used:
        assert getattr(cutkit, name) is not None
