"""The non-product stock codes of the sample and how each is planted: one table, as for the segments.

The real file mixes lines that sell no product into its invoices: postage, manual entries, discounts, fees,
samples, bank charges, bad-debt adjustments, gift vouchers. ``NON_PRODUCTS`` gives each code its description,
where its lines go, how many there are and their quantity and price; ``GIFT_VOUCHERS`` gives the vouchers'
values. The catalogue makes an entry of each row and the plan plants the lines from the table; no other module
names a code.
"""

from __future__ import annotations

from dataclasses import dataclass

# Where the lines of a code go.
OWN_INVOICE = "own invoice"  # one-line invoices: on customers' purchases (same day, minute, customer) or anonymous
FOREIGN_POSTAGE = "foreign postage"  # an extra line on purchase invoices of customers outside the United Kingdom
GUEST_POSTAGE = "guest postage"  # an extra line on guest checkouts
EXTRA_LINE = "extra line"  # an extra line on random purchase invoices of customers
BAD_DEBT = "bad debt"  # three consecutive ``A`` invoices, one with a positive and two with a negative price


@dataclass(frozen=True)
class LogNormal:
    """A random price in pounds: log-normal with this median and spread, capped at ``top``, rounded to pence."""

    median: float
    sigma: float
    top: float


@dataclass(frozen=True)
class NonProduct:
    """A non-product stock code and how its lines are planted."""

    code: str
    description: str
    placement: str  # one of the placements above
    rate: float = 0.0  # OWN_INVOICE, EXTRA_LINE: lines per data line (at least one line; 0 gives exactly one)
    share: float = 0.0  # FOREIGN_POSTAGE, GUEST_POSTAGE: share of the host invoices that get the line
    on_customers: float = 0.0  # OWN_INVOICE: share of the invoices placed on customers' purchases
    credit: float = 0.0  # share of ``C`` invoices with a negative quantity (1: all of them)
    many: float = 0.0  # share of lines with several units, drawn from ``units`` (1: all of them)
    units: tuple[int, int] = (1, 1)  # units of such a line (inclusive)
    price: float | tuple[float, ...] | LogNormal = 0.0  # pounds: fixed, one of a few at random, or log-normal
    cleaned: bool = True  # in seeds/non_product_stock_codes.csv; False: passes for a product, as in the real file


# The own-invoice rows are drawn in the table's order: reordering them (or any change of a rate, share or
# price) changes the data of a seed.
NON_PRODUCTS: tuple[NonProduct, ...] = (
    NonProduct("POST", "POSTAGE", FOREIGN_POSTAGE, share=0.5, many=1.0, units=(1, 3), price=(15, 18, 28, 40)),
    NonProduct("DOT", "DOTCOM POSTAGE", GUEST_POSTAGE, share=0.3, price=LogNormal(120.0, 0.8, 4000.0)),
    NonProduct(
        "M",
        "Manual",
        OWN_INVOICE,
        0.001,
        on_customers=0.6,
        credit=0.15,
        many=0.1,
        units=(2, 99),
        price=LogNormal(2.5, 1.6, 6000.0),
    ),
    NonProduct("m", "Manual", OWN_INVOICE, 0.0, on_customers=1.0, price=LogNormal(2.5, 0.5, 100.0)),
    NonProduct("D", "Discount", OWN_INVOICE, 0.00014, on_customers=1.0, credit=1.0, price=LogNormal(20.0, 0.7, 300.0)),
    NonProduct("S", "SAMPLES", OWN_INVOICE, 0.00012, credit=0.7, price=LogNormal(40.0, 1.0, 3000.0)),
    NonProduct("AMAZONFEE", "AMAZON FEE", OWN_INVOICE, 0.00006, credit=0.8, price=LogNormal(3000.0, 0.9, 20000.0)),
    NonProduct(
        "CRUK", "CRUK Commission", OWN_INVOICE, 0.00003, on_customers=1.0, credit=1.0, price=LogNormal(25.0, 0.8, 500.0)
    ),
    NonProduct("BANK CHARGES", "Bank Charges", OWN_INVOICE, 0.00007, credit=0.2, price=15.0, cleaned=False),
    NonProduct("PADS", "PADS TO MATCH ALL CUSHIONS", EXTRA_LINE, 0.000008, price=0.001),
    NonProduct("DCGSSBOY", "BOYS PARTY BAG", OWN_INVOICE, 0.000025, many=1.0, units=(1, 2), price=3.29),
    NonProduct("DCGSSGIRL", "GIRLS PARTY BAG", OWN_INVOICE, 0.000025, many=1.0, units=(1, 2), price=3.29),
    NonProduct("B", "Adjust bad debt", BAD_DEBT, price=LogNormal(9000.0, 0.4, 30000.0)),
)

# Gift vouchers: stock code ``gift_0001_<value>``, described ``GIFT VOUCHER £<value>.00``, priced without VAT;
# one-line anonymous invoices of a random value, ``GIFT_VOUCHER_RATE`` lines per data line. Like ``BANK CHARGES``
# they pass for products: the cleaning does not drop them.
GIFT_VOUCHERS: tuple[int, ...] = (10, 20, 30, 40, 50)  # values in pounds
GIFT_VOUCHER_RATE = 0.00006
GIFT_VOUCHER_VAT = 0.175
