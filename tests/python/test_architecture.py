"""The rooms of the package and what each may import (docs/architecture.md), checked on every module's imports.

An import the table does not allow fails here with the module, the room it reached into and the line, so a
shortcut (the model reading the warehouse, the report importing the pipeline) is a decision, not a drift.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "python_jobs" / "insiders"
MAX_LINES = 600

FOUNDATION = {"errors", "settings", "tables", "targets", "warehouse", "dbt_session", "layouts"}
# room -> the rooms it may import (its own always allowed); a room is a top-level module or subpackage.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "tables": set(),
    "layouts": set(),
    "settings": {"errors"},
    "targets": {"errors", "settings"},
    # the table contracts' type names, as each warehouse spells them (Warehouse.sql_type)
    "warehouse": {"errors", "settings", "tables", "targets"},
    "dbt_session": {"errors", "settings", "targets", "warehouse"},
    "spark_tables": FOUNDATION,
    "loader": FOUNDATION | {"spark_tables"},
    "sample": {"errors"},
    "model": {"errors"},
    "artifacts": FOUNDATION,
    "registry": FOUNDATION | {"artifacts"},
    "training": FOUNDATION | {"model", "artifacts", "registry"},
    "scoring": FOUNDATION | {"model", "artifacts", "registry", "spark_scoring"},
    "spark_scoring": FOUNDATION | {"model", "artifacts", "registry", "spark_tables", "scoring"},
    # on Spark, publishing switches views to new table versions (spark_tables)
    "publish": FOUNDATION | {"spark_tables"},
    "formatting": FOUNDATION,
    "traits": FOUNDATION | {"formatting"},
    "marts": FOUNDATION | {"formatting"},
    # value.backtest compares the value model per segment, so it reaches the segmentation model and training; its
    # report section and plot are drawn with the report's SVG helpers (insiders.report.charts); on Spark, the value
    # step writes a new table version behind a view (spark_tables)
    "value": FOUNDATION
    | {
        "artifacts",
        "registry",
        "model",
        "training",
        "marts",
        "formatting",
        "traits",
        "pipeline",
        "report",
        "spark_tables",
    },
    "pipeline": FOUNDATION
    | {"spark_tables", "loader", "model", "artifacts", "registry", "training", "scoring", "publish", "value"},
    "report": FOUNDATION | {"model", "registry", "training", "marts", "formatting", "traits", "value"},
    "answers": FOUNDATION | {"marts", "formatting", "traits", "value"},
    "cli": {"*"},
}


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts == ("__init__",):
            continue
        found.append((parts[0], path))
    return found


def imported_rooms(path: Path) -> list[tuple[str, int]]:
    """The rooms of ``insiders`` a module imports (at the top or inside a function), with the line."""
    rooms = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "insiders":
                names = [f"insiders.{a.name}" for a in node.names]
            elif node.module.startswith("insiders."):
                names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("insiders.")]
        rooms += [(name.split(".")[1], node.lineno) for name in names]
    return rooms


def test_every_room_is_declared():
    rooms = {room for room, _ in modules()}
    assert rooms <= set(ALLOWED), f"rooms missing from ALLOWED (and docs/architecture.md): {rooms - set(ALLOWED)}"


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_rooms_import_only_what_they_may(room: str):
    allowed = ALLOWED[room]
    wrong = [
        f"{path.relative_to(PACKAGE)}:{line} imports insiders.{target}"
        for module_room, path in modules()
        if module_room == room
        for target, line in imported_rooms(path)
        if target != room and "*" not in allowed and target not in allowed and target != "__version__"
    ]
    assert wrong == []


def test_no_module_is_a_big_room():
    big = {
        str(path.relative_to(PACKAGE)): n
        for _, path in modules()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert big == {}


def test_the_model_reads_no_environment_and_no_warehouse():
    for room, path in modules():
        if room == "model":
            text = path.read_text(encoding="utf-8")
            assert "os.environ" not in text and "import duckdb" not in text and "psycopg2" not in text, path
