"""Synthetic sample data in the layout of the Online Retail file, with planted customer segments.

``generate_sample`` writes an invoice-line file that looks like the real Kaggle/UCI ``data.csv``: the same
header (``InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country``), ISO-8859-1
encoding, CRLF line ends, minimal CSV quoting, dates as ``M/D/YYYY H:MM`` and prices as the shortest decimal
(``2.55``, ``2.1``, ``18``, ``0``). A name ending in ``.gz`` gives a gzip file (no timestamp or file name in its
header, so the bytes depend only on the arguments).

Beside the data file it writes the *truth file*: the data file's full name followed by ``.truth.csv``
(``x.csv`` -> ``x.csv.truth.csv``, ``x.csv.gz`` -> ``x.csv.gz.truth.csv``), uncompressed, header
``customer_id,segment``, one row per customer id that appears in the data file, sorted by id.

Window and calendar
    The data covers ``months`` months from ``start``: the last month is cut after its 9th day, as the real
    extract was (defaults: 2010-12-01 to 2011-12-09). The shop trades Sunday to Friday, 7:00 to 20:59, and is
    closed on Saturdays and from 24 December to 3 January. Order volume is seasonal: quiet in the first half of
    the year, rising in September and October, peaking in November.

Planted segments (truth file names). "Window" is the length of the data window; recency is measured from its
last trading day. Every customer buys on at least one day; all amounts are noisy (log-normal counts and basket
sizes, random products and pack sizes). Shares are of customers; figures in parentheses are for the default
13-month window.

    ``insiders`` (3 %; about 40 % of customer revenue)
        Wholesale-like best customers: about 5 purchase invoices a month over the whole window, about 15 lines
        per invoice, large pack sizes (about 15,000 spent, 900 purchase lines); last purchase within the final
        2.5 % of the window (under 10 days); nearly all return a handful of units (about 15).
    ``loyal`` (20 %)
        Regulars: about one invoice a month, about 11 lines each, ordinary pack sizes (about 1,600 spent, 140
        lines); active over 60-100 % of the window, last purchase within its final 8 % (under 30 days); a few
        return a unit or two.
    ``returners`` (6 %)
        Regular buyers (about one invoice a month, 12 lines, slightly larger packs, last purchase within the final
        20 % of the window) who send a lot back: at least 4 cancellation (``C``) invoices in a year's window
        (2 in a short one) returning whole packs of 25-100 units, about 1,600 units in all.
    ``occasional`` (26 %)
        2-6 small invoices (about 350 spent, 35 lines) spread over 20-55 % of the window, the last one 10-35 %
        of the window ago (35-130 days).
    ``lapsed`` (19 %)
        Churned customers: 2-4 small invoices (about 270 spent) early in the window, spread over 4-25 % of it,
        and nothing since: recency 65-95 % of the window (240-350 days).
    ``one_time`` (26 %)
        A single purchase day (one invoice; 3 % place a second invoice the same day; about 140 spent, 15
        lines), 10-60 % of the window ago.

On the clustering features (gross revenue, recency, purchase lines, invoices per active day span, units
returned) the groups are far apart, with or without a log scale: insiders by revenue and lines, returners by
units returned, one-time buyers by frequency (one active day gives 1 or more invoices per day, everybody else
well under 1), lapsed against occasional by recency, loyal against occasional by lines, revenue and recency.

Quirks of the real file, at about its rates
    About 25 % of lines are guest checkouts without a customer id (large web orders, higher unit prices, often
    with a ``DOT`` postage line); ``C`` cancellation invoices (negative quantities) on about 1.6 % of lines
    (2 % in windows of a few months); stock adjustments with price 0 and positive or negative quantity on
    non-``C`` invoices, with empty or lower-case notes as description; a few free gifts (price 0) on customer
    invoices; three ``A`` bad-debt adjustment invoices (stock code ``B``, one positive and two negative prices);
    a few sub-penny prices (``PADS`` at 0.001, some lines at 0.01-0.03); non-product codes ``POST`` (foreign
    customers' postage), ``DOT``, ``M``, ``m``, ``D``, ``S``, ``AMAZONFEE``, ``CRUK``, ``DCGSSBOY``,
    ``DCGSSGIRL``, ``PADS``, ``B`` and, as in the real file, codes that look like products but are not
    (``BANK CHARGES`` and gift vouchers such as ``gift_0001_20`` described ``GIFT VOUCHER £20.00``: the ``£``
    is why the file is ISO-8859-1); the countries ``Unspecified`` and ``European Community``; about 90 % of
    lines from the United Kingdom, then Germany, France, EIRE, Spain, the Netherlands...; one country per
    customer. Invoice numbers have 6 digits and increase with time (a file with more than about 460,000
    invoices starts lower; beyond 900,000 invoices, about 12 million lines, they grow to 7 digits). Several
    lines of one invoice share its timestamp.

    A few customers (about 0.1 %, never insiders) have the country ``Unspecified`` or ``European Community``:
    they are in the truth file, but the cleaning rules drop all their lines, so they get no features.

Scale: about 117 lines per customer for 13 months (roughly proportional to customers x months); the defaults
(4,000 customers, 13 months) give about 470,000 lines, close to the real file's 541,909. Generation is
vectorised and written in chunks; a second thread writes (and compresses) while the next chunk is built.
"""

from __future__ import annotations

import calendar
import contextlib
import datetime as dt
import gzip
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from insiders.errors import InputFileError

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
TRUTH_SUFFIX = ".truth.csv"
INSIDERS = "insiders"

_CHUNK_LINES = 100_000  # lines are drawn per chunk: changing this changes the data of a seed
_GZIP_LEVEL = 1
_FIRST_INVOICE_NO = 536365
_FIRST_CUSTOMER_ID = 12346


class GenerateArgumentError(InputFileError, ValueError):
    """A bad argument to ``generate_sample`` (also a ``ValueError``)."""


@dataclass(frozen=True)
class GenerateResult:
    """What ``generate_sample`` wrote."""

    path: Path
    truth_path: Path
    lines: int
    customers: int
    invoices: int
    segments: dict[str, int]
    first_day: dt.date
    last_day: dt.date
    size_bytes: int = 0
    seed: int = 0
    months: int = 0


# --------------------------------------------------------------------------------------------------------------
# Segments


@dataclass(frozen=True)
class _Segment:
    name: str
    share: float
    invoices_per_month: float  # mean purchase invoices per month of window
    count_sigma: float  # log-normal spread of the number of purchase invoices
    invoices: tuple[int, int]  # clip range of purchase invoices
    lines_per_invoice: float  # mean lines per purchase invoice
    pack_shift: float  # shift of the pack-size level (bigger packs > 0)
    recency: tuple[float, float]  # last purchase, fraction of window before its last day
    span: tuple[float, float]  # last minus first purchase, fraction of window
    return_prob: float  # probability that the customer returns anything
    return_invoices: float  # mean return invoices beyond the first (Poisson)
    return_lines: tuple[int, int]  # lines per return invoice (inclusive)
    return_levels: tuple[int, int]  # pack levels of returned units (inclusive)


