"""The sample's customers and invoice plan: who buys, when, how many lines, and which invoices carry a
non-product line, before any line is drawn.

The plan is a dict of invoice-level columns (``prefix``, ``day``, ``minute``, ``cust``, ``country``, ``profile``,
``nreg`` regular lines, the optional extra line ``xentry``/``xqty``/``xprice``), sorted by time and numbered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from insiders.sample.catalogue import Catalogue
from insiders.sample.dates import Calendar, random_minutes
from insiders.sample.non_products import (
    BAD_DEBT,
    EXTRA_LINE,
    FOREIGN_POSTAGE,
    GIFT_VOUCHER_RATE,
    GUEST_POSTAGE,
    NON_PRODUCTS,
    OWN_INVOICE,
    LogNormal,
    NonProduct,
)
from insiders.sample.segments import (
    ANON,
    COUNTRIES,
    EIRE,
    EIRE_INSIDERS,
    EUROPEAN_COMMUNITY,
    INVALID_COUNTRY_CUSTOMERS,
    ONE_TIME_SECOND_INVOICE,
    SEGMENTS,
    UK,
    UNSPECIFIED,
    Segment,
    country_weights,
)

_FIRST_INVOICE_NO = 536365
_FIRST_CUSTOMER_ID = 12346


@dataclass
class Customers:
    ids: np.ndarray
    segment: np.ndarray
    country: np.ndarray


_INVOICE_FIELDS = ("prefix", "day", "minute", "cust", "country", "profile", "nreg", "xentry", "xqty", "xprice")


def _part(n: int, **values: np.ndarray | int) -> dict[str, np.ndarray]:
    """Invoice-level columns of ``n`` invoices, with defaults for the columns not given."""
    defaults = {
        "prefix": 0,
        "cust": -1,
        "country": UK,
        "profile": ANON,
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


def draw_customers(rng: np.random.Generator, n: int) -> Customers:
    shares = np.array([s.share for s in SEGMENTS])
    counts = np.floor(shares * n).astype(np.int64)
    remainder = shares * n - counts
    for i in np.argsort(-remainder, kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    segment = rng.permutation(np.repeat(np.arange(len(SEGMENTS)), counts))
    span = max(int(np.ceil(n / 0.74)), n)
    ids = np.sort(rng.choice(span, size=n, replace=False)) + _FIRST_CUSTOMER_ID
    country = np.empty(n, dtype=np.int64)
    for column, mask in ((1, segment != 0), (2, segment == 0)):
        weights = np.array([c[column] for c in COUNTRIES])
        country[mask] = rng.choice(len(COUNTRIES), size=int(mask.sum()), p=weights / weights.sum())
    insiders = np.flatnonzero(segment == 0)
    if len(insiders):
        eire = max(1, round(EIRE_INSIDERS * len(insiders)))
        country[rng.choice(insiders, size=eire, replace=False)] = EIRE
    others = np.flatnonzero(segment != 0)
    for code, rate in INVALID_COUNTRY_CUSTOMERS:
        k = min(round(rate * n), len(others))
        country[rng.choice(others, size=k, replace=False)] = code
    return Customers(ids=ids, segment=segment, country=country)


def _customer_invoices(
    rng: np.random.Generator, cal: Calendar, cust: Customers
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Purchase invoices and return (``C``) invoices of the customers."""
    n = len(cust.ids)
    seg = cust.segment
    t = cal.last_open - cal.first_open + 1
    months_eff = t / 30.44

    def per_segment(get: Callable[[Segment], float]) -> np.ndarray:
        return np.array([get(s) for s in SEGMENTS], dtype=float)[seg]

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
    one_time = np.array([s.name == "one_time" for s in SEGMENTS])[seg]
    count = np.where(one_time & (rng.random(n) < ONE_TIME_SECOND_INVOICE), 2, count).astype(np.int64)

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
        minute=random_minutes(rng, len(owner)),
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
        minute=random_minutes(rng, len(rowner)),
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


def _placed(placement: str) -> list[NonProduct]:
    """The rows of ``NON_PRODUCTS`` with this placement, in the table's order."""
    return [item for item in NON_PRODUCTS if item.placement == placement]


def _single(placement: str) -> NonProduct:
    """The one row of ``NON_PRODUCTS`` with this placement (an invoice has at most one extra line)."""
    rows = _placed(placement)
    if len(rows) != 1:
        raise ValueError(f"NON_PRODUCTS needs exactly one {placement!r} row, not {len(rows)}")
    return rows[0]


def _chosen(rng: np.random.Generator, share: float, n: int) -> np.ndarray:
    """Which of ``n`` lines have a property that a ``share`` of them have (no draw for a share of 0 or 1)."""
    if share <= 0:
        return np.zeros(n, dtype=bool)
    if share >= 1:
        return np.ones(n, dtype=bool)
    return rng.random(n) < share


def _units(rng: np.random.Generator, item: NonProduct, n: int) -> np.ndarray:
    """Units of ``n`` lines of a non-product code (positive)."""
    if item.many <= 0:
        return np.ones(n, dtype=np.int64)
    many = _chosen(rng, item.many, n)
    return np.where(many, rng.integers(item.units[0], item.units[1] + 1, n), 1)


