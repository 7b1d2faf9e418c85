"""``insiders run``: the one command a schedule runs.

Steps, in order, each timed and named:

1. **load**: raw files of ``--source`` (a file, a folder, or an ``s3://bucket/prefix``) that are not loaded
   yet (already loaded content is skipped by its sha256);
   **freshness**: the newest load's age against the thresholds declared in the sources YAML (fails above
   ``error_after``, warns above ``warn_after``);
   **check**: when the loads, ``--vars``, pinned model and code are those of the last published run, the run
   stops here and says "nothing new" (``--force`` goes on);
   a back-fill (``--vars '{as_of_date: …}'``) runs every later step in ``<schema>_backfill_<YYYYMMDD>``
   (marts in ``…_marts``), its history rows marked ``backfill``: the live marts and history are not touched;
2. **features**: ``dbt build --selector features`` (staging, cleaning, customer_features, quality, data tests;
   unit tests run in CI, not in scheduled runs);
3. **train** (only with ``--train-if-unpinned`` and no pinned model): ``insiders train --promote``;
4. **score**: apply the pinned model and publish ``customer_segments``;
5. **marts**: ``dbt build --selector segments`` into ``<schema>_marts_build`` (the marts and their tests);
6. **publish**: all marts copied to ``<schema>_marts`` in one transaction (:mod:`insiders.publish`; the lines
   of ``fct_sales`` appended by load, copied in full on ``--full-refresh``).

The run stops at the first failing step and exits non-zero, naming it. Two runs never overlap: on
PostgreSQL a session advisory lock is held for the whole run; on DuckDB a lock file beside the database; on
Spark a lock file beside its metastore.
``insiders score`` run by hand takes the same lock.

dbt runs in this process (:mod:`insiders.dbt_session`): imported once, the project parsed once per run, the
manifest reused by both dbt steps; SIGTERM and SIGINT make dbt cancel its queries, then the run unwinds. With
``INSIDERS_DBT`` set, dbt runs as a child instead, in a process group of its own: SIGTERM and SIGINT sent to the
run are forwarded to that group, and the run waits for the children to exit before it releases the lock and
exits. If the run itself is killed (SIGKILL), the children get SIGTERM from the kernel (Linux), and they inherit
the lock (the lock file's descriptor, or the PostgreSQL session's socket), so the lock is held until the last of
them has exited: the next run cannot overlap them.

This module holds the steps; :mod:`~insiders.pipeline.processes` the lock and the children,
:mod:`~insiders.pipeline.run_vars` ``--vars`` and back-fills, :mod:`~insiders.pipeline.run_state` the
"nothing new" check and source freshness.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from insiders import publish, settings
from insiders.dbt_session import SCHEDULED_EXCLUDE, DbtError, DbtSession
from insiders.errors import InsidersError, PipelineStepError, RunInProgressError
from insiders.pipeline.processes import RUN_LOCK_KEY, run_child, run_lock
from insiders.pipeline.run_state import (
    RUN_STATE_TABLE,
    TESTED_LOADS_ENV,
    already_tested_loads,
    check_freshness,
    check_nothing_new,
    declared_freshness,
    model_input,
    previous_run_inputs,
    record_run_inputs,
    run_inputs,
    value_input,
)
from insiders.pipeline.run_vars import RunVars, backfill_day, backfill_schema, backfill_target, parse_vars
from insiders.warehouse import (
    Target,
    connect,
    load_target,
    project_dir,
    raw_schema,
    validate_identifier,
)

__all__ = [
    "RUN_LOCK_KEY",
    "RUN_STATE_TABLE",
    "PipelineStepError",
    "RunInProgressError",
    "RunReport",
    "RunVars",
    "Step",
    "backfill_day",
    "backfill_schema",
    "check_nothing_new",
    "declared_freshness",
    "parse_vars",
    "raw_files",
    "run",
    "run_lock",
]

DBT_ENV = "INSIDERS_DBT"
RAW_SUFFIXES = (".csv", ".csv.gz", ".xlsx")
# Truth files written beside generated samples are not raw data.
IGNORED_SUFFIXES = (".truth.csv",)


def _is_raw(name: str) -> bool:
    lower = name.lower()
    return lower.endswith(RAW_SUFFIXES) and not lower.endswith(IGNORED_SUFFIXES)


@dataclass
class Step:
    """A finished step."""

    name: str
    seconds: float
    summary: str


@dataclass
class RunReport:
    """What a run did, step by step."""

    target: str
    steps: list[Step] = field(default_factory=list)
    #: set when the run stopped early because nothing changed since the last published run (what was compared)
    nothing_new: str | None = None

    def table(self) -> str:
        """The final summary, one line per step."""
        width = max(len(s.name) for s in self.steps) if self.steps else 5
        lines = [f"  {s.name:<{width}}  {s.seconds:7.1f} s  {s.summary}" for s in self.steps]
        total = sum(s.seconds for s in self.steps)
        return "\n".join([*lines, f"  {'total':<{width}}  {total:7.1f} s"])


# ------------------------------------------------------------------------------------------------------------------
# Steps
# ------------------------------------------------------------------------------------------------------------------
def raw_files(source: str, workdir: Path) -> list[Path]:
    """The raw files of a source, in name order; S3 objects are downloaded into ``workdir`` first."""
    if source.startswith("s3://"):
        from insiders.artifacts import open_store

        store = open_store(source)
        keys = [k for k in store.list() if _is_raw(k)]
        paths = []
        for key in sorted(keys):
            local = workdir / key.replace("/", "__")
            local.write_bytes(store.get(key))
            paths.append(local)
        return paths
    path = Path(source)
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and _is_raw(p.name))
    raise PipelineStepError(f"source {source} is neither a file, a folder nor an s3:// prefix")


def dbt_build(selector: str, session: DbtSession, full_refresh: bool = False) -> str:
    """``dbt build --selector`` on the session's target with its variables; raise when it fails; return what it
    did, in a few words.

    In this process through ``session`` (one parse per run, see :mod:`insiders.dbt_session`), unless
    ``INSIDERS_DBT`` names a dbt executable: then as a child in a process group of its own, streaming its output.
    """
    if not settings.is_set(DBT_ENV):
        try:
            return session.build(selector, full_refresh=full_refresh).describe()
        except DbtError as exc:
            raise PipelineStepError(str(exc)) from exc
    command = [
        settings.text(DBT_ENV),
        "build",
        *session.output_args(),
        "--selector",
        selector,
        *SCHEDULED_EXCLUDE,
        *session.common_args(),
    ]
    if full_refresh:
        command.append("--full-refresh")
    env = {**os.environ, **session.env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    try:
        status = run_child(command, project_dir(), env)
    except FileNotFoundError as exc:
        raise PipelineStepError(f"cannot run dbt ({command[0]}): {exc.strerror or exc}") from exc
    if status != 0:
        raise PipelineStepError(f"dbt build --selector {selector} failed (exit {status}); see dbt's output")
    return f"{command[0]} build --selector {selector} (a child process)"


def stop_when_nothing_new(
    report: RunReport,
    target: Target,
    run_vars: RunVars,
    force: bool,
    inputs: dict[str, str],
    log: Callable[[str], None],
    session: DbtSession | None = None,
    full_refresh: bool = False,
) -> bool:
    """The run's "check" step: fill ``inputs`` and say whether the run stops here (nothing new, no --force).

    When it goes on, ``session``'s dbt commands get the loads whose lines the last published run tested with the
    same code and variables (``INSIDERS_TESTED_LOADS``, see :func:`already_tested_loads`), and the log says which.
    """
    unchanged = [False]

    def check() -> str:
        inputs.update(run_inputs(target, run_vars))
        previous = previous_run_inputs(target)  # read once, for both questions below
        same, message = check_nothing_new(target, inputs, previous)
        if same and force:
            message = "nothing new, but --force: running anyway"
        unchanged[0] = same and not force
        if session is not None and not unchanged[0]:
            loads, why = already_tested_loads(target, inputs, full_refresh, previous)
            session.env[TESTED_LOADS_ENV] = ",".join(loads)
            log(f"    {why}")
        return message

    _step(report, "check", check, log)
    if unchanged[0]:
        report.nothing_new = report.steps[-1].summary
    return unchanged[0]


def record_published_inputs(target: Target, state: dict[str, str | None], inputs: dict[str, str]) -> None:
    """After a publish: record what it was computed from (the model as pinned now: a train step may have pinned it)."""
    run_id = state.get("run_id")
    if run_id and inputs:
        record_run_inputs(target, run_id, {**inputs, "model": model_input(), "value": value_input()})


def _step(report: RunReport, name: str, action: Callable[[], str], log: Callable[[str], None]) -> None:
    log(f"==> {name}")
    started = time.monotonic()
    try:
        summary = action()
    except InsidersError as exc:
        seconds = time.monotonic() - started
        report.steps.append(Step(name, seconds, "FAILED"))
        raise PipelineStepError(f"step '{name}' failed after {seconds:.1f} s: {exc}", exc.exit_code) from exc
    except BaseException:
        # A bug or a signal: recorded in the step table, and left for the CLI to report as what it is.
        report.steps.append(Step(name, time.monotonic() - started, "FAILED"))
        raise
    seconds = time.monotonic() - started
    report.steps.append(Step(name, seconds, summary))
    log(f"<== {name}: {summary} ({seconds:.1f} s)")


def run(
    target_name: str | None,
    source: str | None,
    train_if_unpinned: bool = False,
    dbt_vars: str | None = None,
    date_format: str | None = None,
    max_out_of_range_share: float | None = None,
    log: Callable[[str], None] = print,
    report: RunReport | None = None,
    force: bool = False,
    full_refresh: bool = False,
    verbose: bool = False,
) -> RunReport:
    """Run the whole pipeline; see the module docstring. ``verbose`` shows dbt's line per node.

    Each step imports what it needs when it runs: a run that stops at "nothing new" never loads scikit-learn,
    pandas or dbt.
    """
    target = load_target(target_name)
    # Every name and number that reaches SQL is checked before the lock is taken and anything runs.
    raw = raw_schema()
    validate_identifier(publish.bi_reader_role(), f"the BI reader role ({publish.BI_READER_ROLE_ENV})")
    report = report if report is not None else RunReport(target=target.describe())
    # The marts are built in a schema of their own, and not granted to the BI reader there: publish grants the
    # published copies (macros/cross_db/grant_bi_read_access.sql reads bi_grants).
    # Both dbt steps pass the same variables (the features ignore the marts' two), so the run parses once and
    # dbt's partial parsing stays valid from one run to the next.
    user_vars = RunVars.parse(dbt_vars)
    run_vars = user_vars.with_pipeline_vars({"marts_schema": publish.BUILD_SUFFIX, "bi_grants": False})
    log(f"insiders run on {target.describe()}")
    with run_lock(target), backfill_target(target, user_vars, log) as backfill:
        # The steps below read ``target`` when they run: a back-fill's steps all work in its own schema.
        target = backfill or target
        session = DbtSession(target, run_vars, log, verbose=verbose)
        run_kind = "live" if backfill is None else "backfill"

        def load() -> str:
            from insiders.loader import load_file

            if not source:
                return "no --source: nothing to load"
            loaded = skipped = lines = 0
            with tempfile.TemporaryDirectory(prefix="insiders-run-") as tmp:
                files = raw_files(source, Path(tmp))
                if not files:
                    return f"no raw files in {source}"
                with connect(target) as wh:
                    for path in files:
                        result = load_file(wh, path, schema=raw, date_format=date_format)
                        if result.already_loaded:
                            skipped += 1
                            log(f"    {path.name}: already loaded")
                        else:
                            loaded += 1
                            lines += result.lines_loaded
                            log(
                                f"    {path.name}: {result.lines_loaded:,} lines loaded, "
                                f"{result.lines_rejected:,} rejected, {result.lines_skipped:,} skipped (already "
                                "loaded from other files)"
                            )
            return f"{loaded} file(s) loaded ({lines:,} lines), {skipped} already loaded"

        def features() -> str:
            done = dbt_build("features", session, full_refresh)
            return f"customer_features built and tested: {done}"

        def train_step() -> str:
            from insiders.artifacts import open_store
            from insiders.registry import read_pin
            from insiders.training import train

            if read_pin(required=False) is not None:
                return "a model is pinned: not retraining"
            store = open_store(None)
            from insiders.model import ModelConfig

            with connect(target) as wh:
                outcome = train(wh, store, target.schema, ModelConfig(), promote=True, notice=log)
            return f"trained and pinned model {outcome.saved.version}"

        def score_step() -> str:
            from insiders.registry import load_pinned, pinned
            from insiders.scoring import DEFAULT_MAX_OUT_OF_RANGE_SHARE, score

            pin = pinned()
            loaded = load_pinned(pin=pin)
            with connect(target) as wh:
                result = score(
                    wh,
                    loaded,
                    target.schema,
                    run_kind=run_kind,
                    max_out_of_range_share=(
                        DEFAULT_MAX_OUT_OF_RANGE_SHARE if max_out_of_range_share is None else max_out_of_range_share
                    ),
                )
            state["run_id"] = result.run_id
            return (
                f"{result.customers:,} customers scored with model {result.model_version}, {result.insiders:,} Insiders"
            )

        def marts() -> str:
            done = dbt_build("segments", session, full_refresh)
            return f"marts built and tested in {target.schema}_{publish.BUILD_SUFFIX}: {done}"

        def publish_step() -> str:
            live = f"{target.schema}_{publish.LIVE_SUFFIX}"
            with connect(target) as wh:
                published = publish.publish_marts(
                    wh, f"{target.schema}_{publish.BUILD_SUFFIX}", live, log=log, full_refresh=full_refresh
                )
            record_published_inputs(target, state, inputs)
            how = "view by view (docs/scaling.md)" if target.type == "spark" else "in one transaction"
            return f"{len(published)} marts published to {live} {how}"

        _step(report, "load", load, log)
        _step(report, "freshness", lambda: check_freshness(target, log), log)
        inputs: dict[str, str] = {}
        state: dict[str, str | None] = {"run_id": None}
        if stop_when_nothing_new(report, target, user_vars, force or full_refresh, inputs, log, session, full_refresh):
            return report
        _step(report, "features", features, log)
        if train_if_unpinned:
            _step(report, "train", train_step, log)
        _step(report, "score", score_step, log)
        # Predicted customer value (docs/value.md): only when a value model is pinned.
        from insiders.value.apply import run_value_step, value_step_enabled

        if value_step_enabled():
            _step(report, "value", lambda: run_value_step(target, state["run_id"]), log)
        _step(report, "marts", marts, log)
        _step(report, "publish", publish_step, log)
    return report
