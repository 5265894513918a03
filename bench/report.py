"""What ``python -m bench`` leaves behind: ``bench/results/<date-time>.json`` and a PNG chart beside it.

The JSON holds every figure (``msgspec`` encodes a missing value, NaN, as
null), the samples behind the latency figures, which benchmarks ran and how
long, the machine (CPUs, load average at the start and end: the figures mean
little on a busy machine) and the Python. The chart (matplotlib, Agg backend,
no display needed) has up to three panels: latency distributions (each
benchmark's samples beside its baseline's, as box plots on a log scale),
throughput bars (every ``.../s`` figure beside its baseline) and memory bars
(every ``MB`` figure beside its baseline).
"""

from __future__ import annotations

import math
import os
import platform
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from bench.figures import Figure, Samples

RESULTS = Path(__file__).resolve().parent / "results"


def stamp(now: datetime | None = None) -> str:
    """The file name's date-time: ISO 8601 (basic time, no colons), local time, e.g. ``2025-06-11T094512``."""
    return (now or datetime.now()).strftime("%Y-%m-%dT%H%M%S")


def write_json(out: Path, figures: Sequence[Figure], samples: Sequence[Samples], meta: dict[str, Any]) -> Path:
    """Write ``out/<date-time>.json`` (a new name if that second is taken); its path."""
    out.mkdir(parents=True, exist_ok=True)
    base = stamp()
    path = out / f"{base}.json"
    k = 1
    while path.exists():
        path = out / f"{base}-{k}.json"
        k += 1
    doc = {
        "created": datetime.now().astimezone().isoformat(timespec="seconds"),
        **meta,
        "host": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()},
        "figures": list(figures),
        "samples": list(samples),
    }
    path.write_bytes(msgspec.json.format(msgspec.json.encode(doc), indent=1))
    return path


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _bars(ax: Any, figs: Sequence[Figure], unit: str, log: bool) -> None:
    """Grouped horizontal bars: each figure's value and its baseline's."""
    y = list(range(len(figs)))
    h = 0.38
    vals = [f.value if _finite(f.value) else 0.0 for f in figs]
    bases = [f.baseline_value if _finite(f.baseline_value) else 0.0 for f in figs]
    colors = ["tab:green" if f.ok else ("tab:red" if f.ok is False else "tab:blue") for f in figs]
    ax.barh([i - h / 2 for i in y], vals, height=h, color=colors)
    ax.barh([i + h / 2 for i in y], bases, height=h, color="tab:gray")
    ax.set_yticks(y)
    ax.set_yticklabels([_wrap(f.name) for f in figs], fontsize=7)
    ax.invert_yaxis()
    if log and any(v > 0 for v in vals + bases):
        ax.set_xscale("log")
    ax.set_xlabel(unit)
    from matplotlib.patches import Patch

    keys = [("tab:green", "carehub: pass"), ("tab:red", "carehub: miss"), ("tab:blue", "carehub: no goal"),
            ("tab:gray", "baseline, same run")]
    ax.legend(handles=[Patch(color=c, label=t) for c, t in keys], fontsize=7, loc="upper left",
              bbox_to_anchor=(1.01, 1.0))
    for i, (f, v) in enumerate(zip(figs, vals)):
        if f.ratio is not None:
            ax.annotate(f"{f.ratio:.2f}x", (v, i - h / 2), fontsize=6, va="center", xytext=(3, 0),
                        textcoords="offset points")


def _wrap(text: str, width: int = 34) -> str:
    words, lines, cur = text.split(), [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    lines.append(cur)
    return "\n".join(lines)


def _latency(ax: Any, samples: Sequence[Samples]) -> None:
    """Box plots (whiskers 1st-99th percentile) of each sample set and its baseline's."""
    data, labels, colors = [], [], []
    for s in samples:
        if s.values:
            data.append(s.values)
            labels.append(_wrap(s.name, 22))
            colors.append("tab:blue")
        if s.baseline_values:
            data.append(s.baseline_values)
            labels.append(_wrap(s.baseline or "baseline", 22))
            colors.append("tab:gray")
    box = ax.boxplot(data, vert=False, whis=(1, 99), showfliers=True, patch_artist=True,
                     flierprops={"markersize": 2})
    for patch, c in zip(box["boxes"], colors):
        patch.set_facecolor(c)
        patch.set_alpha(0.5)
    ax.set_yticks(range(1, len(labels) + 1))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel(f"{samples[0].unit} (box: quartiles; whiskers: 1st-99th percentile)")


def write_chart(path: Path, figures: Sequence[Figure], samples: Sequence[Samples], title: str) -> Path:
    """Draw the chart to ``path`` (PNG); its path. Panels without data are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [f for f in figures if f.unit.endswith("/s") and _finite(f.value)]
    memory = [f for f in figures if f.unit == "MB" and _finite(f.value)]
    lat = [s for s in samples if s.values]
    panels: list[tuple[str, Any]] = []
    if lat:
        panels.append(("latency distributions", lambda ax: _latency(ax, lat)))
    if rates:
        panels.append(("throughput (log scale)", lambda ax: _bars(ax, rates, "per second", log=True)))
    if memory:
        panels.append(("resident memory", lambda ax: _bars(ax, memory, "MB", log=False)))
    heights = [max(2.5, 0.45 * n) for n in (
        [2 * len(lat)] if lat else []) + ([len(rates)] if rates else []) + ([len(memory)] if memory else [])]
    fig, axes = plt.subplots(len(panels) or 1, 1, figsize=(11, sum(heights) + 1.2 if heights else 3),
                             gridspec_kw={"height_ratios": heights} if len(panels) > 1 else None, squeeze=False)
    if not panels:
        axes[0][0].text(0.5, 0.5, "no figures to draw", ha="center", va="center")
        axes[0][0].set_axis_off()
    for (name, draw), ax in zip(panels, (row[0] for row in axes)):
        draw(ax)
        ax.set_title(name, fontsize=9, loc="left")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
