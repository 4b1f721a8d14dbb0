"""``wayline report``: the KPI document of a period (``kpireport.report``, the same JSON that
``GET /v1/analytics/report`` answers) drawn as one self-contained HTML page.

Plots are SVG from matplotlib's object API (no pyplot state, no display), inlined in the page,
so the file opens anywhere, offline, and prints sharp. A plot with nothing to show says so. The
same document gives the same page, byte for byte.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

INK, MUTED, ACCENT, GOOD, BAD = "#1f2937", "#6b7280", "#2563eb", "#059669", "#dc2626"
PALETTE = ["#2563eb", "#059669", "#d97706", "#7c3aed", "#db2777", "#0891b2", "#65a30d"]
STYLE: Any = {
    "font.family": "DejaVu Sans", "font.size": 9, "axes.edgecolor": "#d1d5db",
    "axes.labelcolor": INK, "xtick.color": MUTED, "ytick.color": MUTED,
    "axes.spines.top": False, "axes.spines.right": False, "svg.fonttype": "none",
    "svg.hashsalt": "wayline",  # the same ids for the same figures: a page is reproducible
}  # fmt: skip


def render(doc: dict[str, Any], title: str = "Wayline report") -> str:
    """The page for a report document."""
    plots = {name: _svg(draw, doc) for name, draw in PLOTS.items()}
    env = Environment(loader=PackageLoader("wayline", "templates"),
                      autoescape=select_autoescape(["j2", "html"]))  # fmt: skip
    env.filters["pct"] = lambda v, digits=1: "–" if v is None else f"{100 * v:.{digits}f} %"
    env.filters["money"] = lambda v: "–" if v is None else f"{v:,.2f}"
    env.filters["count"] = lambda v: f"{v:,}"
    return env.get_template("report.html.j2").render(doc=doc, plots=plots, title=title)


def _svg(draw: Callable[[Any, dict[str, Any]], bool], doc: dict[str, Any]) -> Markup | None:
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    with rc_context(STYLE):
        figure = Figure(figsize=(7.2, 3.2), layout="constrained")
        if not draw(figure, doc):
            return None
        out = io.StringIO()
        figure.savefig(out, format="svg", metadata={"Date": None})
    text = out.getvalue()
    return Markup(text[text.index("<svg") :])


def _funnel(figure: Any, doc: dict[str, Any]) -> bool:
    steps = doc["funnel"]["steps"]
    if not steps or not steps[0]["profiles"]:
        return False
    ax = figure.subplots()
    names = [s["step"] for s in steps][::-1]
    values = [s["profiles"] for s in steps][::-1]
    ax.barh(names, values, color=[ACCENT, "#60a5fa", "#93c5fd"][: len(values)][::-1])
    for y, step in enumerate(steps[::-1]):
        ax.text(step["profiles"], y, f"  {step['profiles']:,} · {100 * step['of_first']:.1f} %",
                va="center", color=INK)  # fmt: skip
    ax.set_xlim(0, max(values) * 1.35)
    ax.set_xlabel("profiles")
    return True


def _retention(figure: Any, doc: dict[str, Any]) -> bool:
    rows = [c for c in doc["cohorts"]["cohorts"] if c["retention"]]
    if max((len(c["retention"]) for c in rows), default=0) < 2:
        return False  # no month after a first one: nothing returned yet
    import numpy as np

    width = max(len(c["retention"]) for c in rows)
    grid = np.full((len(rows), width), np.nan)
    for i, c in enumerate(rows):
        grid[i, : len(c["retention"])] = c["retention"]
    figure.set_size_inches(7.2, max(2.4, 0.28 * len(rows) + 1.2))
    ax = figure.subplots()
    image = ax.imshow(grid[:, 1:], aspect="auto", cmap="Blues", vmin=0,
                      interpolation="nearest")  # fmt: skip
    ax.set_yticks(range(len(rows)), [f"{c['cohort']} ({c['customers']:,})" for c in rows])
    ax.set_xlabel("months after the first order")
    ax.set_xticks(range(width - 1), [str(k) for k in range(1, width)])
    figure.colorbar(image, ax=ax, label="share of the cohort buying", format="{x:.0%}")
    return True


def _buyers(figure: Any, doc: dict[str, Any]) -> bool:
    by_month = doc["orders"]["active_buyers_by_month"]
    if not by_month:
        return False
    ax = figure.subplots()
    ax.bar(list(by_month), list(by_month.values()), color=ACCENT)
    ax.set_ylabel("buyers")
    ax.tick_params(axis="x", labelrotation=60)
    return True


def _segments(figure: Any, doc: dict[str, Any]) -> bool:
    sizes = doc["segments"]["sizes"]
    if not sizes:
        return False
    ax = figure.subplots()
    since, until = (_when(doc["period"][end]) for end in ("since", "until"))
    for i, (segment, by_bucket) in enumerate(sorted(sizes.items())[: len(PALETTE)]):
        at = [_when(b) for b in by_bucket]
        values = list(by_bucket.values())
        ax.step([*at, until], [*values, values[-1]], where="post", label=segment,
                color=PALETTE[i])  # fmt: skip
    ax.set_xlim(min(since, *(_when(b) for s in sizes.values() for b in s)), until)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("members")
    ax.legend(frameon=False, loc="upper left", ncols=min(4, len(sizes)))
    figure.autofmt_xdate()
    return True


def _deliveries(figure: Any, doc: dict[str, Any]) -> bool:
    funnel = doc["deliveries"]["funnel"]
    if not funnel:
        return False
    import numpy as np

    steps = ("sent", "delivered", "opened", "clicked", "unsubscribed")
    ax = figure.subplots()
    names = sorted(funnel)
    width = 0.8 / len(steps)
    for j, step in enumerate(steps):
        ax.bar(np.arange(len(names)) + j * width, [funnel[n][step] for n in names], width,
               label=step, color=PALETTE[j])  # fmt: skip
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names)
    ax.set_ylabel("deliveries")
    ax.legend(frameon=False, ncols=5, loc="upper right")
    return True


def _uplift(figure: Any, doc: dict[str, Any]) -> bool:
    rows = [r for r in doc["uplift"]["uplift"] if r["uplift"] is not None]
    if not rows:
        return False
    figure.set_size_inches(7.2, max(1.8, 0.45 * len(rows) + 1.0))
    ax = figure.subplots()
    for y, row in enumerate(rows[::-1]):
        u = row["uplift"]
        colour = GOOD if u["low"] > 0 else BAD if u["high"] < 0 else MUTED
        below, above = u["absolute"] - u["low"], u["high"] - u["absolute"]
        ax.errorbar(100 * u["absolute"], y, xerr=[[100 * below], [100 * above]], fmt="o",
                    color=colour, capsize=4)  # fmt: skip
    ax.axvline(0, color=INK, linewidth=0.8)
    ax.set_yticks(range(len(rows)), [r["subscription"] for r in rows[::-1]])
    ax.set_xlabel("conversion uplift, percentage points (95 % interval)")
    return True


def _when(text: str) -> datetime:
    """A bucket or period end as a naive UTC time (what matplotlib's date axis takes)."""
    moment = datetime.fromisoformat(text)
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


PLOTS: dict[str, Callable[[Any, dict[str, Any]], bool]] = {
    "funnel": _funnel, "retention": _retention, "buyers": _buyers, "segments": _segments,
    "deliveries": _deliveries, "uplift": _uplift,
}  # fmt: skip