_SEGMENTS: tuple[_Segment, ...] = (
    _Segment(INSIDERS, 0.03, 5.0, 0.15, (10, 400), 15.0, 1.5, (0.0, 0.025), (0.85, 1.0), 0.95, 0.8, (1, 3), (1, 5)),
    _Segment("loyal", 0.20, 1.0, 0.3, (4, 120), 11.0, 0.0, (0.01, 0.08), (0.6, 1.0), 0.15, 0.0, (1, 2), (0, 3)),
    _Segment("returners", 0.06, 1.0, 0.3, (4, 100), 12.0, 1.0, (0.0, 0.2), (0.4, 0.9), 1.0, 3.0, (3, 8), (13, 20)),
    _Segment("occasional", 0.26, 0.28, 0.3, (2, 6), 10.0, -0.5, (0.1, 0.35), (0.2, 0.55), 0.05, 0.0, (1, 1), (0, 2)),
    _Segment("lapsed", 0.19, 0.22, 0.3, (2, 4), 10.0, -0.5, (0.65, 0.95), (0.04, 0.25), 0.05, 0.0, (1, 1), (0, 2)),
    _Segment("one_time", 0.26, 0.0, 0.0, (1, 1), 14.0, -0.5, (0.1, 0.6), (0.0, 0.0), 0.02, 0.0, (1, 1), (0, 1)),
)
_ANON = len(_SEGMENTS)  # profile index of guest checkouts
_ONE_TIME_SECOND_INVOICE = 0.03

# Pack sizes, indexed by "level".
_PACKS = np.array(
    [
        1,
        2,
        3,
        4,
        5,
        6,
        8,
        10,
        12,
        16,
        20,
        24,
        25,
        32,
        36,
        48,
        50,
        64,
        72,
        96,
        100,
        120,
        144,
        192,
        200,
        288,
        300,
        480,
        576,
        720,
        960,
        1200,
    ],
    dtype=np.int64,
)
_PACK_SHIFT = np.array([s.pack_shift for s in _SEGMENTS] + [-3.5])
_RET_LO = np.array([s.return_levels[0] for s in _SEGMENTS] + [0])
_RET_HI = np.array([s.return_levels[1] for s in _SEGMENTS] + [3])

# --------------------------------------------------------------------------------------------------------------
# Countries: (name, weight for ordinary customers, weight for insiders, weight for guest checkouts)

_COUNTRIES: tuple[tuple[str, float, float, float], ...] = (
    ("United Kingdom", 0.900, 0.830, 0.9860),
    ("Germany", 0.022, 0.035, 0.0),
    ("France", 0.020, 0.030, 0.0005),
    ("EIRE", 0.001, 0.0, 0.0055),
    ("Spain", 0.007, 0.008, 0.0),
    ("Netherlands", 0.002, 0.020, 0.0),
    ("Belgium", 0.006, 0.006, 0.0),
    ("Switzerland", 0.005, 0.006, 0.0010),
    ("Portugal", 0.0045, 0.004, 0.0003),
    ("Australia", 0.002, 0.010, 0.0),
    ("Norway", 0.0023, 0.004, 0.0),
    ("Italy", 0.0035, 0.002, 0.0),
    ("Channel Islands", 0.002, 0.002, 0.0),
    ("Finland", 0.003, 0.002, 0.0),
    ("Cyprus", 0.0018, 0.001, 0.0),
    ("Sweden", 0.0018, 0.002, 0.0),
    ("Austria", 0.0025, 0.0, 0.0),
    ("Denmark", 0.002, 0.0, 0.0),
    ("Japan", 0.0018, 0.003, 0.0),
    ("Poland", 0.0014, 0.0, 0.0),
    ("Israel", 0.001, 0.0, 0.0003),
    ("USA", 0.001, 0.0, 0.0),
    ("Hong Kong", 0.0, 0.0, 0.0020),
    ("Singapore", 0.00025, 0.0, 0.0),
    ("Iceland", 0.00025, 0.0, 0.0),
    ("Canada", 0.001, 0.0, 0.0),
    ("Greece", 0.001, 0.0, 0.0),
    ("Malta", 0.0005, 0.0, 0.0),
    ("United Arab Emirates", 0.0005, 0.0, 0.0),
    ("RSA", 0.00025, 0.0, 0.0),
    ("Lebanon", 0.00025, 0.0, 0.0),
    ("Lithuania", 0.00025, 0.0, 0.0),
    ("Brazil", 0.00025, 0.0, 0.0),
    ("Czech Republic", 0.00025, 0.0, 0.0),
    ("Bahrain", 0.0005, 0.0, 0.0),
    ("Saudi Arabia", 0.00025, 0.0, 0.0),
    ("Unspecified", 0.0, 0.0, 0.0015),
    ("European Community", 0.0, 0.0, 0.0),
)
_COUNTRY_NAMES = [c[0] for c in _COUNTRIES]
_UK = 0
_UNSPECIFIED = _COUNTRY_NAMES.index("Unspecified")
_EUROPEAN_COMMUNITY = _COUNTRY_NAMES.index("European Community")
_INVALID_COUNTRY_CUSTOMERS = ((_UNSPECIFIED, 0.001), (_EUROPEAN_COMMUNITY, 0.00025))
_EIRE = _COUNTRY_NAMES.index("EIRE")
_EIRE_INSIDERS = 0.04  # share of insiders in EIRE (at least one): a few big Irish accounts, as in the real file

# --------------------------------------------------------------------------------------------------------------
# Calendar

_MONTH_WEIGHT = (0.75, 0.70, 0.85, 0.80, 0.90, 0.90, 0.90, 0.85, 1.30, 1.55, 2.20, 1.60)
_WEEKDAY_WEIGHT = (1.0, 1.05, 1.0, 1.05, 0.85, 0.0, 0.70)  # Monday .. Sunday; closed on Saturdays
_HOUR_FIRST = 7
_HOUR_WEIGHT = (0.5, 9.0, 34.0, 49.0, 58.0, 79.0, 72.0, 67.0, 78.0, 55.0, 29.0, 8.0, 4.0, 1.0)  # 7:00 .. 20:59


def _add_months(day: dt.date, months: int) -> dt.date:
    year, month0 = divmod(day.month - 1 + months, 12)
    year += day.year
    return dt.date(year, month0 + 1, min(day.day, calendar.monthrange(year, month0 + 1)[1]))


