"""The house's layering, read from the source (every import, also those inside functions):

- no import circle between our modules;
- gallery (photos and what people do with them) imports nothing of search;
- search.vision (models that see) imports neither Django models nor gallery nor the rest of search;
- search.index (the vector index) never reaches torch, open_clip or segment_anything, however
  indirectly: a web process that only searches stored vectors does not load them.
"""

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APPS = ("imgsearch", "gallery", "search")
TORCH = ("torch", "torchvision", "open_clip", "segment_anything")


@cache
def modules() -> dict[str, Path]:
    """Every module of the project's apps: dotted name -> file."""
    found = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_names(name: str) -> set[str]:
    """What module `name` imports, as dotted names (`from a import b` gives a.b when that is a module, else a)."""
    path = modules()[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                names.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules() else base)
    return names


@cache
def project_imports(name: str) -> frozenset[str]:
    return frozenset(imported for imported in imported_names(name) if imported in modules() and imported != name)


def external_imports(name: str) -> set[str]:
    return {imported.split(".")[0] for imported in imported_names(name) if imported.split(".")[0] not in APPS}


def reachable(start: str) -> set[str]:
    """`start` and every project module it imports, directly or through others."""
    seen, todo = {start}, [start]
    while todo:
        for imported in project_imports(todo.pop()):
            if imported not in seen:
                seen.add(imported)
                todo.append(imported)
    return seen


def circles() -> list[list[str]]:
    """The import graph's strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(project_imports(node)):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(modules()):
        if node not in index:
            visit(node)
    return found


def in_package(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_walk_sees_every_app_and_their_imports():
    assert {name.split(".")[0] for name in modules()} == set(APPS) and len(modules()) > 60
    assert "gallery.models" in project_imports("gallery.services")  # `from gallery.models import ...`
    assert "gallery.storage" in project_imports("gallery.services")  # `from gallery import storage`


def test_no_import_circle_anywhere():
    assert circles() == []


def test_gallery_never_imports_search():
    offenders = {
        name: sorted(i for i in project_imports(name) if in_package(i, "search"))
        for name in modules()
        if in_package(name, "gallery")
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_vision_imports_no_django_models_nor_gallery_nor_the_rest_of_search():
    offenders = {}
    for name in modules():
        if not in_package(name, "search.vision"):
            continue
        wrong = sorted(i for i in project_imports(name) if not in_package(i, "search.vision"))
        wrong += sorted(
            i for i in imported_names(name) if in_package(i, "django.db") or in_package(i, "django.contrib")
        )
        if wrong:
            offenders[name] = wrong
    assert offenders == {}
    assert any(in_package(name, "search.vision") for name in modules())


def test_the_index_never_reaches_torch():
    offenders = {}
    for name in modules():
        if in_package(name, "search.index"):
            heavy = {module: sorted(external_imports(module) & set(TORCH)) for module in reachable(name)}
            if any(heavy.values()):
                offenders[name] = {module: found for module, found in heavy.items() if found}
    assert offenders == {}
    assert "faiss" in set().union(*(external_imports(m) for m in modules() if in_package(m, "search.index")))
