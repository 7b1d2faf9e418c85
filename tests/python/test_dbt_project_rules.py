"""dbt-project-evaluator's rules, checked on the parsed project.

The rules and their default thresholds are those of dbt-project-evaluator 1.x as its documentation states them
(docs/rules/*.md of dbt-labs/dbt-project-evaluator); the package itself is not installed (it would need the dbt
package hub), so each rule is a function here over dbt's manifest. ``dbt parse`` runs once per module, into a
temporary target path.

A rule's name is the name of its model in the package without ``fct_`` (``fct_model_fanout``: ``model_fanout``).
Each rule returns the names of the resources that break it: a model's name, ``source.table`` for a source table,
a source's name for a whole source, a test's name for a misplaced test. One test per rule asserts that they are
exactly the rule's declared exceptions in tests/dbt_project_rules_exceptions.yml, each with its reason: a new
violation fails, and so does an exception that no longer applies. So that a rule cannot pass by seeing nothing,
a second test per rule breaks a copy of the parsed project on purpose (``BREAKS``) and expects the rule to report
exactly what was broken.

Model types follow the package's defaults: the name's prefix says the type (``stg_`` staging, ``int_``
intermediate, ``fct_``/``dim_`` marts, ``rpt_`` other), else the closest enclosing folder named ``staging``,
``intermediate`` or ``marts``, else ``other``.

One rule is the project's own, checked the same way: ``names_too_long_for_postgres``.
"""

from __future__ import annotations

import copy
import json
import re
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath

import pytest
import yaml
from conftest import PROJECT, run_dbt

EXCEPTIONS_FILE = PROJECT / "tests" / "dbt_project_rules_exceptions.yml"

# Default thresholds and conventions of dbt-project-evaluator 1.x (docs/customization/overriding-variables.md).
MODELS_FANOUT_THRESHOLD = 3  # a parent with this many leaf children or more
TOO_MANY_JOINS_THRESHOLD = 7  # a model with this many direct parents or more
CHAINED_VIEWS_THRESHOLD = 4  # a model at this distance or more from the start of a chain of views
TEST_COVERAGE_TARGET = 100.0  # percent of models with at least one test
DOCUMENTATION_COVERAGE_TARGET = 100.0  # percent of models with a description
PREFIXES = {"staging": ("stg_",), "intermediate": ("int_",), "marts": ("fct_", "dim_"), "other": ("rpt_",)}
FOLDERS = {"staging": "staging", "intermediate": "intermediate", "marts": "marts"}
NOT_PHYSICAL = {"view", "ephemeral"}
PHYSICAL = {"table", "incremental"}


@dataclass
class Project:
    """The parsed project: dbt's manifest with the lookups the rules share."""

    manifest: dict = field(repr=False)

    @cached_property
    def project_name(self) -> str:
        return self.manifest["metadata"]["project_name"]

    def _own(self, resources: dict, kind: str) -> dict[str, dict]:
        return {
            uid: r
            for uid, r in resources.items()
            if r["resource_type"] == kind and r["package_name"] == self.project_name
        }

    @cached_property
    def models(self) -> dict[str, dict]:
        return self._own(self.manifest["nodes"], "model")

    @cached_property
    def data_tests(self) -> dict[str, dict]:
        return self._own(self.manifest["nodes"], "test")

    @cached_property
    def unit_tests(self) -> dict[str, dict]:
        return self._own(self.manifest["unit_tests"], "unit_test")

    @cached_property
    def sources(self) -> dict[str, dict]:
        return self._own(self.manifest["sources"], "source")

    @cached_property
    def exposures(self) -> dict[str, dict]:
        return self._own(self.manifest["exposures"], "exposure")

    def kind(self, uid: str) -> str:
        return uid.split(".", 1)[0]

    def name(self, uid: str) -> str:
        """The name a rule reports: ``source.table`` for a source table, else the resource's name."""
        if self.kind(uid) == "source":
            source = self.manifest["sources"][uid]
            return f"{source['source_name']}.{source['name']}"
        for group in ("nodes", "exposures", "metrics", "semantic_models", "saved_queries"):
            if uid in self.manifest[group]:
                return self.manifest[group][uid]["name"]
        return uid

    def parents(self, uid: str) -> list[str]:
        """Direct parents in the DAG (tests are not part of it)."""
        return [p for p in self.manifest["parent_map"].get(uid, []) if self.kind(p) not in {"test", "unit_test"}]

    def children(self, uid: str) -> list[str]:
        """Direct children in the DAG: models, snapshots, exposures, metrics…, not tests."""
        return [c for c in self.manifest["child_map"].get(uid, []) if self.kind(c) not in {"test", "unit_test"}]

    def materialized(self, uid: str) -> str | None:
        node = self.manifest["nodes"].get(uid)
        return node["config"].get("materialized") if node else None

    def directory(self, uid: str) -> PurePosixPath:
        return PurePosixPath(self.models[uid]["original_file_path"]).parent

    def model_type(self, uid: str) -> str:
        name = self.models[uid]["name"]
        prefix = name.split("_", 1)[0] + "_"
        for model_type, prefixes in PREFIXES.items():
            if prefix in prefixes:
                return model_type
        return self.folder_type(uid) or "other"

    def folder_type(self, uid: str) -> str | None:
        """The model type of the closest enclosing folder named after one, if any."""
        for part in reversed(self.directory(uid).parts):
            for model_type, folder in FOLDERS.items():
                if part == folder:
                    return model_type
        return None

    def tests_of(self, uid: str) -> list[dict]:
        """The model's tests: generic tests defined under it, singular tests that read it, its unit tests.

        A generic test counts for the model it is attached to only (a relationships test defined under
        fct_sales tests fct_sales, not dim_customers).
        """
        data = [
            t
            for t in self.data_tests.values()
            if (t.get("attached_node") == uid if t.get("test_metadata") else uid in t["depends_on"]["nodes"])
        ]
        unit = [t for t in self.unit_tests.values() if t["depends_on"]["nodes"][:1] == [uid]]
        return data + unit

    def generic_tests_on(self, uid: str) -> list[dict]:
        """Generic data tests attached to the resource (the model a test is defined under)."""
        return [t for t in self.data_tests.values() if t.get("attached_node") == uid and t.get("test_metadata")]