def window(start: dt.date, months: int) -> tuple[dt.date, dt.date]:
    """First and last calendar day of the data window: ``months`` months from ``start``, the last one cut
    after its 9th day (2010-12-01 and 13 months give 2010-12-01 .. 2011-12-09)."""
    return start, _add_months(start, months - 1) + dt.timedelta(days=8)


class _Calendar:
    """Trading days of the window with their seasonal weights."""

    def __init__(self, start: dt.date, months: int) -> None:
        first, last = window(start, months)
        n = (last - first).days + 1
        days = [first + dt.timedelta(days=i) for i in range(n)]
        closed = np.array([(d.month == 12 and d.day >= 24) or (d.month == 1 and d.day <= 3) for d in days])
        weight = (
            np.array([_MONTH_WEIGHT[d.month - 1] for d in days])
            * np.array([_WEEKDAY_WEIGHT[d.weekday()] for d in days])
            * ~closed
        )
        if not (weight > 0).any():
            raise GenerateArgumentError(f"the window {first} .. {last} has no trading day (closed days only)")
        self.n = n
        self.weight = weight
        self.cdf = np.cumsum(weight)
        idx = np.arange(n)
        is_open = weight > 0
        prev_open = np.maximum.accumulate(np.where(is_open, idx, -1))
        next_open = np.minimum.accumulate(np.where(is_open, idx, n)[::-1])[::-1]
        self.prev_open = np.where(prev_open < 0, next_open, prev_open)
        self.next_open = np.where(next_open >= n, prev_open, next_open)
        self.first_open = int(self.next_open[0])
        self.last_open = int(self.prev_open[-1])
        self.text = np.array([f"{d.month}/{d.day}/{d.year} ".encode() for d in days], dtype="S11")

    def snap_back(self, day: np.ndarray) -> np.ndarray:
        """The trading day on or before ``day`` (or the first trading day)."""
        return self.prev_open[np.clip(day, 0, self.n - 1)]

    def snap_forward(self, day: np.ndarray) -> np.ndarray:
        """The trading day on or after ``day`` (or the last trading day)."""
        return self.next_open[np.clip(day, 0, self.n - 1)]

    def sample(self, rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Seasonally weighted random trading days in ``[lo, hi]`` (trading days, inclusive)."""
        a = self.cdf[lo] - self.weight[lo]
        b = self.cdf[hi]
        day = np.searchsorted(self.cdf, a + rng.random(len(a)) * (b - a), side="left")
        return np.clip(day, lo, hi)

    def sample_all(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` seasonally weighted random trading days of the whole window."""
        lo = np.full(n, self.first_open)
        return self.sample(rng, lo, np.full(n, self.last_open))


def _minutes(rng: np.random.Generator, n: int) -> np.ndarray:
    cdf = np.cumsum(_HOUR_WEIGHT) / sum(_HOUR_WEIGHT)
    hour = _HOUR_FIRST + np.searchsorted(cdf, rng.random(n), side="right")
    return hour * 60 + rng.integers(0, 60, n)


_MINUTE_TEXT = np.array([f"{m // 60}:{m % 60:02d}".encode() for m in range(1440)], dtype="S5")

# --------------------------------------------------------------------------------------------------------------
# Catalogue

_COLOURS = (
    "WHITE",
    "RED",
    "PINK",
    "BLUE",
    "GREEN",
    "IVORY",
    "CREAM",
    "BLACK",
    "SILVER",
    "GOLD",
    "PURPLE",
    "ORANGE",
    "YELLOW",
    "PASTEL",
    "RETRO",
    "VINTAGE",
    "ANTIQUE",
    "NATURAL",
    "CHOCOLATE",
    "LIGHT BLUE",
    "DARK GREEN",
    "BAROQUE",
    "ZINC",
    "WOODEN",
    "GLASS",
    "ENAMEL",
    "CERAMIC",
    "FELT",
    "PAPER",
    "WICKER",
    "MINT",
    "LILAC",
)
_MOTIFS = (
    "HEART",
    "SPOTTY",
    "STRIPY",
    "PAISLEY",
    "FLORAL",
    "ROSE",
    "STAR",
    "UNION JACK",
    "BIRD",
    "OWL",
    "CHRISTMAS",
    "SKULL",
    "POLKADOT",
    "REGENCY",
    "LOVEBIRD",
    "DAISY",
    "BUTTERFLY",
    "HEN",
    "CAT",
    "DOG",
    "ELEPHANT",
    "ROBOT",
    "SPACEBOY",
    "DOLLY GIRL",
    "CIRCUS",
    "JUNGLE",
    "WOODLAND",
    "SNOWFLAKE",
    "REINDEER",
    "ANGEL",
    "FAIRY",
    "ORIENTAL",
    "MOROCCAN",
    "FRENCH",
    "SCANDINAVIAN",
    "ENGLISH ROSE",
    "TEA PARTY",
    "GARDEN",
    "SEASIDE",
    "CHERRY",
)
_ITEMS = (
    "T-LIGHT HOLDER",
    "LANTERN",
    "CAKE CASES",
    "MUG",
    "TEA TOWEL",
    "JUMBO BAG",
    "LUNCH BAG",
    "DOORSTOP",
    "CUSHION COVER",
    "PHOTO FRAME",
    "NAPKINS",
    "PARTY BUNTING",
    "WALL CLOCK",
    "STORAGE TIN",
    "NOTEBOOK",
    "WATER BOTTLE",
    "HOT WATER BOTTLE",
    "PURSE",
    "COAT HANGER",
    "CANDLE",
    "GIFT WRAP",
    "GIFT TAGS",
    "CHARM",
    "KEY RING",
    "BOWL",
    "PLATE",
    "JUG",
    "TEAPOT",
    "EGG CUP",
    "CAKE STAND",
    "CHOPPING BOARD",
    "APRON",
    "OVEN GLOVE",
    "SHOPPING BAG",
    "WASHBAG",
    "MIRROR",
    "DRAWER KNOB",
    "HOOK",
    "METAL SIGN",
    "MAGNET",
    "PENCILS",
    "STICKERS",
    "GREETING CARD",
    "RIBBONS",
    "BASKET",
    "PLANTER",
    "DOORMAT",
    "TRINKET BOX",
    "JEWELLERY BOX",
    "HANGING DECORATION",
    "WREATH",
    "GARLAND",
    "LIGHTS",
    "UMBRELLA",
    "BEAKER",
    "TUMBLER",
    "STRAWS",
    "PAPER CUPS",
    "PARTY BAG",
    "CRAYONS",
    "JIGSAW",
    "MONEY BOX",
    "SOAP DISH",
    "TISSUES",
    "PLASTERS IN TIN",
    "BAKING SET",
)
_PRODUCTS = 3800
_ADJUSTMENT_NOTES = (
    "check",
    "?",
    "damaged",
    "damages",
    "found",
    "adjustment",
    "thrown away",
    "sold as set online",
    "amazon",
    "wet damaged",
    "missing",
    "mixed up",
    "counted",
    "given away",
    "faulty",
    "crushed",
    "damaged, thrown away",
)


def _csv_field(text: str) -> str:
    if "," in text or '"' in text:
        return '"' + text.replace('"', '""') + '"'
    return text


_FORMS = (
    "{colour} {motif} {item}",
    "SET OF {size} {motif} {item}",
    "{item}, {colour} {motif}",
    "PACK OF {pack} {colour} {item}",
    "{motif} {item}",
    "{colour} {item}",
    '{colour} {motif} FRAME {size3}" X {size5}"',
    "{item} {colour} {motif} DESIGN",
)
_FORM_WEIGHT = (0.36, 0.10, 0.015, 0.08, 0.20, 0.17, 0.005, 0.07)


def _description(form: int, colour: str, motif: str, item: str, size: int, trailing_space: bool) -> str:
    text = _FORMS[form].format(
        colour=colour, motif=motif, item=item, size=size, pack=size * 6, size3=size + 3, size5=size + 5
    )
    return text + " " if trailing_space else text


@dataclass
class _Catalogue:
    entries: np.ndarray  # "StockCode,Description" (CSV-ready, latin-1), one row per entry
    price: np.ndarray  # base price in thousandths of a pound, per product entry
    cdf: np.ndarray  # popularity of the first ``products`` entries
    products: int
    special: dict[str, int]  # non-product entries by stock code
    notes: np.ndarray  # entries of stock adjustments (product code, note or empty description)
    vouchers: np.ndarray  # gift voucher entries
    voucher_price: np.ndarray


def _catalogue(rng: np.random.Generator) -> _Catalogue:
    texts: list[str] = []
    prices: list[int] = []
    seen: set[str] = set()
    # Random draws of every product family up front (more families than needed; the loop stops when full).
    m = 2 * _PRODUCTS
    bases = rng.choice(np.arange(10002, 90999), size=m, replace=False).tolist()
    variants = rng.choice([1, 2, 3, 4, 5], size=m, p=[0.8, 0.08, 0.06, 0.04, 0.02]).tolist()
    colours = np.argsort(rng.random((m, len(_COLOURS))), axis=1)[:, :5].tolist()
    motifs = rng.integers(len(_MOTIFS), size=m).tolist()
    items = rng.integers(len(_ITEMS), size=m).tolist()
    forms = rng.choice(len(_FORMS), size=m, p=_FORM_WEIGHT).tolist()
    sizes = rng.choice([2, 3, 4, 6, 12], size=m).tolist()
    trailing = (rng.random(m) < 0.05).tolist()
    pence = np.clip(np.exp(rng.normal(np.log(2.1), 0.85, m)) * 100, 10.0, 4000.0)
    pence = (np.rint(pence / 5.0) * 5 - (rng.random(m) < 0.2)).astype(np.int64).tolist()
    for f in range(m):
        if len(texts) >= _PRODUCTS:
            break
        for v in range(variants[f]):
            # Same template for every variant of a family, only the colour changes.
            text = _description(
                forms[f], _COLOURS[colours[f][v]], _MOTIFS[motifs[f]], _ITEMS[items[f]], sizes[f], trailing[f]
            )
            if text in seen or len(text) > 44 or len(texts) >= _PRODUCTS:
                continue
            seen.add(text)
            code = f"{bases[f]}{chr(65 + v)}" if variants[f] > 1 else str(bases[f])
            texts.append(f"{code},{_csv_field(text)}")
            prices.append(pence[f] * 10)
    order = rng.permutation(_PRODUCTS)
    popularity = 1.0 / (np.arange(_PRODUCTS) + 8.0) ** 0.9
    weights = popularity[order]
    cdf = np.cumsum(weights) / weights.sum()

    special_rows = {
        "POST": "POSTAGE",
        "DOT": "DOTCOM POSTAGE",
        "M": "Manual",
        "m": "Manual",
        "D": "Discount",
        "S": "SAMPLES",
        "AMAZONFEE": "AMAZON FEE",
        "CRUK": "CRUK Commission",
        "BANK CHARGES": "Bank Charges",
        "PADS": "PADS TO MATCH ALL CUSHIONS",
        "DCGSSBOY": "BOYS PARTY BAG",
        "DCGSSGIRL": "GIRLS PARTY BAG",
        "B": "Adjust bad debt",
    }
    special: dict[str, int] = {}
    for code, text in special_rows.items():
        special[code] = len(texts)
        texts.append(f"{code},{_csv_field(text)}")
    vouchers, voucher_price = [], []
    for value in (10, 20, 30, 40, 50):
        vouchers.append(len(texts))
        voucher_price.append(round(value / 1.175 * 100) * 10)
        texts.append(f"gift_0001_{value},{_csv_field(f'GIFT VOUCHER £{value}.00')}")
    notes = []
    for _ in range(300):
        product = texts[int(rng.integers(_PRODUCTS))]
        code = product.split(",", 1)[0]
        note = "" if rng.random() < 0.6 else _ADJUSTMENT_NOTES[rng.integers(len(_ADJUSTMENT_NOTES))]
        notes.append(len(texts))
        texts.append(f"{code},{_csv_field(note)}")
    encoded = [t.encode("latin-1") for t in texts]
    width = max(len(e) for e in encoded)
    return _Catalogue(
        entries=np.array(encoded, dtype=f"S{width}"),
        price=np.array(prices, dtype=np.int64),
        cdf=cdf,
        products=_PRODUCTS,
        special=special,
        notes=np.array(notes),
        vouchers=np.array(vouchers),
        voucher_price=np.array(voucher_price, dtype=np.int64),
    )


# --------------------------------------------------------------------------------------------------------------
# Invoice plan


@dataclass
class _Customers:
    ids: np.ndarray
    segment: np.ndarray
    country: np.ndarray


_INVOICE_FIELDS = ("prefix", "day", "minute", "cust", "country", "profile", "nreg", "xentry", "xqty", "xprice")


def _part(n: int, **values: np.ndarray | int) -> dict[str, np.ndarray]:
    """Invoice-level columns of ``n`` invoices, with defaults for the columns not given."""
    defaults = {
        "prefix": 0,
        "cust": -1,
        "country": _UK,
        "profile": _ANON,
        "nreg": 0,
        "xentry": -1,
        "xqty": 0,
        "xprice": 0,
    }
    out = {}
    for name in _INVOICE_FIELDS:
        value = values.get(name, defaults.get(name))
        if value is None:
            raise KeyError(name)
        out[name] = np.broadcast_to(np.asarray(value, dtype=np.int64), (n,)).copy()
    return out


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([p[name] for p in parts]) for name in _INVOICE_FIELDS}


