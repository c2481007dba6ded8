"""Dependencies point inward: the domain never imports a face (api, web, cli) or the job layer.

Every module of ``nurture_mail`` is parsed with ``ast``; every ``import`` counts, at module level
or inside a function (a function-level import is still a dependency, only a later one).
See docs/architecture.md for the layers.
"""
from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nurture_mail"
DOMAIN = ("nurture", "sales", "leads", "scoring", "tracking", "bounces", "campaigns", "engine", "mail", "models")
OUTER = ("api", "web", "cli", "jobs")
#: HTTP endpoints that still live beside their domain code (public, token-signed links and the
#: ESP webhook). They are faces: no other domain module may import them, and they import no
#: other face. Moving them under web/ is the next step; a new one is not allowed.
ENDPOINT_MODULES = {"nurture_mail.tracking.clicks", "nurture_mail.tracking.unsubscribe",
                    "nurture_mail.bounces.webhook"}


@dataclass(frozen=True)
class Import:
    module: str
    target: str
    line: int
    in_function: bool


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _targets(node: ast.AST, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    # "from . import api" imports the module nurture_mail.api: name each imported name too.
    return [prefix] + [f"{prefix}.{alias.name}" for alias in node.names if alias.name != "*"]


def _imports_of(path: Path) -> Iterator[Import]:
    module = _module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    functions: list[ast.AST] = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    inside = {id(child) for function in functions for child in ast.walk(function)}
    for node in ast.walk(tree):
        for target in _targets(node, module, path.name == "__init__.py"):
            yield Import(module, target, getattr(node, "lineno", 0), id(node) in inside)


def all_imports() -> list[Import]:
    return [imp for path in sorted(PACKAGE.rglob("*.py")) for imp in _imports_of(path)]


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "nurture_mail" else None


def test_the_parser_sees_function_level_and_relative_imports():
    source = "from ..web import csrf\n\ndef f():\n    from ..jobs.sales import enqueue\n    import nurture_mail.api\n"
    tree = ast.parse(source)
    found = [t for n in ast.walk(tree) for t in _targets(n, "nurture_mail.sales.x", False)]
    assert "nurture_mail.web.csrf" in found and "nurture_mail.jobs.sales" in found and "nurture_mail.api" in found


def test_domain_modules_import_no_face_and_no_job():
    wrong = [f"{imp.module}:{imp.line} imports {imp.target}{' (inside a function)' if imp.in_function else ''}"
             for imp in all_imports()
             if _layer(imp.module) in DOMAIN and _layer(imp.target) in OUTER]
    assert wrong == []


def test_no_domain_module_imports_an_endpoint_module():
    registrars = {"nurture_mail.tracking", "nurture_mail.bounces"}  # their init_app registers the endpoints
    wrong = [f"{imp.module}:{imp.line} imports {imp.target}" for imp in all_imports()
             if _layer(imp.module) in DOMAIN and imp.module not in ENDPOINT_MODULES | registrars
             and any(imp.target == m or imp.target.startswith(m + ".") for m in ENDPOINT_MODULES)]
    assert wrong == []


def test_blueprints_live_in_faces_or_the_listed_endpoint_modules():
    holders = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        if _layer(module) in DOMAIN and "Blueprint(" in path.read_text(encoding="utf-8"):
            holders.add(module)
    assert holders <= ENDPOINT_MODULES, f"HTTP endpoints in domain modules: {sorted(holders - ENDPOINT_MODULES)}"


def _module_level_graph(imports: list[Import], modules: set[str]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for imp in imports:
        if not imp.in_function and imp.target in modules and imp.target != imp.module:
            graph[imp.module].add(imp.target)
    return graph


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        current = todo.pop()
        if current == goal:
            return True
        if current not in seen:
            seen.add(current)
            todo.extend(graph.get(current, ()))
    return False


def test_no_function_level_import_in_the_domain_hides_a_cycle():
    """A function-level import of B in A is a hidden cycle when B already imports A at module level."""
    imports = all_imports()
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    graph = _module_level_graph(imports, modules)
    hidden = sorted({f"{imp.module}:{imp.line} imports {imp.target}" for imp in imports
                     if imp.in_function and _layer(imp.module) in DOMAIN and imp.target in modules
                     and imp.target != imp.module
                     and _layer(imp.target) in DOMAIN and _reaches(graph, imp.target, imp.module)})
    assert hidden == []


@pytest.mark.parametrize("module", ["nurture_mail.leads.service", "nurture_mail.nurture.enrollments",
                                    "nurture_mail.sales.actions", "nurture_mail.leads.imports"])
def test_the_services_exist_where_the_faces_expect_them(module):
    assert (PACKAGE.parent / (module.replace(".", "/") + ".py")).exists()
