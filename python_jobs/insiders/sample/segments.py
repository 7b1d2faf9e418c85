"""Who the sample's customers are: the planted segments, pack sizes and countries.

``SEGMENTS`` is the table of the planted segments (share of customers, invoices, lines, recency, span and
returns); the profile index after the last segment, ``ANON``, stands for guest checkouts. ``COUNTRIES`` gives each
country's weight for ordinary customers, insiders and guest checkouts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INSIDERS = "insiders"


@dataclass(frozen=True)
class Segment:
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


SEGMENTS: tuple[Segment, ...] = (
    Segment(INSIDERS, 0.03, 5.0, 0.15, (10, 400), 15.0, 1.5, (0.0, 0.025), (0.85, 1.0), 0.95, 0.8, (1, 3), (1, 5)),
    Segment("loyal", 0.20, 1.0, 0.3, (4, 120), 11.0, 0.0, (0.01, 0.08), (0.6, 1.0), 0.15, 0.0, (1, 2), (0, 3)),
    Segment("returners", 0.06, 1.0, 0.3, (4, 100), 12.0, 1.0, (0.0, 0.2), (0.4, 0.9), 1.0, 3.0, (3, 8), (13, 20)),
    Segment("occasional", 0.26, 0.28, 0.3, (2, 6), 10.0, -0.5, (0.1, 0.35), (0.2, 0.55), 0.05, 0.0, (1, 1), (0, 2)),
    Segment("lapsed", 0.19, 0.22, 0.3, (2, 4), 10.0, -0.5, (0.65, 0.95), (0.04, 0.25), 0.05, 0.0, (1, 1), (0, 2)),
    Segment("one_time", 0.26, 0.0, 0.0, (1, 1), 14.0, -0.5, (0.1, 0.6), (0.0, 0.0), 0.02, 0.0, (1, 1), (0, 1)),
)
ANON = len(SEGMENTS)  # profile index of guest checkouts
ONE_TIME_SECOND_INVOICE = 0.03

# Pack sizes, indexed by "level".
PACKS = np.array(
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
PACK_SHIFT = np.array([s.pack_shift for s in SEGMENTS] + [-3.5])
RET_LO = np.array([s.return_levels[0] for s in SEGMENTS] + [0])
RET_HI = np.array([s.return_levels[1] for s in SEGMENTS] + [3])


# Countries: (name, weight for ordinary customers, weight for insiders, weight for guest checkouts)

COUNTRIES: tuple[tuple[str, float, float, float], ...] = (
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
COUNTRY_NAMES = [c[0] for c in COUNTRIES]
UK = 0
UNSPECIFIED = COUNTRY_NAMES.index("Unspecified")
EUROPEAN_COMMUNITY = COUNTRY_NAMES.index("European Community")
INVALID_COUNTRY_CUSTOMERS = ((UNSPECIFIED, 0.001), (EUROPEAN_COMMUNITY, 0.00025))
EIRE = COUNTRY_NAMES.index("EIRE")
EIRE_INSIDERS = 0.04  # share of insiders in EIRE (at least one): a few big Irish accounts, as in the real file


def country_weights(column: int) -> np.ndarray:
    weights = np.array([c[column] for c in COUNTRIES])
    return weights / weights.sum()
