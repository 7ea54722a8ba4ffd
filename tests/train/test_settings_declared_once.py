"""Each training setting is declared once (cutkit.train.settings.SETTINGS): CUTConfig and every
entry point's settings take its default and help text from there, an entry point's other defaults
are its named preset (PRESET_OVERRIDES), and no function in cutkit/ repeats a scoring default as
a literal."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from cutkit.cli.demo import DemoSettings
from cutkit.cli.inspect import InspectArguments
from cutkit.eval.comparison import CompareSettings
from cutkit.online.config import OnlineConfig
from cutkit.train.config import CUTConfig
from cutkit.train.settings import (
    OWN_MEANING,
    PRESET_OVERRIDES,
    SCORING_FIELDS,
    SETTINGS,
    SHORT_NAMES,
    CUTLevers,
    TrainSettings,
    preset_default,
)
from cutkit.train.vocabulary import DEFAULT_MAX_LENGTH, DEFAULT_TEMPLATE, DEFAULT_THRESHOLD

PACKAGE = Path(__file__).resolve().parents[2] / "cutkit"

# every settings dataclass of an entry point, with its preset (CUTLevers has none: CUTConfig's)
PRESETS = {
    TrainSettings: TrainSettings.PRESET,
    CUTLevers: "train",
    DemoSettings: DemoSettings.PRESET,
    CompareSettings: CompareSettings.PRESET,
    OnlineConfig: OnlineConfig.PRESET,
    InspectArguments: InspectArguments.PRESET,
}


def _fields(settings_class) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(settings_class)}


def test_the_declaration_is_cutconfigs():
    cut = _fields(CUTConfig)
    for name, declared in SETTINGS.items():
        assert cut[name].default == declared.default, name
        assert cut[name].metadata["help"] == declared.help, name
    assert SETTINGS["template"].default == DEFAULT_TEMPLATE
    assert SETTINGS["threshold"].default == DEFAULT_THRESHOLD
    assert SETTINGS["max_length"].default == DEFAULT_MAX_LENGTH


def test_presets_name_only_declared_settings_and_change_their_default():
    assert set(PRESETS.values()) <= set(PRESET_OVERRIDES)
    for preset, overrides in PRESET_OVERRIDES.items():
        for name, value in overrides.items():
            assert name in SETTINGS, (preset, name)
            assert preset == "online" or value != SETTINGS[name].default, (preset, name)


@pytest.mark.parametrize("settings_class", list(PRESETS), ids=lambda c: c.__name__)
def test_every_setting_shared_with_cutconfig_is_the_declaration(settings_class):
    """A field an entry point shares with CUTConfig (by name, or by its short name) has the
    declared help text and its preset's default; a second declaration (another help text, or a
    default no preset states) fails here."""
    cut = _fields(CUTConfig)
    preset = PRESETS[settings_class]
    shared = 0
    for name, f in _fields(settings_class).items():
        long_name = SHORT_NAMES.get(name, name)
        if long_name not in cut or long_name in OWN_MEANING:
            continue
        assert long_name in SETTINGS, f"{settings_class.__name__}.{name} declared twice"
        assert f.metadata["help"] == SETTINGS[long_name].help, (settings_class, name)
        assert f.default == preset_default(preset, name), (settings_class, name, preset)
        shared += 1
    assert shared > 0


def test_own_meanings_are_the_only_other_cutconfig_names():
    """The CUTConfig names an entry point declares itself are exactly OWN_MEANING."""
    cut = set(_fields(CUTConfig))
    own = set()
    for settings_class in PRESETS:
        names = {SHORT_NAMES.get(name, name) for name in _fields(settings_class)}
        own |= (names & cut) - set(SETTINGS)
    assert own == set(OWN_MEANING)


def _literal_defaults(tree: ast.AST, names) -> list[tuple[int, str, object]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args
            positional = args.posonlyargs + args.args
            with_defaults = positional[len(positional) - len(args.defaults) :]
            pairs = list(zip(with_defaults, args.defaults, strict=True))
            pairs += list(zip(args.kwonlyargs, args.kw_defaults, strict=True))
            for arg, default in pairs:
                literal = isinstance(default, ast.Constant) and default.value is not None
                if arg.arg in names and literal:
                    found.append((node.lineno, arg.arg, default.value))
        elif isinstance(node, ast.ClassDef):  # a dataclass field with a literal default
            for statement in node.body:
                if (
                    isinstance(statement, ast.AnnAssign)
                    and isinstance(statement.target, ast.Name)
                    and statement.target.id in names
                    and isinstance(statement.value, ast.Constant)
                ):
                    found.append((statement.lineno, statement.target.id, statement.value.value))
    return found


def test_no_literal_scoring_defaults_in_the_package():
    """``threshold=1.1``, ``max_length=2048`` and ``template="alpaca"`` are written once, as
    DEFAULT_THRESHOLD, DEFAULT_MAX_LENGTH and DEFAULT_TEMPLATE (cutkit.train.vocabulary); every
    function default of those names refers to them."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "vocabulary.py":
            continue
        for line, name, value in _literal_defaults(ast.parse(path.read_text()), SCORING_FIELDS):
            offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {name}={value!r}")
    assert not offenders, offenders


def test_the_scan_finds_a_literal_default():
    tree = ast.parse(
        "def f(x, *, threshold: float = 1.1, template='alpaca'):\n    pass\n"
        "class C:\n    max_length: int = 2048\n"
    )
    names = {name for _, name, _ in _literal_defaults(tree, SCORING_FIELDS)}
    assert names == set(SCORING_FIELDS)


RULED = [name for name, declared in SETTINGS.items() if declared.check is not None]


@pytest.mark.parametrize("name", RULED)
def test_cutconfig_and_the_entry_points_refuse_by_the_one_declared_rule(name):
    """A value out of range is refused by the declared rule, with the same message in CUTConfig
    and in the entry point's settings (which name the setting as their option does)."""
    nan = float("nan")
    with pytest.raises(ValueError) as declared:
        SETTINGS[name].check(name, nan)
    with pytest.raises(ValueError) as in_config:
        CUTConfig(**{name: nan})
    assert str(in_config.value) == str(declared.value)
    short = {long: short for short, long in SHORT_NAMES.items()}.get(name, name)
    entry_point = TrainSettings if short in _fields(TrainSettings) else CUTLevers
    with pytest.raises(ValueError) as in_entry_point:
        entry_point(**{short: nan})
    with pytest.raises(ValueError) as declared_short:
        SETTINGS[name].check(short, nan)
    assert str(in_entry_point.value) == str(declared_short.value)
