"""Rendering a `Report`: `report.json`, and one self-contained `report.html`.

The page needs no network when viewed: the CSS is inline, each chart is pygal's static
SVG inlined into the page with pygal's scripts removed (`js=[]` drops the tooltip script
pygal would load from a CDN; its inline config script is stripped, nothing uses it).
pygal was chosen because it is pure Python (~130 KB, no compiled dependencies), renders
static SVG on the server, and so costs the service's image nothing like matplotlib and
numpy (~150 MB) would. Every chart has the same four series, in `SERIES` order.
"""

from __future__ import annotations

import html
import json
import re
from decimal import Decimal
from pathlib import Path

import pygal
from pygal.style import Style

from stripemeter.errors import ReportError
from stripemeter.jsonio import format_decimal, iso
from stripemeter.reconciler.drift import drift
from stripemeter.report.model import Report, Section

JSON_FILE = "report.json"
HTML_FILE = "report.html"
SERIES = (
    "ledger (hourly buckets)",
    "sent to Stripe's meter",
    "late arrivals",
    "post-close arrivals",
)
COLORS = ("#2b6cb0", "#38a169", "#dd6b20", "#c53030")
_SCRIPT = re.compile(r"<script\b.*?</script>", re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def write_report(report: Report, out_dir: Path) -> tuple[Path, Path]:
    """Write `report.json` and `report.html` into `out_dir` (created); their paths."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        json_path, html_path = out_dir / JSON_FILE, out_dir / HTML_FILE
        json_path.write_text(
            json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        html_path.write_text(render_html(report), encoding="utf-8")
    except OSError as exc:
        raise ReportError(
            f"cannot write the report into {out_dir}: {exc.strerror}; pass another --out"
        ) from None
    return json_path, html_path


def chart_svg(section: Section) -> str:
    """The section's chart of hourly usage as inline SVG (no script, no XML prolog)."""
    style = Style(
        colors=COLORS,
        background="white",
        plot_background="white",
        font_family="system-ui, sans-serif",
        title_font_size=15,
        label_font_size=12,
        major_label_font_size=12,
        legend_font_size=13,
        no_data_font_size=18,
    )
    tallest = max((float(max(h.ledger, h.stripe)) for h in section.hours), default=0.0)
    chart = pygal.Bar(
        # pygal's own range may end below the tallest bar; this one holds every bar
        range=(0, tallest * 1.1) if tallest > 0 else None,
        js=[],
        disable_xml_declaration=True,
        style=style,
        width=960,
        height=340,
        x_label_rotation=35,
        legend_at_bottom=True,
        legend_at_bottom_columns=4,
        print_values=False,
        title=f"hourly usage, {section.metric} ({section.aggregation})",
        x_title=(
            f"hours with usage in the billing period {iso(section.period_start)} .. "
            f"{iso(section.period_end)}; grace window until {iso(section.grace_end)}"
        ),
        show_minor_x_labels=len(section.hours) <= 24,
        x_labels_major_every=max(1, len(section.hours) // 12),
        truncate_label=-1,
        no_data_text="no usage in this period",
    )
    chart.x_labels = [f"{h.start:%m-%d %H:00}" for h in section.hours]
    ledger = [float(h.ledger) for h in section.hours]
    chart.add(SERIES[0], ledger)
    chart.add(SERIES[1], [float(h.stripe) for h in section.hours])
    chart.add(SERIES[2], [float(h.ledger) if h.late else None for h in section.hours])
    chart.add(SERIES[3], [float(h.ledger) if h.post_close else None for h in section.hours])
    svg = str(chart.render(is_unicode=True))
    return _COMMENT.sub("", _SCRIPT.sub("", svg))


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: Decimal | None) -> str:
    return "-" if value is None else format_decimal(value)


def _table(headers: list[str], rows: list[list[str]], css: str) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _section_html(index: int, section: Section) -> str:
    facts = [
        ["tenant", section.tenant_id],
        ["customer", section.customer_ref],
        ["billing period", f"{iso(section.period_start)} .. {iso(section.period_end)}"],
        ["grace window", f"{iso(section.period_end)} .. {iso(section.grace_end)}"],
        ["ledger total", format_decimal(section.ledger_total)],
        ["Stripe meter", format_decimal(section.stripe_total)],
        ["billed (invoice + corrections)", format_decimal(section.billed)],
        ["reconciler", f"{section.reconciler_status}{' (final)' if section.final else ''}"],
        ["late hours", str(sum(1 for h in section.hours if h.late))],
        ["post-close hours", str(sum(1 for h in section.hours if h.post_close))],
    ]
    facts_html = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts)
    if section.invoice_id is None:
        invoice = '<p class="muted">no finalized invoice yet: the period is open</p>'
    else:
        amount = "-" if section.invoice_amount is None else str(section.invoice_amount)
        invoice = _table(
            ["invoice", "quantity", "amount", "currency"],
            [[section.invoice_id, _num(section.invoice_quantity), amount, section.currency or ""]],
            "invoice-lines",
        )
    if section.corrections:
        fixes = _table(
            ["correction", "kind", "quantity", "amount", "status", "Stripe object"],
            [
                [
                    c.id,
                    c.kind,
                    format_decimal(c.quantity),
                    f"{c.amount} {c.currency}",
                    c.status,
                    c.stripe_object_id or "-",
                ]
                for c in section.corrections
            ],
            "corrections",
        )
    else:
        fixes = '<p class="muted">no corrections</p>'
    cause = f'<p class="cause">{_e(section.cause)}</p>' if section.cause else ""
    return (
        f'<section class="period" id="section-{index}" data-verdict="{_e(section.verdict)}">'
        f'<h2>{_e(section.title)} <span class="badge {_e(section.verdict)}">'
        f"{_e(section.verdict.upper())}</span></h2>{cause}"
        f'<div class="row"><table class="facts">{facts_html}</table>'
        f'<div class="chart">{chart_svg(section)}</div></div>'
        f"<h3>Invoice line</h3>{invoice}<h3>Corrections applied</h3>{fixes}</section>"
    )


