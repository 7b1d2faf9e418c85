"""``insiders run``: the one command a schedule runs.

Steps, in order, each timed and named:

1. **load**: raw files of ``--source`` (a file, a folder, or an ``s3://bucket/prefix``) that are not loaded
   yet (already loaded content is skipped by its sha256);
2. **features**: ``dbt build --selector features`` (staging, cleaning, customer_features, quality, tests);
3. **train** (only with ``--train-if-unpinned`` and no pinned model): ``insiders train --promote``;
4. **score**: apply the pinned model and publish ``customer_segments``;
5. **marts**: ``dbt build --selector segments`` into ``<schema>_marts_build`` (the marts and their tests);
6. **publish**: all marts copied to ``<schema>_marts`` in one transaction (:mod:`insiders.publish`).

The run stops at the first failing step and exits non-zero, naming it. Two runs never overlap: on
PostgreSQL a session advisory lock is held for the whole run; on DuckDB a lock file beside the database.
``insiders score`` run by hand takes the same lock.

Children (dbt) run in a process group of their own. SIGTERM and SIGINT sent to the run are forwarded to that
group, and the run waits for the children to exit before it releases the lock and exits. If the run itself is
killed (SIGKILL), the children get SIGTERM from the kernel (Linux), and they inherit the lock (the lock file's
descriptor, or the PostgreSQL session's socket), so the lock is held until the last of them has exited: the next
run cannot overlap them.
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

from insiders import publish
from insiders.errors import EXIT_RUN_IN_PROGRESS, ConfigError, InsidersError, Terminated
from insiders.warehouse import (
    Target,
    connect,
    load_target,
    project_dir,
    raw_schema,
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


def dbt_build(selector: str, target: Target, extra: list[str] | None = None) -> None:
    """Run ``dbt build --selector`` in the project, streaming its output; raise when it fails."""
    dbt = Path(sys.executable).with_name("dbt")
    command = [
        os.environ.get(DBT_ENV) or str(dbt if dbt.exists() else "dbt"),
        "build",
        "--selector",
        selector,
        "--target",
        target.name,
        "--project-dir",
        str(project_dir()),
        "--profiles-dir",
        str(Path(os.environ.get("DBT_PROFILES_DIR", project_dir()))),
        *(extra or []),
    ]
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    try:
        status = run_child(command, project_dir(), env)
    except FileNotFoundError as exc:
        raise PipelineStepError(f"cannot run dbt ({command[0]}): {exc.strerror or exc}") from exc
    if status != 0:
        raise PipelineStepError(f"dbt build --selector {selector} failed (exit {status}); see dbt's output")


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
    log: Callable[[str], None] = print,
    report: RunReport | None = None,
) -> RunReport:
    """Run the whole pipeline; see the module docstring."""
    from insiders.artifacts import open_store
    from insiders.loader import load_file
    from insiders.registry import load_pinned, read_pin
    from insiders.scoring import score
    from insiders.training import train

    target = load_target(target_name)
    # Every name and number that reaches SQL is checked before the lock is taken and anything runs.
    raw = raw_schema()
    validate_identifier(publish.bi_reader_role(), f"the BI reader role ({publish.BI_READER_ROLE_ENV})")
    report = report if report is not None else RunReport(target=target.describe())
    extra = ["--vars", dbt_vars] if dbt_vars else []
    # The marts are built in a schema of their own, and not granted to the BI reader there: publish grants the
    # published copies (macros/cross_db/grant_bi_read_access.sql reads bi_grants).
    marts_vars = _merge_vars(dbt_vars, {"marts_schema": publish.BUILD_SUFFIX, "bi_grants": False})
    log(f"insiders run on {target.describe()}")
    with run_lock(target):

        def load() -> str:
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
            dbt_build("features", target, extra)
            return "customer_features built and tested"

        def train_step() -> str:
            if read_pin(required=False) is not None:
                return "a model is pinned: not retraining"
            store = open_store(None)
            from insiders.model import ModelConfig

            with connect(target) as wh:
                outcome = train(wh, store, target.schema, ModelConfig(), promote=True)
            return f"trained and pinned model {outcome.saved.version}"

        def score_step() -> str:
            pin = read_pin()
            assert pin is not None
            loaded = load_pinned(pin=pin)
            with connect(target) as wh:
                result = score(wh, loaded, target.schema)
            return (
                f"{result.customers:,} customers scored with model {result.model_version}, {result.insiders:,} Insiders"
            )

        def marts() -> str:
            dbt_build("segments", target, ["--vars", marts_vars])
            return f"marts built and tested in {target.schema}_{publish.BUILD_SUFFIX}"

        def publish_step() -> str:
            live = f"{target.schema}_{publish.LIVE_SUFFIX}"
            with connect(target) as wh:
                tables = publish.publish_marts(wh, f"{target.schema}_{publish.BUILD_SUFFIX}", live, log=log)
            return f"{len(tables)} marts published to {live} in one transaction"

        _step(report, "load", load, log)
        _step(report, "features", features, log)
        if train_if_unpinned:
            _step(report, "train", train_step, log)
        _step(report, "score", score_step, log)
        _step(report, "marts", marts, log)
        _step(report, "publish", publish_step, log)
    return report
