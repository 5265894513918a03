"""The report's pictures as inline SVG (ElementTree elements, so every text is escaped).

* :func:`timeline`: a scenario's steps as bars on a time axis, one row per top-level
  step; the steps inside a ``repeat`` or ``background`` (indices ``4.2.1``) are drawn
  within their parent's row, so a burst of 150 steps stays one readable row.
* :func:`latency`: a measurement's samples sorted, as a curve (the value at each
  percentile), with its limit as a red dashed line, the marginal band shaded
  and the reported figure (``p99``) marked.

Colours follow the outcome; every bar also has a tooltip (``<title>``) and every
failing row is labelled, so the colour is never the only sign.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from hil.report import WORDS, fmt_number
from hil.results import MeasurementResult, Outcome, ScenarioResult, StepResult

COLOURS: dict[Outcome, str] = {
    Outcome.PASS: "#2da44e",
    Outcome.MARGINAL: "#bf8700",
    Outcome.FAIL: "#cf222e",
    Outcome.ERROR: "#8250df",
    Outcome.SKIP: "#8c959f",
}
INK = "#1f2328"
GRID = "#d0d7de"
FONT = "font-family:system-ui,'DejaVu Sans',sans-serif;font-size:12px"


def el(parent: ET.Element | None, tag: str, text: str | None = None, **attrs: object) -> ET.Element:
    """An element (under ``parent`` when given); ``class_`` stands for ``class``, floats get one decimal."""
    clean = {k.rstrip("_").replace("_", "-"): f"{v:.1f}" if isinstance(v, float) else str(v) for k, v in attrs.items()}
    node = ET.Element(tag, clean) if parent is None else ET.SubElement(parent, tag, clean)
    if text is not None:
        node.text = text
    return node


def nice_ticks(top: float, want: int = 6) -> list[float]:
    """Round tick values from 0 to at least ``top`` (steps of 1, 2 or 5 times a power of ten)."""
    if top <= 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / want
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    n = math.ceil(top / step - 1e-9)
    return [i * step for i in range(n + 1)]


def _ms_label(ms: float, top: float, seconds_from: float = 10_000) -> str:
    """A tick's label: in ms, or in s when the axis reaches ``seconds_from`` ms."""
    return f"{ms / 1000:g} s" if top >= seconds_from else f"{ms:g} ms"


def _svg(width: int, height: int, label: str, class_: str) -> ET.Element:
    svg = el(
        None, "svg", xmlns="http://www.w3.org/2000/svg", viewBox=f"0 0 {width} {height}",
        width="100%", role="img", class_=class_, style=FONT,
    )  # fmt: skip
    el(svg, "title", label)
    return svg


# --- the timeline ----------------------------------------------------------------------------------


def rows(steps: Sequence[StepResult]) -> list[tuple[str, StepResult | None, list[StepResult]]]:
    """The timeline's rows: (top-level index, that step if recorded, the steps run inside it), in order."""
    out: dict[str, tuple[StepResult | None, list[StepResult]]] = {}
    for st in steps:
        top, _, rest = st.index.partition(".")
        own, inner = out.get(top, (None, []))
        out[top] = (own, [*inner, st]) if rest else (st, inner)
    return [(top, own, inner) for top, (own, inner) in out.items()]


def _row_outcome(own: StepResult | None, inner: list[StepResult]) -> Outcome:
    seen = {s.outcome for s in inner} | ({own.outcome} if own else set())
    return next((o for o in (Outcome.ERROR, Outcome.FAIL, Outcome.MARGINAL) if o in seen), Outcome.PASS)


def _tip(st: StepResult) -> str:
    text = f"step {st.index} {st.do}: {WORDS[st.outcome]}, at {st.at_ms / 1000:.3f} s, took {st.duration_ms:.1f} ms"
    return f"{text}. {st.detail}" if st.detail else text