def _described(text: str | None) -> bool:
    return bool((text or "").strip())


RULES: dict[str, Callable[[Project], set[str]]] = {}


def evaluator_rule(name: str | None = None) -> Callable[[Callable[[Project], set[str]]], Callable[[Project], set[str]]]:
    """Registers a rule under its name in dbt-project-evaluator (the function's name unless given)."""

    def register(check: Callable[[Project], set[str]]) -> Callable[[Project], set[str]]:
        RULES[name or check.__name__] = check
        return check

    return register


# --------------------------------------------------------------------------------------------------------------
# Modeling
# --------------------------------------------------------------------------------------------------------------


@evaluator_rule()
def direct_join_to_source(p: Project) -> set[str]:
    """Models that read both a model and a source."""
    return {p.name(uid) for uid in p.models if {p.kind(x) for x in p.parents(uid)} >= {"model", "source"}}


@evaluator_rule()
def marts_or_intermediate_dependent_on_source(p: Project) -> set[str]:
    """Marts and intermediate models that read a source directly."""
    return {
        p.name(uid)
        for uid in p.models
        if p.model_type(uid) in {"marts", "intermediate"} and any(p.kind(x) == "source" for x in p.parents(uid))
    }


@evaluator_rule()
def duplicate_sources(p: Project) -> set[str]:
    """Source tables that point at the same database relation as another source table."""
    by_relation: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for uid, source in p.sources.items():
        relation = (source["database"] or "", source["schema"], source["identifier"] or source["name"])
        by_relation[tuple(part.lower() for part in relation)].append(uid)
    return {p.name(uid) for uids in by_relation.values() if len(uids) > 1 for uid in uids}


_QUOTED = r"[\"`\[]?\w+(?:-\w+)?[\"`\]]?"
_HARD_CODED = [
    # from/join {{ var('...') }} or {{ var('...', '...') }}: a relation named by a variable
    re.compile(r"(?<!distinct\s)\b(?:from|join)\s+\{\{\s*var\s*\(", re.IGNORECASE),
    # from/join schema.table or database.schema.table, each part bare or quoted, then a space or the end
    re.compile(rf"(?<!distinct\s)\b(?:from|join)\s+{_QUOTED}(?:\.{_QUOTED}){{1,2}}(?=\s|$)", re.IGNORECASE),
    # from/join "table": a quoted relation name
    re.compile(r"(?<!distinct\s)\b(?:from|join)\s+[\"`\[']\w+(?:-\w+)?[\"`\]'](?=\s|$)", re.IGNORECASE),
]


def _sql_without_comments(sql: str) -> str:
    sql = re.sub(r"\{#.*?#\}", "", sql, flags=re.DOTALL)
    sql = re.sub(r"/\*.*?\*/", "", sql, flags=re.DOTALL)
    return re.sub(r"--.*", "", sql)


