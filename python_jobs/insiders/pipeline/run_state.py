"""What a published run was made from (so that a run with nothing new does nothing), and source freshness."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from insiders import publish, settings, tables
from insiders.errors import InsidersError, PipelineStepError
from insiders.pipeline.run_vars import RunVars
from insiders.warehouse import (
    Target,
    connect,
    project_dir,
)

# ------------------------------------------------------------------------------------------------------------------
# Run state: what a published run was computed from, so that a run with nothing new does nothing
# ------------------------------------------------------------------------------------------------------------------
RUN_STATE_TABLE = tables.RUN_STATE.name
# What the published answer depends on besides the data and the model: the dbt project (its data tests gate what
# is published) and the package's code.
_CODE_FOLDERS = ("models", "macros", "seeds", "tests/dbt")
_CODE_FILES = ("dbt_project.yml", "selectors.yml")
_PACKAGE = Path(__file__).resolve().parents[1]  # the insiders package


def _code_files() -> list[Path]:
    """The files of the code digest: the dbt project's models, macros, seeds, data tests and configuration, and
    every module of the ``insiders`` package, subpackages included."""
    root = project_dir()
    paths = [root / name for name in _CODE_FILES]
    for folder in _CODE_FOLDERS:
        paths.extend(sorted(p for p in (root / folder).rglob("*") if p.is_file()))
    paths.extend(sorted(_PACKAGE.rglob("*.py")))
    return [path for path in paths if path.is_file()]


def _code_digest() -> str:
    """sha256 over :func:`_code_files`, each named by its path in the project or the package."""
    import hashlib

    root = project_dir()
    digest = hashlib.sha256()
    for path in _code_files():
        name = str(path.relative_to(_PACKAGE.parent) if path.is_relative_to(_PACKAGE) else path.relative_to(root))
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def run_inputs(target: Target, run_vars: RunVars) -> dict[str, str]:
    """What a run's published answer is computed from, as short comparable strings.

    ``loads``: how many files the load log holds, a digest of their sha256s (a file loaded or removed changes it)
    and the newest load; ``vars``: the ``--vars`` (the as-of day among them); ``model``: the pinned version and
    its sha256; ``code``: a digest of the dbt project and the package; ``schema``: where it is published;
    ``reader``: the BI reader role publish grants to (another role needs a new publish, and its check).
    """
    raw = settings.text("INSIDERS_RAW_SCHEMA")
    return {
        "loads": _loads_summary(_load_log(target, raw), raw),
        "vars": run_vars.canonical(),
        "model": model_input(),
        "value": value_input(),
        "code": _code_digest()[:16],
        "schema": target.schema,
        "reader": publish.bi_reader_role(),
    }


def _load_log(target: Target, raw: str) -> list[tuple]:
    """The load log's (file_sha256, load_id, loaded_at), oldest first (none when there is no load log)."""
    with connect(target) as wh:
        if not wh.relation_exists(raw, "load_log"):
            return []
        return wh.query(f"select file_sha256, load_id, loaded_at from {raw}.load_log order by loaded_at, load_id")


def _loads_summary(rows: list[tuple], raw: str) -> str:
    """The ``loads`` input: how many files, a digest of their sha256s and the newest load (see run_inputs)."""
    import hashlib

    if not rows:
        return f"none in {raw}"
    digest = hashlib.sha256("\n".join(sorted(str(r[0]) for r in rows)).encode()).hexdigest()
    _, newest_id, newest_at = rows[-1]
    newest = f"newest load {newest_id} at {newest_at:%Y-%m-%d %H:%M:%S}"
    return f"{len(rows)} file(s) in {raw}, digest {digest[:16]}, {newest}"


#: The loads whose lines the line-level data tests may leave out (macros/tested_loads.sql), for dbt only.
TESTED_LOADS_ENV = "INSIDERS_TESTED_LOADS"
#: What must be equal to the last published run's for its tests to vouch for its loads' lines in this run.
_SAME_FOR_TESTED_LOADS = ("code", "vars", "schema")


