"""Errors that the command line turns into a clear message and a non-zero exit."""


class InsidersError(Exception):
    """A problem the user can fix (bad input, bad configuration, unreachable service).

    The CLI prints the message without a traceback and exits with ``exit_code``.
    """

    exit_code = 2


class InputFileError(InsidersError):
    """The input file cannot be read as one of the supported layouts."""


class ConfigError(InsidersError):
    """profiles.yml, a target or an environment variable is wrong."""


class WarehouseError(InsidersError):
    """The warehouse cannot be reached or refused an operation."""