@evaluator_rule()
def hard_coded_references(p: Project) -> set[str]:
    """Models whose SQL selects from a relation named in the text instead of through ref() or source()."""
    return {
        p.name(uid)
        for uid, model in p.models.items()
        if model.get("language", "sql") == "sql"
        and any(pattern.search(_sql_without_comments(model["raw_code"])) for pattern in _HARD_CODED)
    }


@evaluator_rule()
def model_fanout(p: Project) -> set[str]:
    """Parents of at least MODELS_FANOUT_THRESHOLD leaf models (models nothing reads, exposures included)."""
    leaves = {uid for uid in p.models if not p.children(uid)}
    parents: dict[str, int] = defaultdict(int)
    for leaf in leaves:
        for parent in p.parents(leaf):
            parents[parent] += 1
    return {p.name(uid) for uid, count in parents.items() if count >= MODELS_FANOUT_THRESHOLD}


@evaluator_rule()
def multiple_sources_joined(p: Project) -> set[str]:
    """Models that read more than one source table."""
    return {p.name(uid) for uid in p.models if sum(p.kind(x) == "source" for x in p.parents(uid)) > 1}


@evaluator_rule()
def rejoining_of_upstream_concepts(p: Project) -> set[str]:
    """Models read by one model only, which also reads the same parent: parent -> model -> child and parent -> child.

    The model in between is reported: it could be a CTE of its only child.
    """
    flagged = set()
    for parent in [*p.models, *p.sources, *(uid for uid in p.manifest["nodes"] if p.kind(uid) in {"seed", "snapshot"})]:
        children = {c for c in p.children(parent) if p.kind(c) in {"model", "snapshot"}}
        for between in children:
            its_children = p.children(between)
            if len(its_children) == 1 and its_children[0] in children:
                flagged.add(p.name(between))
    return flagged


@evaluator_rule()
def root_models(p: Project) -> set[str]:
    """Models without any parent (no ref(), source() or seed)."""
    return {p.name(uid) for uid in p.models if not p.parents(uid)}


@evaluator_rule()
def source_fanout(p: Project) -> set[str]:
    """Source tables read by more than one model."""
    return {p.name(uid) for uid in p.sources if sum(p.kind(c) == "model" for c in p.children(uid)) > 1}


@evaluator_rule()
def staging_dependent_on_marts_or_intermediate(p: Project) -> set[str]:
    """Staging models that read an intermediate or marts model."""
    return {
        p.name(uid)
        for uid in p.models
        if p.model_type(uid) == "staging"
        and any(x in p.models and p.model_type(x) in {"intermediate", "marts"} for x in p.parents(uid))
    }


@evaluator_rule()
def staging_dependent_on_staging(p: Project) -> set[str]:
    """Staging models that read another staging model."""
    return {
        p.name(uid)
        for uid in p.models
        if p.model_type(uid) == "staging"
        and any(x in p.models and p.model_type(x) == "staging" for x in p.parents(uid))
    }


@evaluator_rule()
def unused_sources(p: Project) -> set[str]:
    """Source tables nothing reads (a test does not count)."""
    return {p.name(uid) for uid in p.sources if not p.children(uid)}


@evaluator_rule()
def too_many_joins(p: Project) -> set[str]:
    """Models that read TOO_MANY_JOINS_THRESHOLD or more models, sources or seeds."""
    return {p.name(uid) for uid in p.models if len(set(p.parents(uid))) >= TOO_MANY_JOINS_THRESHOLD}


# --------------------------------------------------------------------------------------------------------------
# Testing
# --------------------------------------------------------------------------------------------------------------


def _has_primary_key(p: Project, uid: str) -> bool:
    """unique and not_null on one column (each a test or a constraint), a unique_combination test, or a
    primary_key constraint of the model or of a column. Constraints count only where the contract is enforced:
    dbt applies them nowhere else.
    """
    model = p.models[uid]
    checks: dict[str, set[str]] = defaultdict(set)
    for test in p.generic_tests_on(uid):
        name = test["test_metadata"]["name"]
        if name == "unique_combination":
            return True
        if test.get("column_name"):
            checks[test["column_name"]].add(name)
    if model["config"]["contract"]["enforced"]:
        if any(c["type"] == "primary_key" for c in model.get("constraints", [])):
            return True
        for column, properties in model["columns"].items():
            checks[column] |= {c["type"] for c in properties.get("constraints", [])}
        if any("primary_key" in kinds for kinds in checks.values()):
            return True
    return any({"unique", "not_null"} <= kinds for kinds in checks.values())