def already_tested_loads(
    target: Target, inputs: dict[str, str], full_refresh: bool, previous: tuple[str, str, dict[str, str]] | None
) -> tuple[list[str], str]:
    """The loads the last published run of this schema tested, when this run's line-level data tests may leave
    them out, and why (or why not) in words.

    That run's build passed the key and not-null tests over every line of those loads. Its dbt project, package
    code and variables (``inputs``' code, vars and schema) equal this run's, so the models' SQL and the cleaning
    rules are the same; a load's lines are never rewritten (the loader adds new loads only) and the incremental
    models keep the rows they built for a load until the cleaning rules change. Testing those lines again would
    count the same rows with the same SQL. The loads are the load log's oldest ones whose summary (number, digest
    of the files' sha256s, newest load) equals that run's ``loads`` input: a load removed since, or any other
    change to the log, matches no prefix and every line is tested. So is it on a full refresh, on a first run,
    and after any change of a model, seed, macro or variable.
    """
    if full_refresh:
        return [], "full refresh: the data tests read every line"
    if previous is None:
        return [], "no published run in this schema: the data tests read every line"
    run_id, _, before = previous
    changed = [name for name in _SAME_FOR_TESTED_LOADS if before.get(name) != inputs.get(name)]
    if changed:
        return [], f"{' and '.join(changed)} changed since run {run_id}: the data tests read every line"
    raw = settings.text("INSIDERS_RAW_SCHEMA")
    rows = _load_log(target, raw)
    for end in range(len(rows), 0, -1):
        if _loads_summary(rows[:end], raw) == before.get("loads"):
            loads = [str(row[1]) for row in rows[:end]]
            new = len(rows) - end
            return loads, (
                f"the line-level data tests read the {new} load(s) added since run {run_id}, which tested the other "
                f"{len(loads)} with the same code and variables"
            )
    return [], f"the load log is not the one of run {run_id} plus new loads: the data tests read every line"


def model_input() -> str:
    """The pinned model as compared between runs: its version and sha256 (and the manifest's, when pinned)."""
    from insiders.registry import read_pin

    pin = read_pin(required=False)
    if pin is None:
        return "none pinned"
    model = f"{pin.version} sha256 {pin.sha256}"
    manifest_digest = getattr(pin, "manifest_sha256", None)
    return f"{model} manifest {manifest_digest}" if manifest_digest else model


def value_input() -> str:
    """The pinned customer-value model and the run's horizon, as compared between runs (``none pinned``)."""
    from insiders.registry import VALUE, read_pin
    from insiders.value import HORIZON_ENV

    pin = read_pin(required=False, kind=VALUE)
    if pin is None:
        return "none pinned"
    horizon = settings.text(HORIZON_ENV) if settings.is_set(HORIZON_ENV) else "default"
    return f"{pin.version} sha256 {pin.sha256} horizon {horizon}"


def previous_run_inputs(target: Target) -> tuple[str, str, dict[str, str]] | None:
    """The run id, publish time and inputs of the last published run in this schema, if any."""
    import json

    with connect(target) as wh:
        if not wh.relation_exists(target.schema, RUN_STATE_TABLE):
            return None
        rows = wh.query(
            f"select run_id, published_at, inputs from {target.schema}.{RUN_STATE_TABLE} "
            "order by published_at desc, run_id desc limit 1"
        )
    if not rows:
        return None
    run_id, published_at, inputs = rows[0]
    try:
        parsed = json.loads(inputs)
    except ValueError:
        return None
    return str(run_id), f"{published_at:%Y-%m-%d %H:%M:%S}", parsed if isinstance(parsed, dict) else {}


def record_run_inputs(target: Target, run_id: str, inputs: dict[str, str]) -> None:
    """Append the inputs of a published run to the run state (right after the publish committed).

    A kill between the publish and this row only makes the next run do its work again, never skip it.
    """
    import json

    with connect(target) as wh, wh.transaction():
        ddl = tables.RUN_STATE.spark_ddl if wh.kind == "spark" else tables.RUN_STATE.ddl
        wh.execute(ddl(target.schema))
        wh.execute(
            f"insert into {target.schema}.{RUN_STATE_TABLE} (run_id, published_at, inputs) values (%s, %s, %s)",
            [run_id, _utc_now(), json.dumps(inputs, sort_keys=True)],
        )


