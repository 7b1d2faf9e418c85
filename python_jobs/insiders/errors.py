"""Errors that the command line turns into a clear message and a non-zero exit, and the exit statuses.

Every failure of the ``insiders`` command ends with one line starting with ``error:`` on stderr and one of
these statuses (docs/operations.md lists them for operators and schedulers):

====  ===========================================================================================
0     success
1     ``insiders evaluate`` only: its verdict is that the model falls short (a result, not an error)
2     the command line itself is wrong (argparse's usage errors; nothing was attempted)
3     another ``insiders run`` holds the run lock (nothing was done; try again later)
4     a user error: bad input, configuration, pin or artifact (fix what the message names)
5     a service could not be reached or refused the work: warehouse, artifact store
70    internal error: an unexpected exception (a bug; rerun with ``-v`` for the traceback)
130   interrupted (Ctrl-C, SIGINT); 143: terminated (SIGTERM)
====  ===========================================================================================
"""

EXIT_OK = 0
EXIT_USAGE = 2  # argparse's own status for usage errors
EXIT_RUN_IN_PROGRESS = 3
EXIT_USER_ERROR = 4
EXIT_SERVICE_ERROR = 5
EXIT_INTERNAL_ERROR = 70  # EX_SOFTWARE in sysexits.h
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM


class InsidersError(Exception):
    """A problem the user can fix (bad input, bad configuration, unreachable service).

    The CLI prints the message without a traceback and exits with ``exit_code``.
    """

    exit_code = EXIT_USER_ERROR


class InputFileError(InsidersError):
    """The input file cannot be read as one of the supported layouts."""


class GenerateArgumentError(InputFileError, ValueError):
    """A bad argument to ``insiders.sample.generate_sample`` (also a ``ValueError``)."""


class ConfigError(InsidersError):
    """profiles.yml, a target or an environment variable is wrong."""


class WarehouseError(InsidersError):
    """The warehouse cannot be reached or refused an operation."""

    exit_code = EXIT_SERVICE_ERROR


class ServiceUnavailableError(InsidersError):
    """A service (the artifact store) cannot be reached: nothing says the thing asked for is missing."""

    exit_code = EXIT_SERVICE_ERROR


class PipelineStepError(InsidersError):
    """A step of ``insiders run`` failed; the exit status is the cause's (a user error, a service error, …)."""

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class RunInProgressError(InsidersError):
    """Another ``insiders run`` holds the lock."""

    exit_code = EXIT_RUN_IN_PROGRESS


class Terminated(BaseException):
    """The process received SIGTERM (a scheduler's timeout, a shutdown).

    A ``BaseException`` like ``KeyboardInterrupt``: it must unwind through ``except Exception`` blocks, rolling
    back open transactions, up to the CLI, which reports it and exits with :data:`EXIT_TERMINATED`.
    """
