"""The raw file layouts ``insiders load`` understands, and how to recognise them from the header.

Every layout maps to the same eight canonical fields. A layout is recognised by its header alone; the date
format is then chosen from the layout's candidates by the first data lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CANONICAL_FIELDS: tuple[str, ...] = (
    "invoice_no",
    "stock_code",
    "description",
    "quantity",
    "invoice_date",
    "unit_price",
    "customer_id",
    "country",
)


@dataclass(frozen=True)
class Layout:
    """A known header: its name, the header fields in order, and the date formats it may carry."""

    name: str
    title: str
    header: tuple[str, ...]
    date_formats: tuple[str, ...]
    # Empty trailing columns allowed after the known ones (the re-dated copy has one).
    trailing_empty: bool = False

    def expected(self) -> str:
        """The header as a user would type it."""
        return ",".join(self.header)


# Formats are strptime patterns. pandas parses M/D/YYYY without zero padding with %m/%d/%Y.
# A day-first variant is a candidate too: a UK-locale export writes 01/12/2010 for 1 December. When both read
# every date of a file, the loader refuses it and asks for --date-format.
_ONLINE_RETAIL_DATES = (
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%d/%m/%Y %H:%M",
)
_REDATED_DATES = ("%d-%b-%y", "%d-%b-%Y", "%d-%b-%y %H:%M")
_ONLINE_RETAIL_II_DATES = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%m/%d/%Y %H:%M", "%d/%m/%Y %H:%M")

ONLINE_RETAIL = Layout(
    name="online_retail",
    title="UCI/Kaggle Online Retail",
    header=("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"),
    date_formats=_ONLINE_RETAIL_DATES,
)
ONLINE_RETAIL_REDATED = Layout(
    name="online_retail_redated",
    title="Online Retail, re-dated copy (dates like 29-Nov-16, extra empty column)",
    header=ONLINE_RETAIL.header,
    date_formats=_REDATED_DATES,
    trailing_empty=True,
)
ONLINE_RETAIL_II = Layout(
    name="online_retail_ii",
    title="UCI Online Retail II",
    header=("Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price", "Customer ID", "Country"),
    date_formats=_ONLINE_RETAIL_II_DATES,
)

LAYOUTS: tuple[Layout, ...] = (ONLINE_RETAIL, ONLINE_RETAIL_II)


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name.strip().lstrip("\ufeff")).lower()


def match_header(fields: list[str]) -> tuple[Layout, int] | None:
    """Return the layout whose header this is, and the number of fields a data line must have.

    Trailing empty header fields (the re-dated copy's extra column) are allowed and counted.
    """
    names = list(fields)
    width = len(names)
    while names and not names[-1].strip():
        names.pop()
    normalised = [_norm(n) for n in names]
    for layout in LAYOUTS:
        if normalised == [_norm(h) for h in layout.header]:
            return layout, width
    return None


def describe_expected() -> str:
    """What headers are accepted, for error messages."""
    return "; ".join(f"{lay.title}: {lay.expected()}" for lay in LAYOUTS)


def redated(layout: Layout) -> Layout:
    """The re-dated variant of a layout (chosen when its dates look like ``29-Nov-16``)."""
    return ONLINE_RETAIL_REDATED if layout is ONLINE_RETAIL else layout
