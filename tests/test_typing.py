"""mypy's configuration keeps up with the tree: every services or selectors module, and the
Mokugift client, is checked as strictly as `--strict` (`make lint` runs mypy itself)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("accounts", "audit", "campaigns", "mokudash", "rewards", "sandbox")
# What `--strict` turns on that a module section can take (the rest are global settings).
STRICT_FLAGS = {
    "disallow_any_generics",
    "disallow_subclassing_any",
    "disallow_untyped_calls",
    "disallow_untyped_defs",
    "disallow_incomplete_defs",
    "disallow_untyped_decorators",
    "warn_return_any",
    "extra_checks",
}


def _mypy() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]


def _strict_patterns() -> list[str]:
    patterns = []
    for override in _mypy()["overrides"]:
        if (
            all(override.get(flag) for flag in STRICT_FLAGS)
            and override.get("implicit_reexport") is False
        ):
            patterns.extend(override["module"])
    return patterns


def _matches(module: str, pattern: str) -> bool:
    """mypy's module patterns: a name, or `name.*` for it and everything under it."""
    if pattern.endswith(".*"):
        package = pattern.removesuffix(".*")
        return module == package or module.startswith(package + ".")
    return module == pattern


def rule_modules() -> list[str]:
    """The modules that must be strict: services and selectors (modules or packages), and the
    Mokugift client (a package)."""
    found = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "migrations" in parts:
                continue
            client = parts[:2] == ("rewards", "mokugift")
            if client or any(part in ("services", "selectors") for part in parts):
                found.append(".".join(p for p in parts if p != "__init__"))
    return found


def test_every_services_and_selectors_module_is_checked_strictly():
    patterns = _strict_patterns()
    loose = [m for m in rule_modules() if not any(_matches(m, p) for p in patterns)]
    assert loose == [], f"add them to the strict override of [tool.mypy] in pyproject.toml: {loose}"


def test_the_strict_list_names_only_modules_that_exist():
    modules = set(rule_modules())
    stale = [p for p in _strict_patterns() if not any(_matches(m, p) for m in modules)]
    assert stale == []


def test_it_finds_the_services_and_selectors_there_are():
    # The walk itself must see the modules, or the first test would pass on nothing.
    modules = rule_modules()
    for expected in (
        "rewards.services.sending",
        "rewards.selectors.mirror",
        "campaigns.services",
        "sandbox.selectors",
        "rewards.mokugift",
        "rewards.mokugift.parser",
    ):
        assert expected in modules
    assert not any(_matches("rewards.views.send", p) for p in _strict_patterns())
