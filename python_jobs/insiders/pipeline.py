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
6. **publish**: all marts copied to ``<schema>_marts`` in one transaction (:mod:`insiders.publish`).

The run stops at the first failing step and exits non-zero, naming it. Two runs never overlap: on
PostgreSQL a session advisory lock is held for the whole run; on DuckDB a lock file beside the database.
``insiders score`` run by hand takes the same lock.

dbt runs in this process (:mod:`insiders.dbt_session`): imported once, the project parsed once per run, the
manifest reused by both dbt steps; SIGTERM and SIGINT make dbt cancel its queries, then the run unwinds. With
``INSIDERS_DBT`` set, dbt runs as a child instead, in a process group of its own: SIGTERM and SIGINT sent to the
run are forwarded to that group, and the run waits for the children to exit before it releases the lock and
exits. If the run itself is killed (SIGKILL), the children get SIGTERM from the kernel (Linux), and they inherit
the lock (the lock file's descriptor, or the PostgreSQL session's socket), so the lock is held until the last of
them has exited: the next run cannot overlap them.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from insiders import publish, settings
from insiders.dbt_session import SCHEDULED_EXCLUDE, DbtError, DbtSession
from insiders.errors import EXIT_RUN_IN_PROGRESS, ConfigError, InsidersError, Terminated
from insiders.warehouse import (
    Target,
    connect,
    load_target,
    project_dir,
    raw_schema,
    target_in_schema,
    validate_identifier,
    validate_number,
)

RUN_LOCK_KEY = 0x1A5D_E200
# How long a child may take to exit after a forwarded SIGTERM/SIGINT before its group gets SIGKILL.
CHILD_STOP_TIMEOUT_S = 60.0
DBT_ENV = "INSIDERS_DBT"
# Descriptors that hold the run lock (the lock file, the PostgreSQL session's socket): children inherit them.
_lock_fds: list[int] = []
RAW_SUFFIXES = (".csv", ".csv.gz", ".xlsx")
# Truth files written beside generated samples are not raw data.
IGNORED_SUFFIXES = (".truth.csv",)


def _is_raw(name: str) -> bool:
    lower = name.lower()
    return lower.endswith(RAW_SUFFIXES) and not lower.endswith(IGNORED_SUFFIXES)


class PipelineStepError(InsidersError):
    """A step of the pipeline failed; the exit status is the cause's (a user error, a service error, …)."""

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class RunInProgressError(InsidersError):
    """Another ``insiders run`` holds the lock."""

    exit_code = EXIT_RUN_IN_PROGRESS


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
# Locks
# ------------------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def run_lock(target: Target, what: str = "insiders run") -> Iterator[None]:
    """Hold the run lock of a warehouse for the duration of the block, or fail at once.

    ``what`` names the command that wants the lock, in the refusal. While the lock is held, children started
    with :func:`run_child` inherit the descriptor that holds it.
    """
    if target.type == "postgres":
        with connect(target) as wh:
            wh.conn.autocommit = True
            if not wh.query("select pg_try_advisory_lock(%s)", [RUN_LOCK_KEY])[0][0]:
                raise RunInProgressError(
                    f"another insiders run is in progress on {target.describe()} (or a hand-run insiders score; it "
                    f"holds the run's advisory lock); this {what} exits without doing anything"
                )
            _lock_fds.append(wh.conn.fileno())
            try:
                yield
            finally:
                _lock_fds.remove(wh.conn.fileno())
                with contextlib.suppress(Exception):
                    wh.query("select pg_advisory_unlock(%s)", [RUN_LOCK_KEY])
        return
    path = target.duckdb_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".run.lock")
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise RunInProgressError(
                f"another insiders run is in progress on {target.describe()} (or a hand-run insiders score; lock "
                f"file {lock_path}); this {what} exits without doing anything"
            ) from exc
        _lock_fds.append(handle.fileno())
        try:
            yield
        finally:
            _lock_fds.remove(handle.fileno())
            fcntl.flock(handle, fcntl.LOCK_UN)


