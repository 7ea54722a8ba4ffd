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
