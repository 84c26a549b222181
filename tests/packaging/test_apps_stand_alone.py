"""The three apps of django-switchyard never import the reference project (`config`)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ("tenants", "llm_providers", "build_loop")


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("app", APPS)
def test_no_module_of_the_app_imports_config(app):
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            m for m in imported_modules(path) if m.split(".")[0] == "config"
        )
        for path in (ROOT / app).rglob("*.py")
    }
    assert {p: m for p, m in offenders.items() if m} == {}


@pytest.mark.parametrize("app", APPS)
def test_no_dotted_path_of_the_app_names_config(app):
    # Settings-style strings ("config.exceptions.handler") would break in a host project.
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / app).rglob("*.py")
        if '"config.' in path.read_text() or "'config." in path.read_text()
    ]
    assert offenders == []
