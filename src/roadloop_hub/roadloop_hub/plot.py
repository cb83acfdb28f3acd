"""A picture of the catalog: each bag's recorded time span, one row per vehicle, triggers in red."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from roadloop_core.fsio import atomic_writer

__all__ = ["plot_timeline"]


def plot_timeline(rows: list[dict[str, Any]], out: Path) -> Path:
    """Write a PNG (matplotlib, Agg) of `BagService.list_bags` rows: x = recording time (UTC), y = vehicle."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    readable = [r for r in rows if r["readable"]]
    vehicles = sorted({r["vehicle"] for r in readable})
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.5 * max(1, len(vehicles))))
    for r in readable:
        start = datetime.fromtimestamp(r["start_ns"] / 1e9, timezone.utc)
        span = max(r["end_ns"] - r["start_ns"], 1) / 1e9 / 86400.0  # matplotlib dates count days
        trigger = "disengagement" in r["tags"]
        ax.barh(
            vehicles.index(r["vehicle"]),
            span,
            left=mdates.date2num(start),  # type: ignore[no-untyped-call]  # matplotlib.dates is untyped
            height=0.6,
            color="tab:red" if trigger else "tab:blue",
        )
    ax.set_yticks(range(len(vehicles)), vehicles)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d\n%H:%M:%S"))  # type: ignore[no-untyped-call]
    unreadable = len(rows) - len(readable)
    ax.set_title(
        f"{len(readable)} bags ({sum('disengagement' in r['tags'] for r in readable)} disengagements in red)"
        + (f", {unreadable} unreadable not shown" if unreadable else "")
    )
    ax.set_xlabel("recording time (UTC)")
    fig.tight_layout()
    atomic_writer(out, lambda f: fig.savefig(f, dpi=100, format="png"))
    plt.close(fig)
    return out
