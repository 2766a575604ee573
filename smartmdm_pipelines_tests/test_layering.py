"""The package's import direction, checked on the source (AST), so a wrong import fails here
before it becomes a cycle or drags Dagster or the simulator into the runtime path.

- domain/ imports nothing of ours but domain/ (pure logic);
- simulate/ is its own subpackage outside the runtime path: it imports only itself and domain/,
  and nothing but the entry points (cli.py, demo.py) imports it;
- services/dbt_runner.py runs dbt without Dagster (checked in a fresh interpreter);
- defs/ holds Dagster objects only: no SQL statements (they live in services/ and store/).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "smartmdm_pipelines"
ROOT = "smartmdm_pipelines"
ENTRY_POINTS = {"cli", "demo"}  # top-level modules allowed to run the simulator
SQL = re.compile(r"\b(SELECT\b.+\bFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b", re.I | re.S)


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module of ours that ``path`` imports (absolute or relative, top level or inside functions)."""
    package = _name(path) if path.name == "__init__.py" else _name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found |= {base} | {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m == ROOT or m.startswith(ROOT + ".")}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _violations(allowed) -> list[str]:
    bad = []
    for path in _modules():
        mine = _name(path)
        for imported in sorted(_imports(path)):
            if not allowed(mine, imported):
                bad.append(f"{path.relative_to(PACKAGE.parent)} imports {imported}")
    return bad


def test_the_import_rules_see_imports() -> None:
    """The checker itself: it finds absolute, relative and function-level imports of ours."""
    assert "smartmdm_pipelines.simulate" in _imports(PACKAGE / "cli.py")  # imported inside a function
    assert "smartmdm_pipelines.simulate.generate" in _imports(PACKAGE / "simulate" / "__init__.py")
    assert "smartmdm_pipelines.store.store" in _imports(PACKAGE / "services" / "vee.py")


def test_domain_imports_only_domain() -> None:
    def allowed(mine: str, imported: str) -> bool:
        return _layer(mine) != "domain" or _layer(imported) == "domain"

    assert _violations(allowed) == []


def test_simulate_is_outside_the_runtime_path() -> None:
    def allowed(mine: str, imported: str) -> bool:
        if _layer(mine) == "simulate":
            return _layer(imported) in {"simulate", "domain"}
        if _layer(imported) == "simulate":
            return mine.split(".")[-1] in ENTRY_POINTS and mine.count(".") == 1
        return True

    assert _violations(allowed) == []


def test_dbt_runner_does_not_import_dagster() -> None:
    probe = (
        "import sys; import smartmdm_pipelines.services.dbt_runner; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dagster', 'dagster_dbt')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("path", sorted((PACKAGE / "defs").rglob("*.py")), ids=lambda p: p.name)
def test_defs_hold_no_sql(path: Path) -> None:
    strings = [
        n.value
        for n in ast.walk(ast.parse(path.read_text()))
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]
    assert [s for s in strings if SQL.search(s)] == []