# ------------------------------------------------------------------------------------------------------------------
# Children
# ------------------------------------------------------------------------------------------------------------------
_PR_SET_PDEATHSIG = 1


def _child_setup(parent: int) -> None:
    """In the child, before exec: a process group of its own, and SIGTERM when the parent dies (Linux)."""
    os.setpgid(0, 0)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _stop_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _wait_until_stopped(proc: subprocess.Popen, since: list[float]) -> int:
    """Wait for the child; once asked to stop (``since`` holds the time), SIGKILL its group after the timeout."""
    while True:
        try:
            return proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            if since and time.monotonic() - since[0] > CHILD_STOP_TIMEOUT_S:
                _stop_group(proc, signal.SIGKILL)


def run_child(command: list[str], cwd: Path, env: dict[str, str]) -> int:
    """Run a child to completion in its own process group, forwarding SIGTERM and SIGINT; return its status.

    Returns only once the child has exited. When a signal was forwarded, the child's exit is awaited and then the
    signal is raised here as :class:`Terminated` (SIGTERM) or ``KeyboardInterrupt`` (SIGINT), so the caller
    unwinds (releasing the run lock) only after the child is gone.
    """
    received: list[int] = []
    since: list[float] = []
    proc: subprocess.Popen | None = None

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        if not since:
            since.append(time.monotonic())
        if proc is not None:
            _stop_group(proc, signum)

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {}
    if in_main_thread:
        previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        parent = os.getpid()
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            preexec_fn=lambda: _child_setup(parent),  # setpgid and prctl must run in the child, before exec
            pass_fds=tuple(_lock_fds),
        )
        if received:  # a signal arrived while the child was being started
            _stop_group(proc, received[0])
        status = _wait_until_stopped(proc, since)
    except BaseException:
        if proc is not None and proc.returncode is None:
            _stop_group(proc, signal.SIGTERM)
            _wait_until_stopped(proc, [time.monotonic()])
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        if received[0] == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated
    return status


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
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    try:
        status = run_child(command, project_dir(), env)
    except FileNotFoundError as exc:
        raise PipelineStepError(f"cannot run dbt ({command[0]}): {exc.strerror or exc}") from exc
    if status != 0:
        raise PipelineStepError(f"dbt build --selector {selector} failed (exit {status}); see dbt's output")
    return f"{command[0]} build --selector {selector} (a child process)"


def _merge_vars(user_vars: str | None, extra: dict[str, object]) -> str:
    """The user's ``--vars`` (YAML) with the pipeline's own variables added, as a YAML mapping."""
    import yaml

    merged = parse_vars(user_vars)
    return yaml.safe_dump({**merged, **extra}, default_flow_style=True).strip()


def parse_vars(user_vars: str | None) -> dict:
    """Parse and check ``--vars`` before any step: the variables that reach SQL must be what they claim to be.

    ``min_unit_price`` a finite number ≥ 0; ``raw_schema`` and ``bi_reader_role`` plain identifiers;
    ``as_of_date`` a date (YYYY-MM-DD) or null. Other variables pass through to dbt unchanged.
    """
    import datetime as dt

    import yaml

    try:
        merged = yaml.safe_load(user_vars) if user_vars else {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"--vars is not valid YAML: {_first_line(exc)}") from exc
    if merged is None:
        merged = {}
    if not isinstance(merged, dict):
        raise ConfigError(f"--vars must be a YAML mapping such as '{{as_of_date: 2011-06-30}}', got {user_vars!r}")
    if "min_unit_price" in merged:
        validate_number(merged["min_unit_price"], "--vars min_unit_price", minimum=0)
    for name in ("raw_schema", "bi_reader_role", "marts_schema"):
        if name in merged:
            validate_identifier(merged[name], f"--vars {name}")
    if merged.get("as_of_date") is not None:
        value = merged["as_of_date"]
        if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
            try:
                dt.date.fromisoformat(str(value))
            except ValueError as exc:
                raise ConfigError(f"--vars as_of_date must be a day as YYYY-MM-DD, got {value!r}") from exc
    return merged


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