@evaluator_rule()
def missing_primary_key_tests(p: Project) -> set[str]:
    """Models whose grain no test or constraint checks."""
    return {p.name(uid) for uid in p.models if not _has_primary_key(p, uid)}


def _freshness(source: dict) -> dict:
    return source.get("freshness") or (source.get("config") or {}).get("freshness") or {}


@evaluator_rule()
def sources_without_freshness(p: Project) -> set[str]:
    """Source tables with neither warn_after nor error_after."""
    flagged = set()
    for uid, source in p.sources.items():
        freshness = _freshness(source)
        thresholds = [freshness.get(k) or {} for k in ("warn_after", "error_after")]
        if not any(t.get("count") and t.get("period") for t in thresholds):
            flagged.add(p.name(uid))
    return flagged


@evaluator_rule("test_coverage")
def untested_models(p: Project) -> set[str]:
    """Models without any test, when fewer than TEST_COVERAGE_TARGET percent of the models have one."""
    untested = {p.name(uid) for uid in p.models if not p.tests_of(uid)}
    covered = 100.0 * (len(p.models) - len(untested)) / max(len(p.models), 1)
    return untested if covered < TEST_COVERAGE_TARGET else set()


# --------------------------------------------------------------------------------------------------------------
# Documentation
# --------------------------------------------------------------------------------------------------------------


@evaluator_rule()
def undocumented_models(p: Project) -> set[str]:
    """Models without a description."""
    return {p.name(uid) for uid, model in p.models.items() if not _described(model["description"])}


@evaluator_rule()
def documentation_coverage(p: Project) -> set[str]:
    """Undocumented models, when fewer than DOCUMENTATION_COVERAGE_TARGET percent of the models have a description."""
    undocumented = undocumented_models(p)
    covered = 100.0 * (len(p.models) - len(undocumented)) / max(len(p.models), 1)
    return undocumented if covered < DOCUMENTATION_COVERAGE_TARGET else set()


@evaluator_rule()
def undocumented_sources(p: Project) -> set[str]:
    """Sources (the source block, not its tables) without a description."""
    return {s["source_name"] for s in p.sources.values() if not _described(s["source_description"])}


@evaluator_rule()
def undocumented_source_tables(p: Project) -> set[str]:
    """Source tables without a description."""
    return {p.name(uid) for uid, s in p.sources.items() if not _described(s["description"])}


# --------------------------------------------------------------------------------------------------------------
# Structure
# --------------------------------------------------------------------------------------------------------------


@evaluator_rule()
def model_naming_conventions(p: Project) -> set[str]:
    """Models whose name does not start with a prefix of their type (other models: rpt_)."""
    return {p.name(uid) for uid in p.models if not p.name(uid).startswith(PREFIXES[p.model_type(uid)])}


@evaluator_rule()
def model_directories(p: Project) -> set[str]:
    """Staging models outside a folder named after their source; other models in the folder of another type."""
    flagged = set()
    for uid in p.models:
        model_type, folder_type = p.model_type(uid), p.folder_type(uid)
        if model_type == "staging":
            for parent in p.parents(uid):
                if (
                    p.kind(parent) == "source"
                    and p.manifest["sources"][parent]["source_name"] not in p.directory(uid).parts
                ):
                    flagged.add(p.name(uid))
        if folder_type is not None and folder_type != model_type:
            flagged.add(p.name(uid))
    return flagged


@evaluator_rule()
def source_directories(p: Project) -> set[str]:
    """Source tables declared in a YAML file outside a folder named after the source."""
    return {
        p.name(uid)
        for uid, s in p.sources.items()
        if s["source_name"] not in PurePosixPath(s["original_file_path"]).parent.parts
    }


@evaluator_rule("test_directories")
def misplaced_tests(p: Project) -> set[str]:
    """Tests defined under a model (generic data tests, unit tests) in a YAML file of another folder than the model's.

    The test's name is reported.
    """
    flagged = set()
    tests = [*p.data_tests.values(), *p.unit_tests.values()]
    for test in tests:
        model = test.get("attached_node") if test["resource_type"] == "test" else test["depends_on"]["nodes"][0]
        if model in p.models and PurePosixPath(test["original_file_path"]).parent != p.directory(model):
            flagged.add(test["name"])
    return flagged


# --------------------------------------------------------------------------------------------------------------
# Performance
# --------------------------------------------------------------------------------------------------------------


