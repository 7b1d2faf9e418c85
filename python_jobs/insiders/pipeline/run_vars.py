"""``insiders run --vars``, parsed and checked once, and the back-fill it may ask for.

The variables that reach SQL are checked before anything runs: ``min_unit_price`` a finite number ≥ 0;
``raw_schema``, ``bi_reader_role`` and ``marts_schema`` plain identifiers; ``as_of_date`` a day (YYYY-MM-DD) or
null. Other variables pass through to dbt unchanged. A run with an ``as_of_date`` is a back-fill: it builds,
scores and publishes in ``<schema>_backfill_<YYYYMMDD>``, never in the live schema.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from insiders import publish
from insiders.errors import ConfigError
from insiders.warehouse import Target, target_in_schema, validate_identifier, validate_number

BACKFILL_INFIX = "backfill"
_IDENTIFIER_VARS = ("raw_schema", "bi_reader_role", "marts_schema")


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def _as_of_day(value: Any) -> dt.date | None:
    if value is None or str(value).strip().lower() in ("", "none", "null"):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError as exc:
        raise ConfigError(f"--vars as_of_date must be a day as YYYY-MM-DD, got {value!r}") from exc


@dataclass(frozen=True)
class RunVars:
    """The user's ``--vars`` as a checked mapping; :meth:`parse` is the only way in."""

    values: Mapping[str, Any] = field(default_factory=dict)
    #: the back-fill day, or ``None`` for a live run
    as_of_day: dt.date | None = None

    @classmethod
    def parse(cls, text: str | None) -> RunVars:
        """Parse ``--vars`` (YAML); raise :class:`ConfigError` naming the variable that is wrong."""
        import yaml

        try:
            parsed = yaml.safe_load(text) if text else {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"--vars is not valid YAML: {_first_line(exc)}") from exc
        if parsed is None:
            parsed = {}
        if not isinstance(parsed, dict):
            raise ConfigError(f"--vars must be a YAML mapping such as '{{as_of_date: 2011-06-30}}', got {text!r}")
        values = {str(k): v for k, v in parsed.items()}
        if "min_unit_price" in values:
            validate_number(values["min_unit_price"], "--vars min_unit_price", minimum=0)
        for name in _IDENTIFIER_VARS:
            if name in values:
                validate_identifier(values[name], f"--vars {name}")
        return cls(values, _as_of_day(values.get("as_of_date")))

    def canonical(self) -> str:
        """Sorted YAML (``{}`` when none), so that equal mappings compare equal between runs."""
        import yaml

        return yaml.safe_dump({k: self.values[k] for k in sorted(self.values)}, default_flow_style=True).strip()

    def with_pipeline_vars(self, extra: Mapping[str, object]) -> str:
        """The user's variables with the pipeline's own added, as the YAML mapping dbt's ``--vars`` takes."""
        import yaml

        return yaml.safe_dump({**self.values, **extra}, default_flow_style=True).strip()


def parse_vars(text: str | None) -> dict[str, Any]:
    """The checked ``--vars`` mapping (see :class:`RunVars`)."""
    return dict(RunVars.parse(text).values)


def backfill_day(text: str | None) -> dt.date | None:
    """The ``as_of_date`` of ``--vars`` as a day, or ``None`` for a live run (no as-of day, or a null one)."""
    return RunVars.parse(text).as_of_day


def backfill_schema(live_schema: str, day: dt.date) -> str:
    """Where a back-fill as of ``day`` builds, scores and publishes: ``<schema>_backfill_<YYYYMMDD>`` (+ ``_marts``)."""
    return f"{live_schema}_{BACKFILL_INFIX}_{day:%Y%m%d}"


@contextlib.contextmanager
def backfill_target(target: Target, run_vars: RunVars, log: Callable[[str], None]) -> Iterator[Target | None]:
    """For a back-fill, point the profile (this process and the dbt children) at the back-fill schema.

    Yields the redirected target, or ``None`` for a live run; the environment is restored on exit.
    """
    day = run_vars.as_of_day
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
