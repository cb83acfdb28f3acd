"""Episode plots (matplotlib, Agg): the path over the road and the speed profile, one PNG each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from roadloop_sim.episode import EpisodeLog

__all__ = ["plot_episode", "plot_summary"]

MARKERS = {
    "collision_vehicle": ("x", "red"),
    "collision_static": ("X", "darkred"),
    "off_road": ("v", "orange"),
    "invalid_command": ("*", "purple"),
}


def plot_episode(log: EpisodeLog, metrics: dict[str, Any], path: Path, lane_width: float = 4.0) -> Path:
    """Left: lanes (centrelines dashed, edges solid) with the driven path and infractions; right: speed."""
    fig, (ax_map, ax_v) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [1.6, 1]})
    xs = np.array([s.x for s in log.samples])
    ys = np.array([s.y for s in log.samples])
    pad = 30.0
    box = (xs.min() - pad, xs.max() + pad, ys.min() - pad, ys.max() + pad) if len(xs) else (0, 1, 0, 1)
    for lane in log.lanes:
        inside = (lane[:, 0] > box[0]) & (lane[:, 0] < box[1]) & (lane[:, 1] > box[2]) & (lane[:, 1] < box[3])
        pts = lane[inside]
        if len(pts) < 2:
            continue
        d = np.gradient(pts, axis=0)
        n = np.stack([-d[:, 1], d[:, 0]], axis=1) / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)[:, None]
        ax_map.plot(pts[:, 0], pts[:, 1], "--", color="0.75", lw=0.8)
        for side in (-1, 1):
            edge = pts + side * n * lane_width / 2
            ax_map.plot(edge[:, 0], edge[:, 1], "-", color="0.45", lw=0.8)
    ax_map.plot(xs, ys, "-", color="tab:blue", lw=1.8, label="ego path")
    for inf in log.infractions:
        marker, color = MARKERS.get(inf.kind, ("o", "black"))
        ax_map.plot(inf.x, inf.y, marker, color=color, ms=10, label=inf.kind)
    if log.takeover_t is not None:
        k = min(range(len(log.samples)), key=lambda i: abs(log.samples[i].t - (log.takeover_t or 0.0)))
        ax_map.plot(xs[k], ys[k], "s", color="green", ms=8, label="expert takes over")
    handles, labels = ax_map.get_legend_handles_labels()
    uniq = dict(zip(labels, handles, strict=False))
    ax_map.legend(uniq.values(), uniq.keys(), loc="best", fontsize=8)
    ax_map.set_aspect("equal", adjustable="datalim")
    ax_map.set_xlabel("east (m)")
    ax_map.set_ylabel("north (m)")
    ax_map.set_title(
        f"{log.scenario} seed {log.seed} ({log.driver}): DS {metrics['driving_score']:.1f}, "
        f"RC {metrics['route_completion']:.0f}%, {log.reason}",
        fontsize=9,
    )
    ts = np.array([s.t for s in log.samples])
    ax_v.plot(ts, [s.speed for s in log.samples], color="tab:blue")
    for inf in log.infractions:
        ax_v.axvline(inf.t, color=MARKERS.get(inf.kind, ("o", "black"))[1], ls=":")
    ax_v.set_xlabel("time (s)")
    ax_v.set_ylabel("speed (m/s)")
    ax_v.set_title(
        f"speed profile (mean {metrics['mean_speed']:.1f} m/s, comfort {metrics['comfort']:.2f})", fontsize=9
    )
    ax_v.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_summary(episodes: list[dict[str, Any]], driver: str, path: Path) -> Path:
    """Driving score and route completion of every episode side by side."""
    fig, ax = plt.subplots(figsize=(max(5.0, 0.8 * len(episodes) + 2), 3.5))
    idx = np.arange(len(episodes))
    ax.bar(idx - 0.2, [e["driving_score"] for e in episodes], 0.4, label="DS")
    ax.bar(idx + 0.2, [e["route_completion"] for e in episodes], 0.4, label="RC %")
    ax.set_xticks(idx, [f"{e['scenario']}\n{e['seed']}" for e in episodes], fontsize=7)
    ax.set_ylim(0, 105)
    ax.set_title(f"{driver}: per-episode driving score and route completion", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