@evaluator_rule()
def chained_views_dependencies(p: Project) -> set[str]:
    """Models at CHAINED_VIEWS_THRESHOLD or more steps from the start of an unbroken chain of views/ephemerals."""
    chain: dict[str, int] = {}

    def length(uid: str) -> int:
        """Views and ephemerals on the longest unbroken chain ending at uid (uid included); 0 for anything else."""
        if uid not in chain:
            if p.kind(uid) == "model" and p.materialized(uid) in NOT_PHYSICAL:
                chain[uid] = 1 + max((length(x) for x in p.parents(uid)), default=0)
            else:
                chain[uid] = 0
        return chain[uid]

    return {
        p.name(uid)
        for uid in p.models
        if max((length(x) for x in p.parents(uid)), default=0) >= CHAINED_VIEWS_THRESHOLD
    }


@evaluator_rule()
def exposure_parents_materializations(p: Project) -> set[str]:
    """Sources, and models not materialized as a table or incremental, that an exposure reads."""
    flagged = set()
    for exposure in p.exposures.values():
        for parent in exposure["depends_on"]["nodes"]:
            if p.kind(parent) == "source" or (p.kind(parent) == "model" and p.materialized(parent) not in PHYSICAL):
                flagged.add(p.name(parent))
    return flagged


# --------------------------------------------------------------------------------------------------------------
# Governance
# --------------------------------------------------------------------------------------------------------------


def _public(model: dict) -> bool:
    return (model.get("access") or model["config"].get("access")) == "public"


@evaluator_rule()
def public_models_without_contract(p: Project) -> set[str]:
    """Public models whose contract is not enforced."""
    return {p.name(uid) for uid, m in p.models.items() if _public(m) and not m["config"]["contract"]["enforced"]}


@evaluator_rule()
def undocumented_public_models(p: Project) -> set[str]:
    """Public models without a description or with a declared column without one."""
    return {
        p.name(uid)
        for uid, m in p.models.items()
        if _public(m)
        and (not _described(m["description"]) or not all(_described(c["description"]) for c in m["columns"].values()))
    }


@evaluator_rule()
def exposures_dependent_on_private_models(p: Project) -> set[str]:
    """Resources an exposure reads that are not public models."""
    return {
        p.name(parent)
        for exposure in p.exposures.values()
        for parent in exposure["depends_on"]["nodes"]
        if not (parent in p.models and _public(p.models[parent]))
    }


# --------------------------------------------------------------------------------------------------------------
# The project's own rules (not dbt-project-evaluator's)
# --------------------------------------------------------------------------------------------------------------

#: PostgreSQL's longest identifier (NAMEDATALEN - 1): dbt-postgres refuses a relation with a longer name
POSTGRES_MAX_NAME = 63


@evaluator_rule()
def names_too_long_for_postgres(p: Project) -> set[str]:
    """Models, seeds and unit tests whose name is longer than PostgreSQL admits for a relation.

    dbt-postgres raises "Relation name ... is longer than 63 characters" at run time, on PostgreSQL only: a model or
    seed becomes a relation of its name, and a unit test builds its temporary relation from ``this`` named after
    the unit test. DuckDB and Spark accept the name, so without this rule the failure shows only in the PostgreSQL
    tests.
    """
    resources = [
        *(n for n in p.manifest["nodes"].values() if n["resource_type"] in {"model", "seed"}),
        *p.manifest.get("unit_tests", {}).values(),
    ]
    return {r["name"] for r in resources if len(r["name"]) > POSTGRES_MAX_NAME}


