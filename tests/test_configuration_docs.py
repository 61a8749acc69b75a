"""The README's configuration table tells the truth: every environment variable the code reads is in
it, everything in it is read, and where the code's default is a plain value the table shows it.

The variables are read from the source (imgsearch/settings/, gunicorn's config, the WSGI entry
point): each `env_*("NAME", default, ...)` call names one.
"""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [
    *sorted((ROOT / "imgsearch" / "settings").glob("*.py")),
    ROOT / "imgsearch" / "gunicorn_conf.py",
    ROOT / "imgsearch" / "wsgi.py",
]


def variables_read() -> dict[str, object]:
    """NAME -> its default where that is a plain literal (else ...), for every env_* call and
    os.environ.setdefault in the sources."""
    found: dict[str, object] = {}
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)):
                continue
            function = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if not (function.startswith("env_") or function == "setdefault"):
                continue
            name = node.args[0].value
            if not (isinstance(name, str) and name.isupper()) or name == "DJANGO_SETTINGS_MODULE":
                continue
            default = node.args[1] if len(node.args) > 1 else None
            literal = default.value if isinstance(default, ast.Constant) else ...
            if found.get(name, ...) is ...:
                found[name] = literal
    return found


def documented() -> dict[str, str]:
    """NAME -> the default cell of its row in the README's configuration table (several names may
    share a row), plus the Makefile variables the README lists."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("| Variable | Default | Meaning |")[1].split("\n\n")[0]
    rows = {}
    for line in table.splitlines()[1:]:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3:
            continue
        names = re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0])
        defaults = [part.strip() for part in cells[1].split(",")] if len(names) > 1 else [cells[1]]
        for name, default in zip(names, defaults + [cells[1]] * (len(names) - len(defaults)), strict=False):
            rows[name] = default
    makefile_line = next(line for line in readme.splitlines() if line.startswith("Makefile variables:"))
    rows.update({name: "" for name in re.findall(r"`([A-Z][A-Z_]+)`", makefile_line)})
    return rows


def shown(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def test_every_variable_the_code_reads_is_in_the_readme_and_nothing_else_is():
    read, table = variables_read(), documented()
    assert len(read) > 90  # the walk found the settings
    assert sorted(set(read) - set(table)) == [], "read by the code but missing from the README's table"
    makefile_only = {"TEST_DATABASE_URL", "PYTEST_ARGS", "PYTEST_MARKERS", "PYTHON", "VENV"}
    assert sorted(set(table) - set(read) - makefile_only) == [], "in the README's table but read by nothing"


def test_the_readme_shows_each_plain_default_the_code_has():
    table = documented()
    wrong = {}
    for name, default in variables_read().items():
        if default is ... or default is None or name not in table or not table[name]:
            continue
        cell = table[name]
        # An empty default reads "empty" or says what happens without it; any other shows the value.
        ok = not cell.startswith("`") if default == "" else f"`{shown(default)}`" in cell
        if not ok:
            wrong[name] = (default, cell)
    assert wrong == {}
