"""dbt in this process, parsed once per run.

``insiders run`` builds twice with dbt (the features before scoring, the marts after). Started as two ``dbt``
commands, each paid a Python start, dbt's imports and a parse of the project (3–4 s warm, 6–10 s cold), and the
second parse was never partial because the two steps passed different ``--vars``. :class:`DbtSession` imports
dbt once, parses the project once with the run's variables (the same for every step) and hands the parsed
manifest to every build of the run (dbt's ``dbtRunner(manifest=…)``). It also saves dbt's partial-parse state, so
the next run with the same variables, target and profile parses only what changed.

Scheduled builds leave out dbt's unit tests (``--exclude-resource-type unit_test``): they check the SQL logic on
fixed rows, so their verdict is the same on every run; ``make test`` and CI run them (dbt's advice too). Data
tests, contracts and freshness all run.

Output: a build prints only what failed (dbt's ``--quiet``: the failing nodes and their messages), and the
run prints one line per step with what dbt did; ``verbose`` (``insiders run --verbose``) shows dbt's line per
node. dbt's own log file (``logs/dbt.log``) has everything either way.

Signals: SIGINT reaches dbt as ``KeyboardInterrupt``, and SIGTERM is turned into one while dbt runs, so dbt
cancels its open queries before the run unwinds (rolling back, releasing the run lock) and exits 130 or 143.

``INSIDERS_DBT`` names a dbt executable to run as a child instead (a dbt installed in another environment):
each step is then a separate ``dbt build`` (see :func:`insiders.pipeline.dbt_build`).

:attr:`DbtSession.env` holds variables of the environment that only the run's dbt commands see, set while each
one runs: ``INSIDERS_TESTED_LOADS`` (macros/tested_loads.sql). They are read by tests as they run, not while
parsing, so a new value keeps dbt's partial parsing valid, which ``--vars`` would not.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from insiders.errors import InsidersError, Terminated
from insiders.warehouse import Target, profiles_dir, project_dir

if TYPE_CHECKING:  # dbt is imported when a command runs: a run with nothing new never loads it
    from dbt.cli.main import dbtRunnerResult

#: Left out of scheduled builds: fixed-input tests of the SQL logic (make test and CI run them).
SCHEDULED_EXCLUDE = ("--exclude-resource-type", "unit_test")


class DbtError(InsidersError):
    """dbt failed: the project did not parse, or a node of a build failed."""


@dataclass(frozen=True)
class BuildSummary:
    """What one build did: nodes by kind, dbt's own elapsed time, and the slowest nodes."""

    selector: str
    counts: dict[str, int]
    seconds: float
    slowest: list[tuple[str, float]]

    def describe(self) -> str:
        kinds = ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in sorted(self.counts.items()))
        slow = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.slowest)
        return f"{kinds} in {self.seconds:.1f} s (dbt's timing; slowest: {slow})" if slow else kinds


