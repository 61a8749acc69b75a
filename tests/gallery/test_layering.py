"""Dependencies run one way: search (models that see, the pipeline, the index, queries) uses gallery
(photos, regions, accounts, visibility); gallery never imports search, not even inside a function."""
import ast
from pathlib import Path

GALLERY = Path(__file__).resolve().parents[2] / "gallery"


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_gallery_never_imports_search():
    offenders = {
        str(path.relative_to(GALLERY.parent)): sorted(name for name in imported_modules(path)
                                                      if name == "search" or name.startswith("search."))
        for path in GALLERY.rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}
    assert len(offenders) > 10  # the walk found gallery's modules