# ------------------------------------------------------------------------------------------------------------------
# Run state: what a published run was computed from, so that a run with nothing new does nothing
# ------------------------------------------------------------------------------------------------------------------
RUN_STATE_TABLE = "insiders_run_state"
# What the published answer depends on besides the data and the model: the dbt project and the package's code.
_CODE_FOLDERS = ("models", "macros", "seeds")
_CODE_FILES = ("dbt_project.yml", "selectors.yml")


def _code_digest() -> str:
    """sha256 over the dbt project's models, macros, seeds and configuration, and the package's Python code."""
    import hashlib

    root = project_dir()
    package = Path(__file__).resolve().parent
    paths = [root / name for name in _CODE_FILES]
    for folder in _CODE_FOLDERS:
        paths.extend(sorted(p for p in (root / folder).rglob("*") if p.is_file()))
    paths.extend(sorted(package.glob("*.py")))
    digest = hashlib.sha256()
    for path in paths:
        if path.is_file():
            name = str(path.relative_to(package.parent) if path.is_relative_to(package) else path.relative_to(root))
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _canonical_vars(user_vars: str | None) -> str:
    """The user's ``--vars`` as sorted YAML (``{}`` when none), so equal mappings compare equal."""
    import yaml

    parsed = yaml.safe_load(user_vars) if user_vars else {}
    if not isinstance(parsed, dict):
        raise PipelineStepError(f"--vars must be a YAML mapping, got {user_vars!r}")
    return yaml.safe_dump({str(k): parsed[k] for k in sorted(parsed, key=str)}, default_flow_style=True).strip()


def run_inputs(target: Target, user_vars: str | None) -> dict[str, str]:
    """What a run's published answer is computed from, as short comparable strings.

    ``loads``: how many files the load log holds, a digest of their sha256s (a file loaded or removed changes it)
    and the newest load; ``vars``: the ``--vars`` (the as-of day among them); ``model``: the pinned version and
    its sha256; ``code``: a digest of the dbt project and the package; ``schema``: where it is published;
    ``reader``: the BI reader role publish grants to (another role needs a new publish, and its check).
    """
    import hashlib

    raw = settings.text("INSIDERS_RAW_SCHEMA")
    loads = f"none in {raw}"
    with connect(target) as wh:
        if wh.relation_exists(raw, "load_log"):
            rows = wh.query(f"select file_sha256, load_id, loaded_at from {raw}.load_log order by loaded_at, load_id")
            if rows:
                digest = hashlib.sha256("\n".join(sorted(str(r[0]) for r in rows)).encode()).hexdigest()
                _, newest_id, newest_at = rows[-1]
                loads = (
                    f"{len(rows)} file(s) in {raw}, digest {digest[:16]}, newest load {newest_id} at "
                    f"{newest_at:%Y-%m-%d %H:%M:%S}"
                )
    return {
        "loads": loads,
        "vars": _canonical_vars(user_vars),
        "model": model_input(),
        "value": value_input(),
        "code": _code_digest()[:16],
        "schema": target.schema,
        "reader": publish.bi_reader_role(),
    }


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
        wh.execute(
            f"create table if not exists {target.schema}.{RUN_STATE_TABLE} ("
            "run_id varchar(36) not null, published_at timestamp not null, inputs varchar not null)"
        )
        wh.execute(
            f"insert into {target.schema}.{RUN_STATE_TABLE} (run_id, published_at, inputs) values (%s, %s, %s)",
            [run_id, _utc_now(), json.dumps(inputs, sort_keys=True)],
        )


def _utc_now():
    import datetime as dt

    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def check_nothing_new(target: Target, inputs: dict[str, str]) -> tuple[bool, str]:
    """Whether the last published run of this schema had exactly these inputs, and what was compared."""
    previous = previous_run_inputs(target)
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