def _lognormal_count(rng: np.random.Generator, mean: np.ndarray | float, sigma: float, n: int) -> np.ndarray:
    return np.rint(mean * np.exp(rng.normal(-sigma * sigma / 2, sigma, n)))


def _customers(rng: np.random.Generator, n: int) -> _Customers:
    shares = np.array([s.share for s in _SEGMENTS])
    counts = np.floor(shares * n).astype(np.int64)
    remainder = shares * n - counts
    for i in np.argsort(-remainder, kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    segment = rng.permutation(np.repeat(np.arange(len(_SEGMENTS)), counts))
    span = max(int(np.ceil(n / 0.74)), n)
    ids = np.sort(rng.choice(span, size=n, replace=False)) + _FIRST_CUSTOMER_ID
    country = np.empty(n, dtype=np.int64)
    for column, mask in ((1, segment != 0), (2, segment == 0)):
        weights = np.array([c[column] for c in _COUNTRIES])
        country[mask] = rng.choice(len(_COUNTRIES), size=int(mask.sum()), p=weights / weights.sum())
    insiders = np.flatnonzero(segment == 0)
    if len(insiders):
        eire = max(1, round(_EIRE_INSIDERS * len(insiders)))
        country[rng.choice(insiders, size=eire, replace=False)] = _EIRE
    others = np.flatnonzero(segment != 0)
    for code, rate in _INVALID_COUNTRY_CUSTOMERS:
        k = min(round(rate * n), len(others))
        country[rng.choice(others, size=k, replace=False)] = code
    return _Customers(ids=ids, segment=segment, country=country)


def _customer_invoices(
    rng: np.random.Generator, cal: _Calendar, cust: _Customers
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Purchase invoices and return (``C``) invoices of the customers."""
    n = len(cust.ids)
    seg = cust.segment
    t = cal.last_open - cal.first_open + 1
    months_eff = t / 30.44

    def per_segment(get: Callable[[_Segment], float]) -> np.ndarray:
        return np.array([get(s) for s in _SEGMENTS], dtype=float)[seg]

    lo_r, hi_r = per_segment(lambda s: s.recency[0]), per_segment(lambda s: s.recency[1])
    recency = np.floor((lo_r + rng.random(n) * (hi_r - lo_r)) * (t - 1)).astype(np.int64)
    last = cal.snap_back(cal.last_open - recency)
    lo_s, hi_s = per_segment(lambda s: s.span[0]), per_segment(lambda s: s.span[1])
    span = np.floor((lo_s + rng.random(n) * (hi_s - lo_s)) * (t - 1)).astype(np.int64)
    first = np.minimum(cal.snap_forward(np.maximum(last - span, cal.first_open)), last)

    count = np.rint(
        per_segment(lambda s: s.invoices_per_month)
        * months_eff
        * np.exp(per_segment(lambda s: s.count_sigma) * rng.standard_normal(n))
    )
    count = np.clip(count, per_segment(lambda s: s.invoices[0]), per_segment(lambda s: s.invoices[1]))
    one_time = np.array([s.name == "one_time" for s in _SEGMENTS])[seg]
    count = np.where(one_time & (rng.random(n) < _ONE_TIME_SECOND_INVOICE), 2, count).astype(np.int64)

    owner = np.repeat(np.arange(n), count)
    starts = np.cumsum(count) - count
    k = np.arange(len(owner)) - starts[owner]
    day = np.where(k == 0, first[owner], last[owner])
    middle = k >= 2
    day[middle] = cal.sample(rng, first[owner[middle]], last[owner[middle]])
    lines = _lognormal_count(rng, per_segment(lambda s: s.lines_per_invoice)[owner], 0.6, len(owner))
    lines = np.clip(lines, 1, 600)
    sales = _part(
        len(owner),
        day=day,
        minute=_minutes(rng, len(owner)),
        cust=owner,
        country=cust.country[owner],
        profile=seg[owner],
        nreg=lines,
    )

    # Returns: some days after a random purchase of the same customer.
    has = rng.random(n) < per_segment(lambda s: s.return_prob)
    # Return invoices beyond the first scale with the window (up to a year); heavy returners make at least 4
    # in a year's window (at least 2 in a short one).
    scale = min(1.0, months_eff / 12.0)
    nret = has * (1 + rng.poisson(per_segment(lambda s: s.return_invoices) * scale))
    heavy = per_segment(lambda s: s.return_invoices) >= 2
    nret = np.where(heavy, np.maximum(nret, max(2, round(4 * scale))), nret)
    rowner = np.repeat(np.arange(n), nret)
    pick = starts[rowner] + (rng.random(len(rowner)) * count[rowner]).astype(np.int64)
    rday = cal.snap_forward(day[pick] + rng.integers(0, 15, len(rowner)))
    lo_l, hi_l = per_segment(lambda s: s.return_lines[0]), per_segment(lambda s: s.return_lines[1])
    rlines = rng.integers(lo_l[rowner].astype(np.int64), hi_l[rowner].astype(np.int64) + 1)
    returns = _part(
        len(rowner),
        prefix=ord("C"),
        day=rday,
        minute=_minutes(rng, len(rowner)),
        cust=rowner,
        country=cust.country[rowner],
        profile=seg[rowner],
        nreg=rlines,
    )
    return sales, returns


def _rate_count(rate: float, lines: float) -> int:
    return max(1, round(rate * lines))


def _price_pence(rng: np.random.Generator, median: float, sigma: float, n: int, top: float) -> np.ndarray:
    """Random prices in thousandths of a pound, rounded to pence."""
    pounds = np.minimum(np.exp(rng.normal(np.log(median), sigma, n)), top)
    return np.maximum(np.rint(pounds * 100), 1).astype(np.int64) * 10


def _plan(rng: np.random.Generator, cal: _Calendar, cust: _Customers, cat: _Catalogue) -> dict[str, np.ndarray]:
    """Every invoice of the file, sorted by time, with its invoice number."""
    sales, returns = _customer_invoices(rng, cal, cust)
    customer_lines = float(sales["nreg"].sum() + returns["nreg"].sum())

    # Guest checkouts: a third of the customer lines again, so about 25 % of all lines.
    target = customer_lines / 3.0
    sizes = np.clip(_lognormal_count(rng, 45.0, 0.9, int(target / 20) + 16), 1, 1000)
    k = int(np.searchsorted(np.cumsum(sizes), target)) + 1
    sizes = sizes[: min(k, len(sizes))]
    anon_country = rng.choice(len(_COUNTRIES), size=len(sizes), p=_country_weights(3))
    if len(sizes) >= 2:
        anon_country[rng.choice(len(sizes), size=2, replace=False)] = [_UNSPECIFIED, _EUROPEAN_COMMUNITY]
    dotcom = rng.random(len(sizes)) < 0.3
    guests = _part(
        len(sizes),
        day=cal.sample_all(rng, len(sizes)),
        minute=_minutes(rng, len(sizes)),
        country=anon_country,
        nreg=sizes,
        xentry=np.where(dotcom, cat.special["DOT"], -1),
        xqty=1,
        xprice=_price_pence(rng, 120.0, 0.8, len(sizes), 4000.0),
    )
    lines = customer_lines + target
    parts = [sales, returns, guests]

    def standalone(n: int, host_pool: dict[str, np.ndarray] | None = None, **values: np.ndarray | int) -> None:
        """``n`` one-line invoices, on the day and minute of random invoices of ``host_pool`` if given."""
        if host_pool is not None and len(host_pool["day"]):
            host = rng.integers(0, len(host_pool["day"]), n)
            values = {
                "day": host_pool["day"][host],
                "minute": host_pool["minute"][host],
                "cust": host_pool["cust"][host],
                "country": host_pool["country"][host],
                "profile": host_pool["profile"][host],
                **values,
            }
        else:
            values = {"day": cal.sample_all(rng, n), "minute": _minutes(rng, n), **values}
        parts.append(_part(n, **values))

    # Stock adjustments (price 0, empty or lower-case description, quantity of either sign).
    n = _rate_count(0.0042, lines)
    qty = np.maximum(_lognormal_count(rng, 12.0, 1.2, n), 1) * np.where(rng.random(n) < 0.55, -1, 1)
    standalone(n, xentry=rng.choice(cat.notes, n), xqty=qty, xprice=0)
    # Guest returns.
    n = _rate_count(0.0006, lines)
    standalone(n, prefix=ord("C"), nreg=rng.integers(1, 4, n))
    # Non-product codes.
    n = _rate_count(0.001, lines)
    on_customers = round(n * 0.6)
    for pool, k in ((sales, on_customers), (None, n - on_customers)):
        credit = rng.random(k) < 0.15
        many = rng.random(k) < 0.1
        standalone(
            k,
            pool,
            prefix=np.where(credit, ord("C"), 0),
            xentry=cat.special["M"],
            xqty=np.where(credit, -1, 1) * np.where(many, rng.integers(2, 100, k), 1),
            xprice=_price_pence(rng, 2.5, 1.6, k, 6000.0),
        )
    standalone(1, sales, xentry=cat.special["m"], xqty=1, xprice=_price_pence(rng, 2.5, 0.5, 1, 100.0))
    n = _rate_count(0.00014, lines)
    standalone(
        n, sales, prefix=ord("C"), xentry=cat.special["D"], xqty=-1, xprice=_price_pence(rng, 20.0, 0.7, n, 300.0)
    )
    n = _rate_count(0.00012, lines)
    credit = rng.random(n) < 0.7
    standalone(
        n,
        prefix=np.where(credit, ord("C"), 0),
        xentry=cat.special["S"],
        xqty=np.where(credit, -1, 1),
        xprice=_price_pence(rng, 40.0, 1.0, n, 3000.0),
    )
    n = _rate_count(0.00006, lines)
    credit = rng.random(n) < 0.8
    standalone(
        n,
        prefix=np.where(credit, ord("C"), 0),
        xentry=cat.special["AMAZONFEE"],
        xqty=np.where(credit, -1, 1),
        xprice=_price_pence(rng, 3000.0, 0.9, n, 20000.0),
    )
    n = _rate_count(0.00003, lines)
    standalone(
        n, sales, prefix=ord("C"), xentry=cat.special["CRUK"], xqty=-1, xprice=_price_pence(rng, 25.0, 0.8, n, 500.0)
    )
    n = _rate_count(0.00007, lines)
    credit = rng.random(n) < 0.2
    standalone(
        n,
        prefix=np.where(credit, ord("C"), 0),
        xentry=cat.special["BANK CHARGES"],
        xqty=np.where(credit, -1, 1),
        xprice=15000,
    )
    for code in ("DCGSSBOY", "DCGSSGIRL"):
        n = _rate_count(0.000025, lines)
        standalone(n, xentry=cat.special[code], xqty=rng.integers(1, 3, n), xprice=3290)
    n = _rate_count(0.00006, lines)
    which = rng.integers(0, len(cat.vouchers), n)
    standalone(n, xentry=cat.vouchers[which], xqty=1, xprice=cat.voucher_price[which])

    # Bad-debt adjustments: three consecutive ``A`` invoices, one positive and two negative prices.
    debt_day = int(cal.snap_back(np.array([cal.first_open + int(0.64 * (cal.last_open - cal.first_open))]))[0])
    amount = int(_price_pence(rng, 9000.0, 0.4, 1, 30000.0)[0])
    minute = int(_minutes(rng, 1)[0]) % 1437
    parts.append(
        _part(
            3,
            prefix=ord("A"),
            day=debt_day,
            minute=np.arange(minute, minute + 3),
            xentry=cat.special["B"],
            xqty=1,
            xprice=np.array([amount, -amount, -amount]),
        )
    )

    # Extra lines on existing invoices: postage of foreign customers, free gifts, sub-penny prices.
    sales["xentry"] = np.where(
        (sales["country"] != _UK) & (rng.random(len(sales["day"])) < 0.5), cat.special["POST"], -1
    )
    sales["xqty"] = rng.integers(1, 4, len(sales["day"]))
    sales["xprice"] = rng.choice([15000, 18000, 28000, 40000], len(sales["day"]))
    free = np.flatnonzero(sales["xentry"] < 0)

    def extra(n: int, entry: np.ndarray | int, qty: np.ndarray | int, price: np.ndarray | int) -> None:
        nonlocal free
        chosen = rng.choice(free, size=min(n, len(free)), replace=False)
        free = np.setdiff1d(free, chosen)
        sales["xentry"][chosen] = np.broadcast_to(entry, (n,))[: len(chosen)]
        sales["xqty"][chosen] = np.broadcast_to(qty, (n,))[: len(chosen)]
        sales["xprice"][chosen] = np.broadcast_to(price, (n,))[: len(chosen)]

    n = _rate_count(0.00008, lines)
    extra(n, rng.integers(0, cat.products, n), rng.integers(1, 13, n), 0)
    n = _rate_count(0.000008, lines)
    extra(n, cat.special["PADS"], 1, 1)
    n = _rate_count(0.00001, lines)
    extra(n, rng.integers(0, cat.products, n), rng.integers(1, 500, n), rng.choice([10, 20, 30], n))

    plan = _concat(parts)
    order = np.lexsort((np.arange(len(plan["day"])), plan["day"] * 1440 + plan["minute"]))
    plan = {name: column[order] for name, column in plan.items()}
    count = len(order)
    base = _FIRST_INVOICE_NO if count <= 1_000_000 - _FIRST_INVOICE_NO else max(100_000, 1_000_000 - count)
    plan["number"] = base + np.arange(count, dtype=np.int64)
    plan["lines"] = plan["nreg"] + (plan["xentry"] >= 0)
    return plan


def _country_weights(column: int) -> np.ndarray:
    weights = np.array([c[column] for c in _COUNTRIES])
    return weights / weights.sum()


# --------------------------------------------------------------------------------------------------------------
# Formatting: each field is a block of bytes, NUL-padded; a line is the concatenation of its blocks with the
# NULs squeezed out.


def _digits(values: np.ndarray, width: int, sign: bool = False) -> np.ndarray:
    """Right-aligned decimal text of integers in a ``(n, width)`` uint8 block, NUL-padded on the left.

    With ``sign`` a ``-`` precedes negative numbers (``width`` counts it)."""
    v = np.abs(values).astype(np.int64)
    block = np.zeros((len(v), width), dtype=np.uint8)
    ndig = np.ones(len(v), dtype=np.int64)
    x = v.copy()
    for j in range(width - 1, -1, -1):
        block[:, j] = x % 10 + 48
        x //= 10
    for k in range(1, width):
        ndig += v >= 10**k
    block[np.arange(width)[None, :] < (width - ndig)[:, None]] = 0
    if sign:
        neg = np.flatnonzero(values < 0)
        block[neg, width - 1 - ndig[neg]] = ord("-")
    return block


def _price_block(mills: np.ndarray, width: int) -> np.ndarray:
    """Shortest decimal text of prices given in thousandths: ``2550`` -> ``2.55``, ``18000`` -> ``18``."""
    whole = np.abs(mills) // 1000 * np.sign(mills)
    frac = np.abs(mills) % 1000
    block = np.zeros((len(mills), width + 4), dtype=np.uint8)
    block[:, :width] = _digits(whole, width, sign=True)
    neg_fraction_only = np.flatnonzero((mills < 0) & (whole == 0))
    block[neg_fraction_only, width - 2] = ord("-")
    block[:, width] = np.where(frac > 0, ord("."), 0)
    block[:, width + 1] = np.where(frac > 0, frac // 100 + 48, 0)
    block[:, width + 2] = np.where(frac % 100 > 0, frac // 10 % 10 + 48, 0)
    block[:, width + 3] = np.where(frac % 10 > 0, frac % 10 + 48, 0)
    return block


def _as_block(strings: np.ndarray) -> np.ndarray:
    return strings.view(np.uint8).reshape(len(strings), strings.dtype.itemsize)


class _Formatter:
    """Turns a chunk of invoices into the bytes of their lines."""

    def __init__(self, cat: _Catalogue, cal: _Calendar, cust: _Customers, number_digits: int) -> None:
        self.cat = cat
        self.entries = _as_block(cat.entries)
        self.days = _as_block(cal.text)
        self.minutes = _as_block(_MINUTE_TEXT)
        width = max(len(c) for c in _COUNTRY_NAMES)
        self.countries = _as_block(np.array([c.encode("latin-1") for c in _COUNTRY_NAMES], dtype=f"S{width}"))
        self.cust = cust
        self.id_digits = len(str(int(cust.ids.max()))) if len(cust.ids) else 5
        self.number_digits = number_digits
        self.bulk_level = 15

    def lines(self, rng: np.random.Generator, inv: dict[str, np.ndarray]) -> tuple[bytes, int]:
        """The text of every line of the invoices ``inv`` (a slice of the plan) and their number."""
        cat = self.cat
        nreg = inv["nreg"]
        nline = inv["lines"]
        total = int(nline.sum())
        start = np.cumsum(nline) - nline
        # Regular lines: random products and pack sizes; a possible extra line closes the invoice.
        owner = np.repeat(np.arange(len(nreg)), nreg)
        pos = np.arange(len(owner)) + (start - (np.cumsum(nreg) - nreg))[owner]
        profile = inv["profile"][owner]
        product = np.minimum(np.searchsorted(cat.cdf, rng.random(len(owner)), side="right"), cat.products - 1)
        price = cat.price[product]
        level = 5.0 - 1.8 * np.log(price / 1000.0) + _PACK_SHIFT[profile] + rng.normal(0.0, 1.3, len(owner))
        level = np.clip(np.rint(level), 0, len(_PACKS) - 1).astype(np.int64)
        returned = inv["prefix"][owner] == ord("C")
        ret_level = rng.integers(_RET_LO[profile], _RET_HI[profile] + 1)
        qty = np.where(returned, -_PACKS[ret_level], _PACKS[level])
        price = np.where(profile == _ANON, np.rint(price * 1.17 / 10) * 10, price)
        price = np.where(level >= self.bulk_level, np.rint(price * 0.85 / 10) * 10, price).astype(np.int64)

        entry = np.empty(total, dtype=np.int64)
        quantity = np.empty(total, dtype=np.int64)
        unit = np.empty(total, dtype=np.int64)
        line_inv = np.empty(total, dtype=np.int64)
        entry[pos], quantity[pos], unit[pos], line_inv[pos] = product, qty, price, owner
        has_x = np.flatnonzero(inv["xentry"] >= 0)
        xpos = start[has_x] + nreg[has_x]
        entry[xpos], quantity[xpos] = inv["xentry"][has_x], inv["xqty"][has_x]
        unit[xpos], line_inv[xpos] = inv["xprice"][has_x], has_x

        # Per-invoice blocks.
        head = np.zeros((len(nreg), 1 + self.number_digits), dtype=np.uint8)
        head[:, 0] = inv["prefix"]
        head[:, 1:] = _digits(inv["number"], self.number_digits)
        date = np.concatenate([self.days[inv["day"]], self.minutes[inv["minute"]]], axis=1)
        has_cust = inv["cust"] >= 0
        ids = np.where(has_cust, self.cust.ids[np.maximum(inv["cust"], 0)], 0)
        tail = np.concatenate(
            [
                _digits(ids, self.id_digits),
                np.full((len(nreg), 1), ord(","), dtype=np.uint8),
                self.countries[inv["country"]],
                np.tile(np.frombuffer(b"\r\n", dtype=np.uint8), (len(nreg), 1)),
            ],
            axis=1,
        )
        tail[~has_cust, : self.id_digits] = 0

        comma = np.full((total, 1), ord(","), dtype=np.uint8)
        matrix = np.concatenate(
            [
                head[line_inv],
                comma,
                self.entries[entry],
                comma,
                _digits(quantity, 7, sign=True),
                comma,
                date[line_inv],
                comma,
                _price_block(unit, 7),
                comma,
                tail[line_inv],
            ],
            axis=1,
        )
        flat = matrix.ravel()
        return np.compress(flat != 0, flat).tobytes(), total


# --------------------------------------------------------------------------------------------------------------
# Public API


def truth_path_for(out: str | Path) -> Path:
    """The truth file of a data file: its full name followed by ``.truth.csv`` (``x.csv.gz.truth.csv``)."""
    out = Path(out)
    return out.with_name(out.name + TRUTH_SUFFIX)


def _lines_per_customer(months: int) -> float:
    # Measured: about 0.275 lines per customer per day of window plus a base of 12, at least 42 (short windows
    # are dominated by the minimum invoice counts of the small segments).
    first, last = window(dt.date(2010, 12, 1), months)
    return max(42.0, 12.0 + 0.275 * ((last - first).days + 1))


def estimate_lines(customers: int, months: int = 13) -> int:
    """About how many data lines ``customers`` customers give over ``months`` months (within about 10 %)."""
    return round(customers * _lines_per_customer(months))


def estimate_customers(lines: int, months: int = 13) -> int:
    """Customers that give about ``lines`` data lines over ``months`` months (for sizing benchmarks)."""
    return max(1, round(lines / _lines_per_customer(months)))


def _check_target(path: Path) -> None:
    parent = path.parent
    if not path.name:
        raise GenerateArgumentError(f"output path {str(path)!r} has no file name")
    if not parent.is_dir():
        raise GenerateArgumentError(f"cannot write {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise GenerateArgumentError(f"cannot write {path}: directory {parent} is not writable")
    for target in (path, truth_path_for(path)):
        if target.is_dir():
            raise GenerateArgumentError(f"cannot write {target}: it is a directory")


def generate_sample(
    out: str | Path,
    customers: int = 4000,
    months: int = 13,
    seed: int = 42,
    start: dt.date = dt.date(2010, 12, 1),
    progress: Callable[[int], None] | None = None,
) -> GenerateResult:
    """Write a synthetic Online Retail file to ``out`` and its truth file beside it.

    ``out`` gets gzip compression when its name ends in ``.gz``. The truth file is ``out`` with ``.truth.csv``
    appended (``x.csv.gz`` -> ``x.csv.gz.truth.csv``): ``customer_id,segment`` for every customer in the data.
    The same arguments give the same bytes; another ``seed`` gives other data. ``progress``, if given, is
    called after each chunk with the number of data lines produced so far (the last call equals ``lines``).

    Both files are written to temporary files in the target directory and renamed at the end, so a failure
    leaves no partial file. Bad arguments raise ``GenerateArgumentError`` (an ``InputFileError`` and a
    ``ValueError``).
    """
    for name, value in (("customers", customers), ("months", months), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise GenerateArgumentError(f"{name} must be an integer, got {value!r}")
    if customers < 1:
        raise GenerateArgumentError(f"customers must be at least 1, got {customers}")
    if months < 1:
        raise GenerateArgumentError(f"months must be at least 1, got {months}")
    if months > 1200:
        raise GenerateArgumentError(f"months must be at most 1200, got {months}")
    if seed < 0:
        raise GenerateArgumentError(f"seed must be zero or positive, got {seed}")
    if not isinstance(start, dt.date) or isinstance(start, dt.datetime):
        raise GenerateArgumentError(f"start must be a date, got {start!r}")
    path = Path(out)
    _check_target(path)
    truth = truth_path_for(path)

    seeds = np.random.SeedSequence([int(seed), 20101201])
    catalogue_seed, customer_seed, plan_seed, line_seed = seeds.spawn(4)
    cal = _Calendar(start, months)
    cat = _catalogue(np.random.default_rng(catalogue_seed))
    cust = _customers(np.random.default_rng(customer_seed), int(customers))
    plan = _plan(np.random.default_rng(plan_seed), cal, cust, cat)
    number_digits = len(str(int(plan["number"][-1])))
    formatter = _Formatter(cat, cal, cust, number_digits)

    bounds = _chunk_bounds(plan["lines"])
    line_seeds = line_seed.spawn(len(bounds) - 1)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp_truth = truth.with_name(f".{truth.name}.{os.getpid()}.tmp")
    written = 0
    try:
        with _open_output(tmp, path.name.endswith(".gz")) as write, ThreadPoolExecutor(1) as writer:
            pending: list[Future[int]] = [writer.submit(write, (HEADER + "\r\n").encode("latin-1"))]
            for i in range(len(bounds) - 1):
                chunk = {name: column[bounds[i] : bounds[i + 1]] for name, column in plan.items()}
                data, n = formatter.lines(np.random.default_rng(line_seeds[i]), chunk)
                pending.append(writer.submit(write, data))
                while len(pending) > 2:
                    pending.pop(0).result()
                written += n
                if progress is not None:
                    progress(written)
            for f in pending:
                f.result()
        _write_truth(tmp_truth, cust)
        os.replace(tmp, path)
        os.replace(tmp_truth, truth)
    except OSError as exc:
        _remove(tmp, tmp_truth)
        raise GenerateArgumentError(f"cannot write {path}: {exc}") from exc
    except BaseException:
        _remove(tmp, tmp_truth)
        raise
    first_day, last_day = window(start, months)
    names = [s.name for s in _SEGMENTS]
    counts = np.bincount(cust.segment, minlength=len(names))
    return GenerateResult(
        path=path,
        truth_path=truth,
        lines=written,
        customers=len(cust.ids),
        invoices=len(plan["number"]),
        segments={name: int(c) for name, c in zip(names, counts, strict=True)},
        first_day=first_day,
        last_day=last_day,
        size_bytes=path.stat().st_size,
        seed=int(seed),
        months=int(months),
    )


def _chunk_bounds(lines: np.ndarray) -> list[int]:
    """Invoice indices that cut the plan into chunks of about ``_CHUNK_LINES`` lines."""
    cum = np.cumsum(lines)
    total = int(cum[-1]) if len(cum) else 0
    cuts = np.searchsorted(cum, np.arange(_CHUNK_LINES, total, _CHUNK_LINES), side="left") + 1
    return [0, *sorted(set(int(c) for c in cuts if 0 < c < len(lines))), len(lines)]


@contextlib.contextmanager
def _open_output(path: Path, compress: bool) -> Iterator[Callable[[bytes], int]]:
    """The ``write`` of a new binary file, gzip-compressed without timestamp or file name when asked."""
    with open(path, "wb") as raw:
        if compress:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=_GZIP_LEVEL, mtime=0) as gz:
                yield gz.write
        else:
            yield raw.write


def _write_truth(path: Path, cust: _Customers) -> None:
    names = np.array([s.name for s in _SEGMENTS])
    order = np.argsort(cust.ids, kind="stable")
    rows = [f"{i},{s}\n" for i, s in zip(cust.ids[order].tolist(), names[cust.segment[order]].tolist(), strict=True)]
    with open(path, "w", encoding="ascii", newline="") as fh:
        fh.write("customer_id,segment\n")
        fh.writelines(rows)


def _remove(*paths: Path) -> None:
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