# --------------------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project() -> Project:
    """The project as ``dbt parse`` sees it on the local target, parsed into a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="insiders-rules-") as scratch:
        run_dbt(
            "parse",
            "--target-path",
            f"{scratch}/target",
            "--no-partial-parse",
            target="local",
            env={"INSIDERS_DUCKDB_PATH": f"{scratch}/warehouse.duckdb"},
        )
        manifest = json.loads((Path(scratch) / "target" / "manifest.json").read_text(encoding="utf-8"))
    return Project(manifest)


def declared_exceptions() -> dict[str, dict[str, str]]:
    document = yaml.safe_load(EXCEPTIONS_FILE.read_text(encoding="utf-8")) or {}
    return {rule: dict(entries or {}) for rule, entries in document.items()}


def test_exceptions_name_known_rules_and_give_reasons() -> None:
    exceptions = declared_exceptions()
    assert set(exceptions) <= set(RULES), f"unknown rules: {sorted(set(exceptions) - set(RULES))}"
    for rule, entries in exceptions.items():
        for resource, reason in entries.items():
            assert isinstance(reason, str) and reason.strip(), f"{rule}: {resource} has no reason"


@pytest.mark.parametrize("rule", sorted(RULES))
def test_rule_holds_but_for_declared_exceptions(project: Project, rule: str) -> None:
    violations = RULES[rule](project)
    declared = set(declared_exceptions().get(rule, {}))
    new = sorted(violations - declared)
    stale = sorted(declared - violations)
    assert not new and not stale, (
        f"{rule}: new violations {new} (fix them, or declare them with a reason in {EXCEPTIONS_FILE.name}); "
        f"declared exceptions that no longer apply {stale} (remove them)"
    )


# --------------------------------------------------------------------------------------------------------------
# Each rule sees a violation: the parsed project with one thing broken on purpose
# --------------------------------------------------------------------------------------------------------------


class Broken:
    """A copy of the parsed project's manifest to break one thing in."""

    def __init__(self, project: Project) -> None:
        self.manifest = copy.deepcopy(project.manifest)
        self.package = project.project_name

    def uid(self, name: str) -> str:
        """A resource's unique id from the name a rule reports (``source.table`` for a source table)."""
        if "." in name:
            return f"source.{self.package}.{name}"
        for group in ("nodes", "exposures"):
            for uid, resource in self.manifest[group].items():
                if resource["name"] == name and resource["resource_type"] in {"model", "seed", "exposure"}:
                    return uid
        raise KeyError(name)

    def __getitem__(self, name: str) -> dict:
        uid = self.uid(name)
        for group in ("nodes", "sources", "exposures"):
            if uid in self.manifest[group]:
                return self.manifest[group][uid]
        raise KeyError(name)

    def add_edge(self, parent: str, child: str) -> None:
        parent_id, child_id = self.uid(parent), self.uid(child)
        self.manifest["parent_map"][child_id].append(parent_id)
        self.manifest["child_map"][parent_id].append(child_id)
        self[child]["depends_on"]["nodes"].append(parent_id)

    def remove_edge(self, parent: str, child: str) -> None:
        parent_id, child_id = self.uid(parent), self.uid(child)
        self.manifest["parent_map"][child_id].remove(parent_id)
        self.manifest["child_map"][parent_id].remove(child_id)
        self[child]["depends_on"]["nodes"].remove(parent_id)

    def add_model(self, name: str, path: str, parents: Iterable[str] = (), materialized: str = "view") -> None:
        """A new model, shaped like a parsed one: described, protected, no contract, no columns, no tests."""
        uid = f"model.{self.package}.{name}"
        model = copy.deepcopy(next(n for n in self.manifest["nodes"].values() if n["resource_type"] == "model"))
        model.update(
            name=name,
            unique_id=uid,
            original_file_path=path,
            description=f"The model {name}.",
            columns={},
            constraints=[],
            access="protected",
            raw_code="select 1 as id",
            depends_on={"macros": [], "nodes": []},
        )
        model["config"].update(materialized=materialized, access="protected", contract={"enforced": False})
        self.manifest["nodes"][uid] = model
        self.manifest["parent_map"][uid] = []
        self.manifest["child_map"][uid] = []
        for parent in parents:
            self.add_edge(parent, name)

    def tests_on(self, name: str, test_name: str | None = None) -> list[str]:
        """Ids of the generic tests attached to a model (of one kind, if given)."""
        uid = self.uid(name)
        return [
            t
            for t, node in self.manifest["nodes"].items()
            if node["resource_type"] == "test"
            and node.get("attached_node") == uid
            and (test_name is None or node["test_metadata"]["name"] == test_name)
        ]

    def drop_tests(self, test_ids: Iterable[str]) -> None:
        for test_id in list(test_ids):
            self.manifest["nodes"].pop(test_id)
            for parent in self.manifest["parent_map"].pop(test_id, []):
                self.manifest["child_map"][parent].remove(test_id)


BREAKS: dict[str, Callable[[Broken], set[str]]] = {}


def breaks(rule_name: str) -> Callable[[Callable[[Broken], set[str]]], Callable[[Broken], set[str]]]:
    """Registers how to break a rule: the function breaks the copy and returns the violations it expects."""

    def register(case: Callable[[Broken], set[str]]) -> Callable[[Broken], set[str]]:
        BREAKS[rule_name] = case
        return case

    return register


@breaks("direct_join_to_source")
def _(b: Broken) -> set[str]:
    b.add_edge("online_retail.transactions", "int_sales__cleaned")
    return {"int_sales__cleaned"}


