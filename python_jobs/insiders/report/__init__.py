"""``insiders report``: one self-contained HTML file that answers the business questions from the marts.

The file needs nothing but a browser to read: inline CSS, charts drawn here as inline SVG, no script, no font or
image fetched from anywhere. Sections:

* the answers to questions 1 to 5 in plain words (how many Insiders, what sets them apart, their share of
  revenue, where the list is, who entered and left). A trait sets them apart when their mean is at least
  :data:`insiders.traits.DISTINCT_MARGIN` (25 %) above or below everyone's; how often they buy is said in
  invoices per month and days between purchases, not in the study's invoices per day. Amounts carry their
  currency (GBP unless ``--currency`` or ``INSIDERS_CURRENCY`` says otherwise). Features added to
  customer_features after the report was written are shown under their column name;
* segment sizes and revenue share (bar charts) and the profile table;
* the customers in the model's clustering space, coloured by segment (a deterministic sample);
* monthly revenue by segment (stacked bars);
* Insiders entering and leaving per scoring run, and the latest lists.

Everything comes from the marts of the latest scoring run, except the 2-D picture, which needs the model and the
customer features (the pinned model unless one is given). The same data gives the same bytes: nothing in the
file depends on the clock, the machine or the order the warehouse returns rows in.

The package: :mod:`~insiders.report.writer` writes the file (:func:`write_report`), reading the marts through
:mod:`insiders.marts`; :mod:`~insiders.report.sections` says what each section shows; the Jinja templates in
``templates/`` (one per section, autoescaped, and the style sheet ``report.css``) lay it out; and
:mod:`~insiders.report.charts` draws the SVG charts. Figures are formatted by :mod:`insiders.formatting` and the
Insiders characterised by :mod:`insiders.traits`, both shared with ``insiders answers``.
"""

from insiders.formatting import fmt_money
from insiders.report.charts import PALETTE, segment_colour
from insiders.report.writer import DEFAULT_TITLE, ReportResult, write_report
from insiders.traits import characterise, distinctive

__all__ = [
    "DEFAULT_TITLE",
    "PALETTE",
    "ReportResult",
    "characterise",
    "distinctive",
    "fmt_money",
    "segment_colour",
    "write_report",
]