# ------------------------------------------------------------------------------------------------------------------
# Back-fills: a run with an as_of_date works in a schema of its own, never in the live one
# ------------------------------------------------------------------------------------------------------------------
BACKFILL_INFIX = "backfill"
# The profile variable that sets the schema dbt builds in, per target type (see profiles.yml).


def backfill_day(user_vars: str | None):
    """The ``as_of_date`` of ``--vars`` as a date, or ``None`` for a live run (no as-of day, or a null one)."""
    import datetime as dt

    import yaml

    parsed = yaml.safe_load(user_vars) if user_vars else {}
    if not isinstance(parsed, dict):
        raise PipelineStepError(f"--vars must be a YAML mapping, got {user_vars!r}")
    value = parsed.get("as_of_date")
    if value is None or str(value).strip().lower() in ("", "none", "null"):
        return None
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError as exc:
        raise PipelineStepError(f"--vars as_of_date must be a day as YYYY-MM-DD, got {value!r}") from exc


def backfill_schema(live_schema: str, day) -> str:
    """Where a back-fill as of ``day`` builds, scores and publishes: ``<schema>_backfill_<YYYYMMDD>`` (+ ``_marts``)."""
    return f"{live_schema}_{BACKFILL_INFIX}_{day:%Y%m%d}"


@contextlib.contextmanager
def backfill_target(target: Target, user_vars: str | None, log: Callable[[str], None]) -> Iterator[Target | None]:
    """For a back-fill, point the profile (this process and the dbt children) at the back-fill schema.

    Yields the redirected target, or ``None`` for a live run; the environment is restored on exit.
    """
    day = backfill_day(user_vars)
    if day is None:
        yield None
        return
    schema = backfill_schema(target.schema, day)
    with target_in_schema(target, schema) as redirected:
        log(
            f"back-fill as of {day:%Y-%m-%d}: building, scoring and publishing in {schema} and "
            f"{schema}_{publish.LIVE_SUFFIX}; the live {target.schema}_{publish.LIVE_SUFFIX} and its history are "
            "not touched"
        )
        yield redirected


def stop_when_nothing_new(
    report: RunReport,
    target: Target,
    user_vars: str | None,
    force: bool,
    inputs: dict[str, str],
    log: Callable[[str], None],
) -> bool:
    """The run's "check" step: fill ``inputs`` and say whether the run stops here (nothing new, no --force)."""
    unchanged = [False]

    def check() -> str:
        inputs.update(run_inputs(target, user_vars))
        same, message = check_nothing_new(target, inputs)
        if same and force:
            return "nothing new, but --force: running anyway"
        unchanged[0] = same
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
    run_vars = _merge_vars(dbt_vars, {"marts_schema": publish.BUILD_SUFFIX, "bi_grants": False})
    log(f"insiders run on {target.describe()}")
    with run_lock(target), backfill_target(target, dbt_vars, log) as backfill:
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
                outcome = train(wh, store, target.schema, ModelConfig(), promote=True)
            return f"trained and pinned model {outcome.saved.version}"

        def score_step() -> str:
            from insiders.registry import load_pinned, read_pin
            from insiders.scoring import DEFAULT_MAX_OUT_OF_RANGE_SHARE, score

            pin = read_pin()
            assert pin is not None
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
                tables = publish.publish_marts(wh, f"{target.schema}_{publish.BUILD_SUFFIX}", live, log=log)
            record_published_inputs(target, state, inputs)
            return f"{len(tables)} marts published to {live} in one transaction"

        _step(report, "load", load, log)
        _step(report, "freshness", lambda: check_freshness(target, log), log)
        inputs: dict[str, str] = {}
        state: dict[str, str | None] = {"run_id": None}
        if stop_when_nothing_new(report, target, dbt_vars, force or full_refresh, inputs, log):
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