@breaks("marts_or_intermediate_dependent_on_source")
def _(b: Broken) -> set[str]:
    b.add_edge("segmentation.customer_segments", "dim_customers")
    return {"dim_customers"}


@breaks("duplicate_sources")
def _(b: Broken) -> set[str]:
    b["online_retail.rejected_lines"]["identifier"] = "TRANSACTIONS"
    return {"online_retail.transactions", "online_retail.rejected_lines"}


@breaks("hard_coded_references")
def _(b: Broken) -> set[str]:
    b["int_reference_day"]["raw_code"] += "\nleft join raw.load_log as l on true\n"
    b["int_cleaning_rules"]["raw_code"] += '\njoin "main"."excluded_customers" as e on true\n'
    # Comments, and a FROM inside a function, are not references.
    b["quality_loads"]["raw_code"] += "\n-- from raw.load_log\n{# join raw.transactions #}\n/* from a.b */\n"
    b["dim_products"]["raw_code"] += "\nselect extract(day from s.invoice_day) from {{ ref('fct_sales') }} as s\n"
    return {"int_reference_day", "int_cleaning_rules"}


@breaks("model_fanout")
def _(b: Broken) -> set[str]:
    for n in (1, 2, 3):
        b.add_model(f"rpt_{n}", f"models/reports/rpt_{n}.sql", ["int_reference_day"])
    return {"int_reference_day"}


@breaks("multiple_sources_joined")
def _(b: Broken) -> set[str]:
    b.add_edge("online_retail.load_log", "stg_online_retail__transactions")
    return {"stg_online_retail__transactions"}


@breaks("rejoining_of_upstream_concepts")
def _(b: Broken) -> set[str]:
    b.add_model("int_between", "models/intermediate/int_between.sql", ["int_sales__cleaned"])
    b.add_edge("int_between", "int_customers__aggregated")
    return {"int_between"}


@breaks("root_models")
def _(b: Broken) -> set[str]:
    b.add_model("rpt_calendar", "models/reports/rpt_calendar.sql")
    return {"rpt_calendar"}


@breaks("source_fanout")
def _(b: Broken) -> set[str]:
    b.add_edge("online_retail.transactions", "int_transactions__classified")
    return {"online_retail.transactions"}


@breaks("staging_dependent_on_marts_or_intermediate")
def _(b: Broken) -> set[str]:
    b.add_edge("int_cleaning_rules", "stg_online_retail__transactions")
    return {"stg_online_retail__transactions"}


@breaks("staging_dependent_on_staging")
def _(b: Broken) -> set[str]:
    b.add_edge("stg_online_retail__load_log", "stg_online_retail__transactions")
    return {"stg_online_retail__transactions"}


@breaks("unused_sources")
def _(b: Broken) -> set[str]:
    b.remove_edge("online_retail.rejected_lines", "stg_online_retail__rejected_lines")
    return {"online_retail.rejected_lines"}


@breaks("too_many_joins")
def _(b: Broken) -> set[str]:
    parents = [uid.split(".")[-1] for uid in list(Project(b.manifest).models)[:7]]
    b.add_model("fct_wide", "models/marts/fct_wide.sql", parents, "table")
    b.add_model("fct_narrow", "models/marts/fct_narrow.sql", parents[:6], "table")
    return {"fct_wide"}


@breaks("missing_primary_key_tests")
def _(b: Broken) -> set[str]:
    b.drop_tests(b.tests_on("int_customers__aggregated", "unique"))  # unique + not_null
    b.drop_tests(b.tests_on("segment_transitions", "unique_combination"))
    b["insiders_changes"]["constraints"] = []  # the model's primary_key constraint
    for column in b["insiders_summary"]["columns"].values():  # a column's primary_key constraint
        column["constraints"] = [c for c in column["constraints"] if c["type"] != "primary_key"]
    return {"int_customers__aggregated", "segment_transitions", "insiders_changes", "insiders_summary"}


@breaks("sources_without_freshness")
def _(b: Broken) -> set[str]:
    b["online_retail.load_log"]["freshness"] = None
    b["online_retail.load_log"]["config"]["freshness"] = None
    b["online_retail.transactions"]["freshness"] = b["online_retail.transactions"]["config"]["freshness"] = {
        "warn_after": {"count": None, "period": None},
        "error_after": {"count": None, "period": None},
    }
    return {"online_retail.load_log", "online_retail.transactions"}


@breaks("test_coverage")
def _(b: Broken) -> set[str]:
    b.drop_tests(b.tests_on("int_cleaning_rules"))
    return {"int_cleaning_rules"}


