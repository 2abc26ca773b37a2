"""A report's chart as PNG bytes: matplotlib's Agg backend, in-process and offline.

The chart is a view: bar lengths are the report's exact amounts turned into floats only to
be drawn. One panel per currency, so no bar ever adds euros to dollars.
"""

from __future__ import annotations

import io
import textwrap

from bot.money import Money
from bot.reports.model import Report

_LABEL_CHARS = 28
_MAX_BYTES = 2_000_000


def render_chart(report: Report) -> bytes | None:
    """The report's chart as PNG, or None when it has nothing to draw."""
    bars = report.chart
    if bars is None or not bars.categories:
        return None
    # Imported here: matplotlib costs ~0.2 s and memory, and only reports draw.
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    panels = list(bars.series.items())
    height = 1.2 + 0.35 * len(bars.categories) * len(panels)
    figure = Figure(figsize=(7.5, max(2.5, height)), dpi=100, layout="constrained")
    figure.suptitle(f"{bars.title} · {report.period.label}", parse_math=False)
    labels = [_label(c) for c in bars.categories]
    for index, (currency, values) in enumerate(panels):
        axes = figure.add_subplot(len(panels), 1, index + 1)
        drawn = [_drawn(v, currency) for v in values]
        bars_drawn = axes.barh(range(len(labels)), drawn, color="#3b6ea8")
        # Each bar says its exact amount: the axis is only a guide.
        axes.bar_label(bars_drawn, labels=[_exact(v, currency) for v in values], padding=3)
        axes.margins(x=0.22)
        axes.set_yticks(range(len(labels)), labels=labels)
        for tick in axes.get_yticklabels():
            tick.set_parse_math(False)  # a name with `$` stays text, never TeX
        axes.invert_yaxis()
        axes.set_xlabel(currency or "count")
        axes.grid(axis="x", alpha=0.3)
    out = io.BytesIO()
    # No software tag or date in the file: the same report draws the same bytes.
    figure.savefig(out, format="png", metadata={"Software": None})
    png = out.getvalue()
    return png if len(png) <= _MAX_BYTES else None


def _label(category: str) -> str:
    flat = " ".join(category.split())  # a newline in a name cannot stretch the chart
    return textwrap.shorten(flat, _LABEL_CHARS, placeholder="…") or "—"


def _exact(value: int, currency: str | None) -> str:
    if not value:
        return ""
    return str(value) if currency is None else Money(minor=value, currency=currency).plain()


def _drawn(value: int, currency: str | None) -> float:
    if currency is None:
        return float(value)
    return float(Money(minor=value, currency=currency).decimal)