def _drift_rows(report: Report) -> list[list[str]]:
    rows = []
    for s in report.sections:
        d = drift(s.ledger_total, s.billed)
        rows.append(
            [
                s.customer_ref,
                f"{s.period_start:%Y-%m-%d} .. {s.period_end:%Y-%m-%d}",
                format_decimal(s.ledger_total),
                format_decimal(s.stripe_total),
                _num(s.invoice_quantity),
                format_decimal(s.applied_corrections),
                format_decimal(d.drift_abs),
                format_decimal(d.drift_pct),
                s.verdict.upper(),
            ]
        )
    return rows


CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1a202c;background:#f7fafc}
h1{margin:0 0 .5rem} h2{font-size:1.15rem} h3{font-size:1rem;margin:1rem 0 .3rem}
#verdict{display:inline-block;font-size:2rem;font-weight:700;padding:.4rem 1.2rem;
border-radius:.4rem;color:white;letter-spacing:.05em}
.verdict-parity{background:#2f855a}.verdict-drift,.verdict-error{background:#c53030}
.verdict-pending{background:#b7791f}
.badge{font-size:.8rem;padding:.1rem .5rem;border-radius:.3rem;color:white}
.badge.parity{background:#2f855a}.badge.drift,.badge.error{background:#c53030}
.badge.pending{background:#b7791f}
section.period{background:white;border:1px solid #e2e8f0;border-radius:.5rem;
padding:1rem 1.2rem;margin:1.2rem 0}
.row{display:flex;gap:1.5rem;align-items:flex-start;flex-wrap:wrap}
.chart{flex:1;min-width:600px} .chart svg{width:100%;height:auto}
table{border-collapse:collapse;font-size:.9rem}
th,td{border-bottom:1px solid #e2e8f0;padding:.25rem .6rem;text-align:left}
.facts th{color:#4a5568;font-weight:500}.muted{color:#718096}.cause{color:#9c4221}
"""


def render_html(report: Report) -> str:
    """The whole page: verdict at the top, a section per period, the drift table."""
    verdict = report.verdict or "parity"
    notes = "".join(f"<li>{_e(n)}</li>" for n in report.notes)
    sections = "".join(_section_html(i, s) for i, s in enumerate(report.sections))
    if not report.sections:
        sections = '<p class="muted">no reconciliation data to show</p>'
    drift_table = _table(
        [
            "customer",
            "period",
            "ledger",
            "Stripe meter",
            "invoiced",
            "corrections",
            "drift_abs",
            "drift_pct",
            "verdict",
        ],
        _drift_rows(report),
        "drift",
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(report.title)}: {_e(verdict.upper())}</title>"
        f"<style>{CSS}</style></head><body>"
        f"<header><h1>{_e(report.title)}</h1>"
        f'<div id="verdict" class="verdict verdict-{_e(verdict)}">{_e(verdict.upper())}</div>'
        f'<p class="muted">source: {_e(report.source)}; generated {iso(report.generated_at)}; '
        f"{len(report.sections)} period(s); tolerance epsilon "
        f"{_e(format_decimal(report.epsilon))}</p>"
        f"{f'<ul class=notes>{notes}</ul>' if notes else ''}</header>"
        f"{sections}<h2>Drift</h2>{drift_table}</body></html>\n"
    )
