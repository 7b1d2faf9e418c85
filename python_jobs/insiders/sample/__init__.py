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

Modules, in the order the data is made:

* :mod:`insiders.sample.segments`: the planted segments, pack sizes and countries (tables);
* :mod:`insiders.sample.dates`: the window, trading days and their seasonal weights, times of day;
* :mod:`insiders.sample.non_products`: the non-product codes and gift vouchers, and how each is planted (table);
* :mod:`insiders.sample.catalogue`: products with prices and popularity, every stock code's text, adjustment notes;
* :mod:`insiders.sample.plan`: the customers and every invoice (day, customer, lines, extra line), numbered;
* :mod:`insiders.sample.writer`: the fast CSV formatter that draws and writes the lines of a chunk of invoices;
* :mod:`insiders.sample.generator`: ``generate_sample``, the entry point, and the truth file.
"""

from insiders.errors import GenerateArgumentError
from insiders.sample.dates import window
from insiders.sample.generator import (
    TRUTH_SUFFIX,
    GenerateResult,
    estimate_customers,
    estimate_lines,
    generate_sample,
    truth_path_for,
)
from insiders.sample.segments import INSIDERS
from insiders.sample.writer import HEADER

__all__ = [
    "HEADER",
    "INSIDERS",
    "TRUTH_SUFFIX",
    "GenerateArgumentError",
    "GenerateResult",
    "estimate_customers",
    "estimate_lines",
    "generate_sample",
    "truth_path_for",
    "window",
]
