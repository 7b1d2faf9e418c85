"""insiders: customer segmentation for a loyalty programme, on a data warehouse with dbt."""

from importlib.metadata import PackageNotFoundError, version

try:  # the version is written once, in pyproject.toml
    __version__ = version("insiders")
except PackageNotFoundError:  # pragma: no cover - running from a checkout that was never installed
    __version__ = "0+unknown"