@breaks("undocumented_models")
def _(b: Broken) -> set[str]:
    b["int_reference_day"]["description"] = " "
    return {"int_reference_day"}


@breaks("documentation_coverage")
def _(b: Broken) -> set[str]:
    b["int_reference_day"]["description"] = ""
    return {"int_reference_day"}


@breaks("undocumented_sources")
def _(b: Broken) -> set[str]:
    for source in b.manifest["sources"].values():
        if source["source_name"] == "segmentation":
            source["source_description"] = ""
    return {"segmentation"}


@breaks("undocumented_source_tables")
def _(b: Broken) -> set[str]:
    b["online_retail.load_log"]["description"] = ""
    return {"online_retail.load_log"}


@breaks("model_naming_conventions")
def _(b: Broken) -> set[str]:
    b.add_model("orders", "models/intermediate/orders.sql", ["int_sales__cleaned"])
    b.add_model("rpt_orders", "models/reports/rpt_orders.sql", ["int_sales__cleaned"])  # other: rpt_ is right
    return {"orders"}


@breaks("model_directories")
def _(b: Broken) -> set[str]:
    b["int_reference_day"]["original_file_path"] = "models/marts/int_reference_day.sql"
    b["stg_online_retail__load_log"]["original_file_path"] = (
        "models/staging/segmentation/stg_online_retail__load_log.sql"
    )
    return {"int_reference_day", "stg_online_retail__load_log"}


@breaks("source_directories")
def _(b: Broken) -> set[str]:
    b["segmentation.customer_value"]["original_file_path"] = "models/staging/online_retail/_more__sources.yml"
    return {"segmentation.customer_value"}


@breaks("test_directories")
def _(b: Broken) -> set[str]:
    (data_test,) = b.tests_on("int_reference_day", "not_null")
    b.manifest["nodes"][data_test]["original_file_path"] = "models/marts/_int_reference_day.yml"
    unit_test = next(u for u in b.manifest["unit_tests"].values() if u["model"] == "int_reference_day")
    unit_test["original_file_path"] = "models/_unit_tests.yml"
    return {b.manifest["nodes"][data_test]["name"], unit_test["name"]}


@breaks("chained_views_dependencies")
def _(b: Broken) -> set[str]:
    # stg -> classified -> cleaned -> reference day: four views before the features tables (three before
    # int_customers__aggregated, which stays below the threshold).
    b["int_sales__cleaned"]["config"]["materialized"] = "view"
    b["int_reference_day"]["config"]["materialized"] = "view"
    return {"customer_features", "customer_value_inputs"}


@breaks("exposure_parents_materializations")
def _(b: Broken) -> set[str]:
    b["dim_segments"]["config"]["materialized"] = "view"
    b.add_edge("online_retail.load_log", "insiders_loyalty_dashboard")
    return {"dim_segments", "online_retail.load_log"}


@breaks("public_models_without_contract")
def _(b: Broken) -> set[str]:
    b["dim_segments"]["config"]["contract"]["enforced"] = False
    return {"dim_segments"}


@breaks("undocumented_public_models")
def _(b: Broken) -> set[str]:
    b["dim_segments"]["columns"]["segment_name"]["description"] = ""
    return {"dim_segments"}


@breaks("exposures_dependent_on_private_models")
def _(b: Broken) -> set[str]:
    b["dim_segments"]["access"] = b["dim_segments"]["config"]["access"] = "protected"
    b.add_edge("online_retail.load_log", "insiders_loyalty_dashboard")
    return {"dim_segments", "online_retail.load_log"}


@breaks("names_too_long_for_postgres")
def _(b: Broken) -> set[str]:
    unit_test = next(iter(b.manifest["unit_tests"].values()))
    unit_test["name"] = "test_" + "x" * (POSTGRES_MAX_NAME - 4)
    b["dim_segments"]["name"] = "dim_" + "y" * POSTGRES_MAX_NAME
    return {unit_test["name"], "dim_" + "y" * POSTGRES_MAX_NAME}


def test_every_rule_has_a_broken_case() -> None:
    assert sorted(BREAKS) == sorted(RULES)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_rule_sees_a_violation(project: Project, rule: str) -> None:
    """Breaking the parsed project on purpose adds exactly the expected violations: the rule is not blind."""
    broken = Broken(project)
    expected = BREAKS[rule](broken)
    added = RULES[rule](Project(broken.manifest)) - RULES[rule](project)
    assert added == expected
