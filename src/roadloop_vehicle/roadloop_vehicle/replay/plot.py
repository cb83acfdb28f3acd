"""`roadloop replay --plot PNG`: what the pipeline commanded over time, and when safety intervened."""

from __future__ import annotations

from pathlib import Path

from roadloop_core.bag import open_bag
from roadloop_core.registry import TopicRegistry
from roadloop_vehicle.diagnostics import LEVEL_ERROR, LEVEL_WARN

__all__ = ["plot_replay"]


def plot_replay(out_bag: Path, registry: TopicRegistry, png: Path) -> None:
    """Steering and speed commands, with the safety state as background bands (WARN amber, ERROR red)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, steer, speed = [], [], []
    bands: list[tuple[float, int]] = []
    with open_bag(out_bag) as bag:
        t0: int | None = None
        for raw in bag.messages([registry["command"].name, registry["diagnostics"].name]):
            t0 = raw.timestamp_ns if t0 is None else t0
            ts = (raw.timestamp_ns - t0) / 1e9
            msg = bag.decode(raw)
            if raw.topic == registry["command"].name:
                t.append(ts)
                steer.append(msg.drive.steering_angle)
                speed.append(msg.drive.speed)
            else:
                level = next((int(s.level) for s in msg.status if s.name == "roadloop/safety"), 0)
                bands.append((ts, level))
    fig, (ax1, ax2) = plt.subplots(2, 1, sharex=True, figsize=(10, 5))
    ax1.plot(t, steer, lw=1.2)
    ax1.set_ylabel("steering [rad]")
    ax2.plot(t, speed, lw=1.2, color="tab:green")
    ax2.set_ylabel("speed cmd [m/s]")
    ax2.set_xlabel("bag time [s]")
    end = t[-1] if t else 0.0
    for (start, level), nxt in zip(bands, [*bands[1:], (end, 0)], strict=True):
        if level >= LEVEL_WARN:
            color = "tab:red" if level >= LEVEL_ERROR else "orange"
            for ax in (ax1, ax2):
                ax.axvspan(start, nxt[0], color=color, alpha=0.2, lw=0)
    ax1.set_title(f"{out_bag.name}: commands (red: controlled stop, amber: init/recovering)")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
