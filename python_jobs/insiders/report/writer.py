"""Writing the report: read the marts, draw the 2-D picture with the model, render the page from the package's
Jinja templates (``templates/*.html.j2``, autoescaped, the style sheet ``templates/report.css`` inlined so the file
stays self-contained) and write it atomically; :class:`ReportResult` says what was written."""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
import pandas as pd
from markupsafe import Markup

from insiders.formatting import is_missing, resolve_currency
from insiders.marts import marts_schema, read_report_figures
from insiders.report.charts import Scatter, scatter_chart
from insiders.report.sections import Page, build_page, space_section
from insiders.value.sections import read_value_figures, section_html
from insiders.warehouse import Warehouse

if TYPE_CHECKING:
    from insiders.model import SegmentModel

DEFAULT_TITLE = "Insiders: customer segmentation report"
#: Insider ids listed at the top of the report (the whole list is the ``insiders`` mart).
FIRST_INSIDERS = 50
#: Points drawn at most in the 2-D picture.
MAX_SCATTER_POINTS = 5000


@functools.cache
def _templates() -> jinja2.Environment:
    """The report's templates, loaded from the package; every value they print is HTML-escaped unless it is
    :class:`~markupsafe.Markup` (the charts and the value section, escaped where they were written)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("insiders.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_page(content: Page) -> str:
    """The HTML of the page, its style sheet inlined."""
    css = resources.files("insiders.report").joinpath("templates", "report.css").read_text(encoding="utf-8")
    return _templates().get_template("report.html.j2").render(page=content, css=Markup(css))


@dataclass(frozen=True)
class ReportResult:
    """What :func:`write_report` wrote."""

    path: Path
    size_bytes: int
    run_id: str | None
    model_version: str | None
    insiders: int
    customers: int
    charts: int
    scatter_points: int
    seconds: float
    #: why a part of the report is missing (e.g. the 2-D picture without a model); empty when complete
    notes: tuple[str, ...] = field(default_factory=tuple)


def _load_model_and_features(
    wh: Warehouse, model: SegmentModel | None, features_schema: str
) -> tuple[SegmentModel, pd.DataFrame, str | None]:
    """The model (the pinned one unless given), the customer features, and the pinned version when loaded."""
    from insiders.training import read_features

    version = None
    if model is None:
        from insiders.registry import load_pinned

        loaded = load_pinned()
        model, version = loaded.model, loaded.pin.version
    features, _ = read_features(wh, features_schema)
    return model, features, version


def write_report(
    wh: Warehouse,
    out: Path,
    model: SegmentModel | None = None,
    title: str = DEFAULT_TITLE,
    *,
    schema: str | None = None,
    features_schema: str | None = None,
    currency: str | None = None,
) -> ReportResult:
    """Write the HTML report of the latest scoring run to ``out`` and say what it contains.

    ``model`` draws the 2-D picture; when None the pinned model is loaded (``registry.load_pinned``). When no model
    can be loaded or applied, the report is written without the picture and says why. ``schema`` is the marts
    schema (default: found next to the target schema, see :func:`insiders.marts.marts_schema`);
    ``features_schema`` that of ``customer_features`` (default: the target schema). ``currency`` is that of the
    amounts (default ``$INSIDERS_CURRENCY``, else GBP; see :func:`insiders.formatting.resolve_currency`).
    """
    started = time.perf_counter()
    out = Path(out)
    schema = schema or marts_schema(wh)
    features_schema = features_schema or wh.target.schema
    currency = resolve_currency(currency)
    data = read_report_figures(wh, schema, FIRST_INSIDERS)
    counts = {int(r): int(c) for r, c in zip(data.profiles["segment_rank"], data.profiles["customers"], strict=True)}

    notes: list[str] = []
    scatter: Scatter | None = None
    reason = note = None
    try:
        loaded_model, features, version = _load_model_and_features(wh, model, features_schema)
        scatter = scatter_chart(loaded_model, features, counts, MAX_SCATTER_POINTS)
        scored_version = data.summary.get("model_version")
        if version and not is_missing(scored_version) and version != str(scored_version):
            note = (
                f"The pinned model ({version}) is not the one that scored this run ({scored_version}): the picture "
                "shows the pinned model's segments, the rest of the report those of the run."
            )
            notes.append(note)
    except Exception as exc:  # the report is still useful without the picture: say why it is missing
        reason = f"no model could be loaded or applied ({type(exc).__name__}: {exc})."
        notes.append("2-D picture omitted: " + reason)

    # Predicted value (docs/value.md): a section when the marts have segment_value.
    value = section_html(read_value_figures(wh, schema), currency)
    content = build_page(title, data, currency, wh.target.describe(), space_section(scatter, reason, note), value)
    html = render_page(content)
    body = html.encode("utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(body)
    os.replace(tmp, out)

    s = data.summary
    return ReportResult(
        path=out,
        size_bytes=len(body),
        run_id=None if is_missing(s.get("run_id")) else str(s["run_id"]),
        model_version=None if is_missing(s.get("model_version")) else str(s["model_version"]),
        insiders=0 if is_missing(s.get("insiders")) else int(s["insiders"]),
        customers=0 if is_missing(s.get("customers")) else int(s["customers"]),
        charts=html.count('<svg class="chart'),
        scatter_points=scatter.points if scatter else 0,
        seconds=time.perf_counter() - started,
        notes=tuple(notes),
    )
