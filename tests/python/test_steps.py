"""The two dbt steps of a run (selectors.yml) split the project: what scoring needs first, the rest after.

``insiders run`` builds ``--selector features``, scores, then builds ``--selector segments``. These tests read
both selections with ``dbt ls`` (no warehouse) and check the split a scheduled run relies on: every node is
built by exactly one step, nothing in the first step needs a node of the second, and the first step holds
only what scoring reads and the checks that guard it, so the model is applied as early as the data allows.
"""

from __future__ import annotations

import json

import pytest
from conftest import run_dbt

BUILT = {"model", "seed", "snapshot", "test", "unit_test"}


def _nodes(*selection: str) -> dict[str, dict]:
    """unique_id -> dbt ls's JSON of the buildable nodes in the selection (the whole project when empty)."""
    proc = run_dbt(
        "ls",
        *selection,
        "--output",
        "json",
        "--output-keys",
        "unique_id name resource_type depends_on original_file_path",
        "--quiet",
        target="local",
    )
    nodes = (json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{"))
    return {n["unique_id"]: n for n in nodes if n["resource_type"] in BUILT}


@pytest.fixture(scope="module")
def steps() -> dict[str, dict[str, dict]]:
    return {
        "all": _nodes(),
        "features": _nodes("--selector", "features"),
        "segments": _nodes("--selector", "segments"),
    }


def _parents(node: dict) -> set[str]:
    return set(node.get("depends_on", {}).get("nodes", []))


def _ancestors(nodes: dict[str, dict], roots: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        uid = todo.pop()
        for parent in _parents(nodes.get(uid, {})):
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return seen


def test_every_node_is_built_by_exactly_one_step(steps: dict[str, dict[str, dict]]) -> None:
    features, segments, everything = set(steps["features"]), set(steps["segments"]), set(steps["all"])
    assert features & segments == set()
    assert everything - features - segments == set()
    assert (features | segments) - everything == set()


def test_the_features_step_needs_nothing_from_the_segments_step(steps: dict[str, dict[str, dict]]) -> None:
    """A test or model of the first step that reads a model of the second fails on a new warehouse."""
    segments = set(steps["segments"])
    needs_later = {
        n["name"]: sorted(_parents(n) & segments) for n in steps["features"].values() if _parents(n) & segments
    }
    assert needs_later == {}


def test_the_features_step_holds_what_scoring_reads_and_its_checks(steps: dict[str, dict[str, dict]]) -> None:
    everything, features = steps["all"], steps["features"]
    by_name = {n["name"]: uid for uid, n in everything.items() if n["resource_type"] == "model"}
    scoring_reads = {by_name["customer_features"], by_name["customer_value_inputs"]}
    quality = {uid for uid, n in everything.items() if n["original_file_path"].startswith("models/quality/")}
    needed = scoring_reads | quality | _ancestors(everything, scoring_reads | quality)
    models_and_seeds = {uid for uid, n in features.items() if n["resource_type"] in {"model", "seed"}}
    wanted = {uid for uid in needed if uid in everything and everything[uid]["resource_type"] in {"model", "seed"}}
    raw_staging = "models/staging/online_retail/"
    staging = {uid for uid in models_and_seeds if everything[uid]["original_file_path"].startswith(raw_staging)}
    assert models_and_seeds - staging == wanted - staging, "the features step builds exactly what scoring needs"
    # Every data and unit test of those models whose parents are all built in this step runs in it.
    for uid, node in everything.items():
        if node["resource_type"] in {"test", "unit_test"}:
            parents = {p for p in _parents(node) if p in everything}
            if parents and parents <= models_and_seeds:
                assert uid in features, f"{node['name']} tests only features-step models but is not run there"
    names = {n["name"] for n in features.values()}
    # The marts and the product tables wait for scoring; nothing that reads the scores is in the first step.
    assert not names & {"fct_sales", "dim_products", "int_products__aggregated_by_load", "dim_customers"}