def timeline(s: ScenarioResult, width: int = 960) -> ET.Element:
    """The steps of ``s`` as bars on a time axis (``class="timeline"``)."""
    label_w, pad_r, row_h, top_pad, axis_h = 230, 36, 24, 8, 34
    table = rows(s.steps)
    end_ms = max([st.at_ms + st.duration_ms for st in s.steps] + [s.duration_s * 1000, 1.0])
    ticks = nice_ticks(end_ms)
    scale = (width - label_w - pad_r) / ticks[-1]
    height = top_pad + row_h * max(len(table), 1) + axis_h
    svg = _svg(width, height, f"Timeline of {s.name}: {len(s.steps)} steps over {end_ms / 1000:.2f} s", "timeline")

    def x(ms: float) -> float:
        return label_w + max(ms, 0.0) * scale

    plot_bottom = top_pad + row_h * len(table)
    for t in ticks:
        el(svg, "line", x1=x(t), x2=x(t), y1=top_pad, y2=plot_bottom, stroke=GRID, stroke_width=1)
        el(svg, "text", _ms_label(t, ticks[-1], 3000), x=x(t), y=plot_bottom + 16, text_anchor="middle", fill=INK)
    el(svg, "text", "time since the scenario started", x=label_w, y=plot_bottom + 31, fill="#57606a")
    for r, (top, own, inner) in enumerate(table):
        y = top_pad + r * row_h
        if r % 2:
            el(svg, "rect", x=0, y=y, width=width, height=row_h, fill="#f6f8fa")
        outcome = _row_outcome(own, inner)
        do = own.do if own else inner[0].do
        text = f"{top}  {do}" + (f"  ({len(inner)} inside)" if inner else "")
        bad = outcome in (Outcome.FAIL, Outcome.ERROR)
        label = el(svg, "text", text[:34], x=6, y=y + 16, fill=COLOURS[outcome] if bad else INK)
        if bad:
            label.set("font-weight", "bold")
            label.text = f"{label.text}  [{WORDS[outcome]}]"
        if own is not None:
            filled = not inner
            bar = el(
                svg, "rect", x=x(own.at_ms), y=y + 4, width=max(own.duration_ms * scale, 2.0), height=row_h - 8,
                rx=2, fill=COLOURS[own.outcome] if filled else "none", stroke=COLOURS[own.outcome], stroke_width=1.5,
                class_=f"step {own.outcome.value}",
            )  # fmt: skip
            el(bar, "title", _tip(own))
        for st in inner:
            strong = st.outcome in (Outcome.FAIL, Outcome.ERROR, Outcome.MARGINAL)
            bar = el(
                svg, "rect", x=x(st.at_ms), y=y + (3 if strong else 7), width=max(st.duration_ms * scale, 1.5),
                height=row_h - (6 if strong else 14), fill=COLOURS[st.outcome], class_=f"step {st.outcome.value}",
            )  # fmt: skip
            el(bar, "title", _tip(st))
    el(svg, "line", x1=label_w, x2=width - pad_r, y1=plot_bottom, y2=plot_bottom, stroke=INK, stroke_width=1)
    return svg


# --- the latency plot ------------------------------------------------------------------------------


def _sorted_points(samples: Sequence[float], most: int = 400) -> list[tuple[float, float]]:
    """(percentile, value) of the sorted samples, thinned to ``most`` points by percentile."""
    ordered = sorted(v for v in samples if math.isfinite(v))
    n = len(ordered)
    if n == 1:
        return [(50.0, ordered[0])]
    idx = range(n) if n <= most else sorted({round(i * (n - 1) / (most - 1)) for i in range(most)})
    return [(100.0 * i / (n - 1), ordered[i]) for i in idx]


