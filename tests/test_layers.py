"""Floors: the project package on top, the apps, then utilities; nothing imports upward."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("accounts", "metering", "billing", "reports", "webhooks")
PROJECT = "usage_portal"


def imported_packages(path: Path) -> set[str]:
    """The top-level packages a module imports, wherever the import statement is."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.partition(".")[0])
    return found


def importers(packages: tuple[str, ...], forbidden: set[str]) -> list[str]:
    """Modules of `packages` that import any of `forbidden`."""
    return [
        str(path.relative_to(ROOT))
        for package in packages
        for path in sorted((ROOT / package).rglob("*.py"))
        if not imported_packages(path).isdisjoint(forbidden)
    ]


def test_utilities_import_no_app_and_not_the_project():
    assert importers(("utilities",), {*APPS, PROJECT}) == []


def test_apps_do_not_import_the_project_package():
    assert importers(APPS, {PROJECT}) == []
