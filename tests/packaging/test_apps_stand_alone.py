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


@pytest.mark.django_db
def test_the_migrations_match_the_models_for_the_default_tenant_model():
    # The 0001 migrations name settings.SWITCHYARD_TENANT_MODEL; with the default it must
    # still be exactly what the models say (no new migration for existing deployments).
    from django.core.management import call_command

    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