def latency(m: MeasurementResult, width: int = 460, height: int = 260) -> ET.Element | None:
    """The sorted samples of an ms measurement with its limit (``class="latency"``); None without samples."""
    points = _sorted_points(m.samples) if m.unit == "ms" else []
    if not points:
        return None
    left, right, top, bottom = 62, 16, 30, 44
    pw, ph = width - left - right, height - top - bottom
    lim = m.limit
    bounds = [b for b in ((lim.max, lim.min) if lim else ()) if b is not None]
    ticks = nice_ticks(max([p[1] for p in points] + bounds + [m.value or 0.0]) * 1.08)
    y_top = ticks[-1]
    svg = _svg(width, height, f"{m.name}: {len(m.samples)} samples sorted, limit as a dashed line", "latency")

    def px(pct: float) -> float:
        return left + pw * pct / 100

    def py(ms: float) -> float:
        return top + ph * (1 - min(max(ms, 0.0), y_top) / y_top)

    heading = f"{m.name}: {m.stat} = {fmt_number(m.value, 'ms')} ({len(m.samples)} samples), {WORDS[m.outcome]}"
    el(svg, "text", heading, x=left, y=18, fill=INK, font_weight="bold")
    if lim is not None and lim.marginal_pct > 0:
        if lim.max is not None:
            lo = lim.max * (1 - lim.marginal_pct / 100)
            band = el(svg, "rect", x=left, y=py(lim.max), width=pw, height=py(lo) - py(lim.max), fill="#fff3c4")
            el(band, "title", f"marginal: within {lim.marginal_pct:g} % of the limit")
        if lim.min is not None:
            hi = lim.min * (1 + lim.marginal_pct / 100)
            el(svg, "rect", x=left, y=py(hi), width=pw, height=py(lim.min) - py(hi), fill="#fff3c4")
    for t in ticks:
        el(svg, "line", x1=left, x2=left + pw, y1=py(t), y2=py(t), stroke=GRID, stroke_width=1)
        el(svg, "text", _ms_label(t, y_top), x=left - 6, y=py(t) + 4, text_anchor="end", fill=INK)
    for pct in (0, 25, 50, 75, 90, 100):
        el(svg, "line", x1=px(pct), x2=px(pct), y1=top + ph, y2=top + ph + 4, stroke=INK)
        el(svg, "text", f"{pct}", x=px(pct), y=top + ph + 16, text_anchor="middle", fill=INK)
    el(svg, "text", "% of samples at or below the value", x=left + pw / 2, y=height - 8, text_anchor="middle",
       fill="#57606a")  # fmt: skip
    el(svg, "rect", x=left, y=top, width=pw, height=ph, fill="none", stroke=INK, stroke_width=1)
    colour = COLOURS[m.outcome]
    curve = " ".join(f"{px(p):.1f},{py(v):.1f}" for p, v in points)
    el(svg, "polyline", points=curve, fill="none", stroke="#0969da", stroke_width=1.5, class_="samples")
    if len(points) <= 200:
        for p, v in points:
            el(svg, "circle", cx=px(p), cy=py(v), r=2.6, fill="#0969da")
    named = [(lim.max, "limit"), (lim.min, "lower limit")] if lim else []
    for bound, what in named:
        if bound is None:
            continue
        el(svg, "line", x1=left, x2=left + pw, y1=py(bound), y2=py(bound), stroke=COLOURS[Outcome.FAIL],
           stroke_width=2, stroke_dasharray="6 4", class_="limit")  # fmt: skip
        el(svg, "text", f"{what} {fmt_number(bound, 'ms')}", x=left + 6, y=py(bound) - 5,
           fill=COLOURS[Outcome.FAIL], font_weight="bold", class_="limit-label")  # fmt: skip
    if m.value is not None and math.isfinite(m.value):
        el(svg, "line", x1=left, x2=left + pw, y1=py(m.value), y2=py(m.value), stroke=colour, stroke_width=1,
           stroke_dasharray="2 3")  # fmt: skip
        el(svg, "text", f"{m.stat} {fmt_number(m.value, 'ms')}", x=left + pw - 4, y=py(m.value) - 5,
           text_anchor="end", fill=colour)  # fmt: skip
    return svg
