"""The settings table is the one list of INSIDERS_* variables: complete, consistent with profiles.yml, documented."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from insiders import settings
from insiders.errors import ConfigError

PROJECT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"\bINSIDERS_[A-Z0-9_]*[A-Z0-9]\b")
# In Python only a name in quotes or backticks is a variable (INSIDERS_NAME, say, is a constant of the model).
QUOTED_NAME = re.compile(r"(?<=[\"'`])INSIDERS_[A-Z0-9_]*[A-Z0-9]\b")


def names_in(paths: list[Path]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in paths:
        pattern = QUOTED_NAME if path.suffix == ".py" else NAME
        for name in pattern.findall(path.read_text(encoding="utf-8")):
            found.setdefault(name, set()).add(str(path.relative_to(PROJECT)))
    return found


def test_every_variable_the_project_reads_is_declared():
    sources = [
        *(PROJECT / "python_jobs").rglob("*.py"),
        PROJECT / "profiles.yml",
        PROJECT / "dbt_project.yml",
        *(p for p in (PROJECT / "deploy").rglob("*") if p.is_file()),
    ]
    found = names_in(sources)
    # A Python constant named INSIDERS_... (the model's INSIDERS_NAME) is not a variable, even when __all__ quotes it.
    constants = {
        m.group(1)
        for path in (PROJECT / "python_jobs").rglob("*.py")
        for m in re.finditer(r"^\s*(INSIDERS_[A-Z0-9_]+)\s*[:=]", path.read_text(encoding="utf-8"), re.MULTILINE)
    }
    undeclared = {n: sorted(f) for n, f in found.items() if n not in settings.SETTINGS and n not in constants}
    assert undeclared == {}


def test_profiles_defaults_are_the_declared_defaults():
    text = (PROJECT / "profiles.yml").read_text(encoding="utf-8")
    pairs = dict(re.findall(r"env_var\('(INSIDERS_[A-Z_]+)', '([^']*)'\)", text))
    assert pairs, "profiles.yml reads no INSIDERS_* variable with a default"
    for name, default in pairs.items():
        assert settings.SETTINGS[name].read_by == settings.PROFILES, name
        assert settings.SETTINGS[name].default == default, name


def test_operations_guide_documents_every_setting():
    guide = (PROJECT / "docs" / "operations.md").read_text(encoding="utf-8")
    missing = [name for name in settings.SETTINGS if f"`{name}`" not in guide]
    assert missing == []


def test_values_defaults_and_errors(monkeypatch):
    monkeypatch.delenv("INSIDERS_PUBLISH_ATTEMPTS", raising=False)
    assert settings.whole("INSIDERS_PUBLISH_ATTEMPTS") == 5
    monkeypatch.setenv("INSIDERS_PUBLISH_ATTEMPTS", "  ")
    assert not settings.is_set("INSIDERS_PUBLISH_ATTEMPTS")
    assert settings.whole("INSIDERS_PUBLISH_ATTEMPTS") == 5
    monkeypatch.setenv("INSIDERS_PUBLISH_ATTEMPTS", "three")
    with pytest.raises(ConfigError, match="INSIDERS_PUBLISH_ATTEMPTS must be a whole number, got 'three'"):
        settings.whole("INSIDERS_PUBLISH_ATTEMPTS")
    monkeypatch.setenv("INSIDERS_PUBLISH_LOCK_TIMEOUT_S", "nan")
    with pytest.raises(ConfigError, match="must be a finite number"):
        settings.number("INSIDERS_PUBLISH_LOCK_TIMEOUT_S")
    monkeypatch.setenv("INSIDERS_PUBLISH_LOCK_TIMEOUT_S", "0")
    with pytest.raises(ConfigError, match=r"must be at least 0\.001"):
        settings.number("INSIDERS_PUBLISH_LOCK_TIMEOUT_S", minimum=0.001)
    with pytest.raises(KeyError, match="not declared"):
        settings.text("INSIDERS_NO_SUCH_THING")


def test_overridden_restores_the_environment(monkeypatch):
    monkeypatch.delenv("INSIDERS_PG_SCHEMA", raising=False)
    with settings.overridden("INSIDERS_PG_SCHEMA", "elsewhere"):
        assert settings.text("INSIDERS_PG_SCHEMA") == "elsewhere"
    assert settings.text("INSIDERS_PG_SCHEMA") == "analytics"
    monkeypatch.setenv("INSIDERS_PG_SCHEMA", "mine")
    with pytest.raises(RuntimeError), settings.overridden("INSIDERS_PG_SCHEMA", "elsewhere"):
        raise RuntimeError
    assert settings.text("INSIDERS_PG_SCHEMA") == "mine"


def test_settings_command_masks_secrets(monkeypatch):
    env = {"INSIDERS_PG_PASSWORD": "hunter2-secret", "INSIDERS_CURRENCY": "EUR", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "insiders.cli", "settings"],
        cwd=PROJECT,
        env={**env, "PYTHONPATH": str(PROJECT / "python_jobs")},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "hunter2-secret" not in proc.stdout
    lines = {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines()}
    assert lines["INSIDERS_PG_PASSWORD"][:2] == ["********", "environment"]
    assert lines["INSIDERS_CURRENCY"][:2] == ["EUR", "environment"]
    assert lines["INSIDERS_RAW_SCHEMA"][:2] == ["raw", "default"]
    assert set(lines) == set(settings.SETTINGS)
