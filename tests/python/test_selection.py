"""The selections analysts type work: a model with its parents builds and tests without the rest of the project."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import query, run_dbt

from insiders.loader import load_file
from insiders.sample import generate_sample
from insiders.warehouse import connect, load_target

pytestmark = pytest.mark.slow


def test_features_with_their_parents_build_alone(duckdb_file: Path, tmp_path: Path) -> None:
    """`dbt build --select +customer_features` on a warehouse that has never been scored: before cautious
    indirect selection, tests that also read the marts or the scoring tables failed for want of them."""
    sample = generate_sample(tmp_path / "sample.csv.gz", customers=300, months=13, seed=5)
    target = load_target("local")
    with connect(target) as wh:
        load_file(wh, sample.path)
    proc = run_dbt("build", "--select", "+customer_features", target="local")  # raises unless dbt exits 0
    summary = proc.stdout.replace(" ", "")
    assert "ERROR=0" in summary and "WARN=0" in summary
    customers = query(target, f"select count(*) from {target.schema}.customer_features")[0][0]
    assert customers > 250
    # Nothing downstream was built: the selection stayed a selection.
    tables = {r[0] for r in query(target, "select table_name from information_schema.tables")}
    assert "customer_segments" not in tables and "dim_customers" not in tables
