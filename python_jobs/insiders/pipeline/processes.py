"""The run's lock and its child processes: two runs never overlap, and a child never outlives the lock.

On PostgreSQL a session advisory lock is held for the whole run; on DuckDB a lock file beside the database; on
Spark a lock file beside the metastore (local mode) or in the local warehouse folder.
Children (dbt with ``INSIDERS_DBT``) run in a process group of their own, get the run's signals forwarded, and
inherit the descriptors that hold the lock, so the lock is held until the last of them has exited.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from insiders.errors import RunInProgressError, Terminated
from insiders.warehouse import (
    Target,
    connect,
)

RUN_LOCK_KEY = 0x1A5D_E200
# How long a child may take to exit after a forwarded SIGTERM/SIGINT before its group gets SIGKILL.
CHILD_STOP_TIMEOUT_S = 60.0
# Descriptors that hold the run lock (the lock file, the PostgreSQL session's socket): children inherit them.
_lock_fds: list[int] = []


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
    if target.type == "spark":
        from insiders.spark_tables import lock_dir

        lock_path = lock_dir(target) / "insiders.run.lock"
    else:
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