@contextlib.contextmanager
def _interruptible() -> Iterator[list[int]]:
    """While dbt runs in the main thread, SIGTERM raises ``KeyboardInterrupt`` (dbt cancels its queries on it).

    Yields the list of signals received, so the caller can tell SIGTERM from Ctrl-C afterwards.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def interrupt(signum: int, frame: object) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in ``os.environ`` for the block (dbt reads its environment when a command starts), then as
    before."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _release_duckdb() -> None:
    """Close dbt-duckdb's database handle, which it keeps open after a command, so that the file is free again.

    dbt-duckdb caches one DuckDB instance per process; this process's own connections would share it, but a
    later step's other processes (and ``insiders`` commands run meanwhile) need the file lock released.
    """
    with contextlib.suppress(ImportError):
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager

        with DuckDBConnectionManager._LOCK:
            env = DuckDBConnectionManager._ENV
            DuckDBConnectionManager._ENV = None
            if env is not None:
                with contextlib.suppress(Exception):
                    env.close()


def _failures(result: object) -> list[str]:
    """The nodes of a build that failed, as ``name (status: message)``."""
    lines = []
    for node_result in getattr(result, "results", None) or []:
        status = str(getattr(node_result.status, "value", node_result.status))
        if status in {"error", "fail", "runtime error"}:
            message = (node_result.message or "").strip().splitlines()
            lines.append(f"{node_result.node.name} ({status}{': ' + message[0] if message else ''})")
    return lines


def _summary(selector: str, result: object) -> BuildSummary:
    results = getattr(result, "results", None) or []
    counts = Counter(str(r.node.resource_type).split(".")[-1].lower() for r in results)
    timed = sorted(((r.node.name, float(r.execution_time or 0)) for r in results), key=lambda t: -t[1])
    return BuildSummary(selector, dict(counts), float(getattr(result, "elapsed_time", 0) or 0), timed[:3])


class DbtSession:
    """dbt in this process for one run: one parse, then any number of builds with the same variables."""

    def __init__(
        self, target: Target, dbt_vars: str | None, log: Callable[[str], None] = print, verbose: bool = False
    ) -> None:
        self.target = target
        self.dbt_vars = dbt_vars
        self.log = log
        self.verbose = verbose
        self.env: dict[str, str] = {}  # set in the environment while each dbt command of the session runs
        self._manifest: Any = None  # dbt's Manifest once parsed

    def output_args(self) -> list[str]:
        """``--quiet`` unless verbose: dbt then prints only failures (its log file keeps every line)."""
        return [] if self.verbose else ["--quiet"]

    def common_args(self) -> list[str]:
        """The project, profiles, target and variables every command of this session passes to dbt."""
        args = [
            "--project-dir",
            str(project_dir()),
            "--profiles-dir",
            str(profiles_dir()),
            "--target",
            self.target.name,
        ]
        return [*args, "--vars", self.dbt_vars] if self.dbt_vars else args

    def _invoke(self, args: list[str], what: str) -> dbtRunnerResult:
        try:
            from dbt.cli.main import dbtRunner
        except ImportError as exc:  # pragma: no cover - dbt-core is a dependency
            raise DbtError(f"cannot import dbt ({exc}); install the project with pip install -e .") from exc
        runner = dbtRunner(manifest=self._manifest) if self._manifest is not None else dbtRunner()
        try:
            with _interruptible() as received, _environment(self.env):
                try:
                    outcome = runner.invoke(args)
                except KeyboardInterrupt:
                    outcome = None
                if received or (outcome is not None and isinstance(outcome.exception, KeyboardInterrupt)):
                    if received and received[0] == signal.SIGTERM:
                        raise Terminated
                    raise KeyboardInterrupt
        finally:
            _release_duckdb()
        if outcome is None:  # only after an interrupt, which raised above
            raise DbtError(f"{what} was interrupted")
        if outcome.success:
            return outcome
        if outcome.exception is not None:
            detail = str(outcome.exception).strip().splitlines()
            raise DbtError(f"{what} failed: {detail[0] if detail else type(outcome.exception).__name__}")
        failed = _failures(outcome.result)
        shown = "; ".join(failed[:5]) + (f"; and {len(failed) - 5} more" if len(failed) > 5 else "")
        raise DbtError(
            f"{what} failed: {shown or 'see dbt output above'}" + (f" ({len(failed)} node(s))" if failed else "")
        )

    def parse(self) -> None:
        """Parse the project (partially, when dbt's saved state allows) and keep the manifest for the builds."""
        from dbt.contracts.graph.manifest import Manifest

        started = time.perf_counter()
        outcome = self._invoke(["parse", "--quiet", "--no-write-json", *self.common_args()], "dbt parse")
        manifest = outcome.result
        if not isinstance(manifest, Manifest):
            raise DbtError(f"dbt parse returned no manifest but {type(manifest).__name__}")
        self._manifest = manifest
        self.log(f"    dbt parsed the project in {time.perf_counter() - started:.1f} s (once for this run)")

    def build(self, selector: str, full_refresh: bool = False) -> BuildSummary:
        """``dbt build --selector`` with the parsed manifest, unit tests left out; raise naming what failed."""
        if self._manifest is None:
            self.parse()
        args = ["build", *self.output_args(), "--selector", selector, *SCHEDULED_EXCLUDE, *self.common_args()]
        if full_refresh:
            args.append("--full-refresh")
        outcome = self._invoke(args, f"dbt build --selector {selector}")
        return _summary(selector, outcome.result)

    def run(self, args: list[str]) -> None:
        """Any dbt command (``["run", "--select", …]``) on this session's target with its variables; raise naming
        what failed. Parses the project for itself unless :meth:`parse` has run."""
        self._invoke([*args[:1], *self.output_args(), *args[1:], *self.common_args()], f"dbt {' '.join(args)}")