def _prices(rng: np.random.Generator, item: NonProduct, n: int) -> np.ndarray:
    """Unit prices of ``n`` lines of a non-product code, in thousandths of a pound."""
    price = item.price
    if isinstance(price, LogNormal):
        return _price_pence(rng, price.median, price.sigma, n, price.top)
    if isinstance(price, tuple):
        return rng.choice([round(p * 1000) for p in price], n)
    return np.full(n, round(price * 1000), dtype=np.int64)


def build_plan(rng: np.random.Generator, cal: Calendar, cust: Customers, cat: Catalogue) -> dict[str, np.ndarray]:
    """Every invoice of the file, sorted by time, with its invoice number."""
    sales, returns = _customer_invoices(rng, cal, cust)
    customer_lines = float(sales["nreg"].sum() + returns["nreg"].sum())

    # Guest checkouts: a third of the customer lines again, so about 25 % of all lines.
    target = customer_lines / 3.0
    sizes = np.clip(_lognormal_count(rng, 45.0, 0.9, int(target / 20) + 16), 1, 1000)
    k = int(np.searchsorted(np.cumsum(sizes), target)) + 1
    sizes = sizes[: min(k, len(sizes))]
    anon_country = rng.choice(len(COUNTRIES), size=len(sizes), p=country_weights(3))
    if len(sizes) >= 2:
        anon_country[rng.choice(len(sizes), size=2, replace=False)] = [UNSPECIFIED, EUROPEAN_COMMUNITY]
    dot = _single(GUEST_POSTAGE)
    dotcom = _chosen(rng, dot.share, len(sizes))
    guests = _part(
        len(sizes),
        day=cal.sample_all(rng, len(sizes)),
        minute=random_minutes(rng, len(sizes)),
        country=anon_country,
        nreg=sizes,
        xentry=np.where(dotcom, cat.special[dot.code], -1),
        xqty=_units(rng, dot, len(sizes)),
        xprice=_prices(rng, dot, len(sizes)),
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
            values = {"day": cal.sample_all(rng, n), "minute": random_minutes(rng, n), **values}
        parts.append(_part(n, **values))

    # Stock adjustments (price 0, empty or lower-case description, quantity of either sign).
    n = _rate_count(0.0042, lines)
    qty = np.maximum(_lognormal_count(rng, 12.0, 1.2, n), 1) * np.where(rng.random(n) < 0.55, -1, 1)
    standalone(n, xentry=rng.choice(cat.notes, n), xqty=qty, xprice=0)
    # Guest returns.
    n = _rate_count(0.0006, lines)
    standalone(n, prefix=ord("C"), nreg=rng.integers(1, 4, n))
    # Non-product codes on invoices of their own: some on customers' purchases, the rest anonymous.
    for item in _placed(OWN_INVOICE):
        n = _rate_count(item.rate, lines)
        on_customers = round(n * item.on_customers)
        pools: list[tuple[dict[str, np.ndarray] | None, int]] = []
        if item.on_customers > 0:
            pools.append((sales, on_customers))
        if item.on_customers < 1:
            pools.append((None, n - on_customers))
        for pool, k in pools:
            credit = _chosen(rng, item.credit, k)
            standalone(
                k,
                pool,
                prefix=np.where(credit, ord("C"), 0),
                xentry=cat.special[item.code],
                xqty=np.where(credit, -1, 1) * _units(rng, item, k),
                xprice=_prices(rng, item, k),
            )
    # Gift vouchers (anonymous, one line each).
    n = _rate_count(GIFT_VOUCHER_RATE, lines)
    which = rng.integers(0, len(cat.vouchers), n)
    standalone(n, xentry=cat.vouchers[which], xqty=1, xprice=cat.voucher_price[which])

    # Bad-debt adjustments: three consecutive ``A`` invoices, one positive and two negative prices.
    debt = _single(BAD_DEBT)
    debt_day = int(cal.snap_back(np.array([cal.first_open + int(0.64 * (cal.last_open - cal.first_open))]))[0])
    amount = int(_prices(rng, debt, 1)[0])
    minute = int(random_minutes(rng, 1)[0]) % 1437
    parts.append(
        _part(
            3,
            prefix=ord("A"),
            day=debt_day,
            minute=np.arange(minute, minute + 3),
            xentry=cat.special[debt.code],
            xqty=1,
            xprice=np.array([amount, -amount, -amount]),
        )
    )

    # Extra lines on existing invoices: postage of foreign customers, free gifts, extra-line codes, sub-penny
    # prices.
    post = _single(FOREIGN_POSTAGE)
    n = len(sales["day"])
    sales["xentry"] = np.where((sales["country"] != UK) & _chosen(rng, post.share, n), cat.special[post.code], -1)
    sales["xqty"] = _units(rng, post, n)
    sales["xprice"] = _prices(rng, post, n)
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
    for item in _placed(EXTRA_LINE):
        n = _rate_count(item.rate, lines)
        extra(n, cat.special[item.code], _units(rng, item, n), _prices(rng, item, n))
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