def _utc_now():
    import datetime as dt

    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def check_nothing_new(
    target: Target, inputs: dict[str, str], previous: tuple[str, str, dict[str, str]] | None
) -> tuple[bool, str]:
    """Whether the last published run of this schema (``previous``, from :func:`previous_run_inputs`) had
    exactly these inputs, and what was compared."""
    if previous is None:
        return False, "no published run recorded in this schema: running"
    run_id, published_at, before = previous
    changed = [name for name in inputs if before.get(name) != inputs[name]]
    if changed:
        detail = "; ".join(f"{name}: {before.get(name, '-')} -> {inputs[name]}" for name in changed)
        return False, f"changed since run {run_id}: {detail}"
    with connect(target) as wh:
        if not wh.relation_exists(f"{target.schema}_{publish.LIVE_SUFFIX}", "insiders_summary"):
            return False, f"same inputs as run {run_id}, but the live marts are missing: running"
    compared = "; ".join(f"{name}: {value}" for name, value in inputs.items())
    return True, (
        f"nothing new since run {run_id} (published {published_at} UTC), compared {compared}. No scoring, no "
        "publishing (--force runs anyway)"
    )


# ------------------------------------------------------------------------------------------------------------------
# Freshness: the age of the newest load against the thresholds declared in the sources YAML
# ------------------------------------------------------------------------------------------------------------------
SOURCES_YAML = Path("models") / "staging" / "online_retail" / "_online_retail__sources.yml"
FRESHNESS_TABLE = "load_log"
_PERIODS = {"minute": 60.0, "hour": 3600.0, "day": 86400.0}


class StaleDataError(InsidersError):
    """The newest load is older than the declared error threshold."""


def _threshold(value: object) -> float | None:
    """Seconds of a dbt freshness threshold such as ``{count: 35, period: day}`` (``None`` when absent)."""
    if not isinstance(value, dict):
        return None
    count, period = value.get("count"), value.get("period")
    if period not in _PERIODS or isinstance(count, bool) or not isinstance(count, int | float) or count <= 0:
        raise PipelineStepError(f"{SOURCES_YAML}: freshness threshold {value!r} is not {{count: N, period: day}}")
    return float(count) * _PERIODS[str(period)]


def declared_freshness() -> tuple[float | None, float | None]:
    """The warn and error thresholds (seconds) declared for the load log in the sources YAML (table over source)."""
    import yaml

    path = project_dir() / SOURCES_YAML
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PipelineStepError(f"cannot read the declared source freshness in {path}: {exc}") from exc
    freshness: object = None
    for source in document.get("sources") or []:
        if source.get("name") != "online_retail":
            continue
        freshness = (source.get("config") or {}).get("freshness", source.get("freshness"))
        for table in source.get("tables") or []:
            if table.get("name") == FRESHNESS_TABLE:
                config = table.get("config") or {}
                if "freshness" in config or "freshness" in table:
                    freshness = config.get("freshness", table.get("freshness"))
    if not isinstance(freshness, dict):
        return None, None
    return _threshold(freshness.get("warn_after")), _threshold(freshness.get("error_after"))


def _age(seconds: float) -> str:
    return f"{seconds / 86400:.1f} days" if seconds >= 86400 else f"{seconds / 3600:.1f} hours"


def check_freshness(target: Target, log: Callable[[str], None]) -> str:
    """The "freshness" step: fail above the error threshold, warn above the warn one, with the newest load's age."""
    import datetime as dt

    warn, error = declared_freshness()
    if warn is None and error is None:
        return f"no freshness declared in {SOURCES_YAML}: not checked"
    raw = settings.text("INSIDERS_RAW_SCHEMA")
    with connect(target) as wh:
        rows = []
        if wh.relation_exists(raw, FRESHNESS_TABLE):
            rows = wh.query(
                f"select load_id, file_name, loaded_at from {raw}.{FRESHNESS_TABLE} "
                "order by loaded_at desc, load_id desc limit 1"
            )
    if not rows:
        message = f"warning: nothing was ever loaded into {raw} ({target.describe()}): freshness not checked"
        log(message)
        return message
    load_id, file_name, loaded_at = rows[0]
    # loaded_at is UTC without a time zone (the loader writes it so).
    age = (dt.datetime.now(dt.UTC).replace(tzinfo=None) - loaded_at).total_seconds()
    newest = f"the newest load ({file_name}, load {load_id}, at {loaded_at:%Y-%m-%d %H:%M} UTC) is {_age(age)} old"
    if error is not None and age > error:
        raise StaleDataError(
            f"{newest}: older than the error threshold of {_age(error)} declared in {SOURCES_YAML}. Is --source "
            "empty or mistyped, or is the delivery late? Nothing was built, scored or published"
        )
    if warn is not None and age > warn:
        message = f"warning: {newest}: older than the warn threshold of {_age(warn)} declared in {SOURCES_YAML}"
        log(message)
        return message
    return f"{newest} (warn after {_age(warn) if warn else '-'}, error after {_age(error) if error else '-'})"
