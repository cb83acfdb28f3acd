"""replay_bag: a bag, in timestamp order, through the Pipeline (the nodes' two stages); outputs into a new bag.

Determinism: the clock is the bag's receive stamps, the model runs with the
configured (fixed) thread count, latency-based rollback is off, and nothing
measured (latencies) is written into the output bag. The stats JSON keeps the
deterministic figures (`frames`, `drops`, `fallbacks`, ...) apart from the
measured ones (`measured`: per-stage latency percentiles, real-time factor). A frame that never
left INIT is a fault of the replay, not a quiet success: `init_frames` counts them and `problems`
says why (the faults that held the supervisor there), so "0 fallbacks" is never the whole story.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from roadloop_core.bag import BagWriter, open_bag
from roadloop_core.errors import BagError
from roadloop_core.fsio import atomic_write_json
from roadloop_vehicle.errors import ReplayError
from roadloop_vehicle.params import VehicleParams
from roadloop_vehicle.pipeline import PRODUCED_ROLES, FrameReport, Pipeline
from roadloop_vehicle.safety.supervisor import State

__all__ = ["ReplayResult", "fallback_stats", "replay_bag", "write_stats"]

STAGES = ("sync", "policy", "inference", "control", "safety", "frame")
OUTPUT_ROLES = ("trajectory", "command", "diagnostics")


@dataclass
class ReplayResult:
    deterministic: dict[str, Any] = field(default_factory=dict)
    measured: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {**self.deterministic, "measured": self.measured}


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}
    arr = np.asarray(values)
    return {
        "p50": round(float(np.percentile(arr, 50)), 4),
        "p99": round(float(np.percentile(arr, 99)), 4),
        "max": round(float(arr.max()), 4),
    }


def replay_bag(
    bag_path: Path,
    out_path: Path,
    bundle_dir: Path,
    *,
    params: VehicleParams,
    public_key: Path | None = None,
    realtime: bool = False,
    progress: Callable[[int, int], None] | None = None,
    distro: str | None = None,
    swaps: list[tuple[float, Path]] | None = None,
) -> ReplayResult:
    """Replay `bag_path` with `bundle_dir`; write /planning/trajectory, /control/command, /diagnostics.

    The output bag is written for `distro`'s rosbag2 (humble: metadata version 5, jazzy: 9; default
    the registry's typestore). `swaps`: (seconds after the bag's start, bundle) -- the bundle is offered to
    the model manager before the first frame stamped at or after that time, as the car's loader would
    when `current` changes, so a recorded model swap replays at the frame the car made it.
    """
    if out_path.exists():
        raise ReplayError(f"{out_path}: output already exists (replay never overwrites a bag)")
    pipeline = Pipeline(params, bundle_dir, public_key=public_key, deterministic=True)
    events = pipeline.manager.drain_events()
    refused = [e for e in events if e.kind == "refused"]
    if refused:
        raise ReplayError(f"bundle refused: {refused[0].reason}")
    for e in events:  # keep the load event for the first diagnostics message
        pipeline.manager.events.append(e)
    reg = pipeline.registry
    spec = pipeline.observation
    with open_bag(bag_path) as bag:
        info = bag.info
        for at_s, swap in swaps or []:
            pipeline.drive.swap_at(info.start_ns + round(at_s * 1e9), swap)
        present = {t.name for t in info.topics}
        missing = [f"{reg[r].name} ({r})" for r in spec.roles(onboard=True) if reg[r].name not in present]
        if missing:
            raise ReplayError(
                f"{bag_path}: bag has no {', '.join(missing)} topic; it holds {', '.join(sorted(present))}"
            )
        inputs = [reg[r].name for r in reg.topics if reg[r].name in present and r not in PRODUCED_ROLES]
        total = sum(t.message_count for t in info.topics if t.name in inputs)
        # Built in a hidden sibling folder under its final name, renamed into place when complete.
        try:
            out_path.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{out_path.name}.", dir=out_path.parent))
        except OSError as err:
            raise ReplayError(f"{out_path}: cannot create the output: {err.strerror}") from err
        tmp = staging / out_path.name
        try:
            writer = BagWriter(
                tmp, distro=distro or reg.typestore, custom_data={"roadloop.replay.source": bag_path.name}
            )
        except BagError as err:
            shutil.rmtree(staging, ignore_errors=True)
            raise ReplayError(f"{out_path}: {err}") from err
        for role in OUTPUT_ROLES:
            writer.add_topic(reg[role].name, reg[role].type, reg[role].qos)
        count = 0
        wall0 = time.perf_counter()
        first_ts: int | None = None
        frame_ms: list[float] = []
        try:
            for raw in bag.messages(topics=inputs):
                if first_ts is None:
                    first_ts = raw.timestamp_ns
                if realtime:
                    ahead = (raw.timestamp_ns - first_ts) / 1e9 - (time.perf_counter() - wall0)
                    if ahead > 0:
                        time.sleep(ahead)
                t0 = time.perf_counter()
                n_reports = len(pipeline.reports)
                outs = pipeline.step(raw)
                if len(pipeline.reports) > n_reports and pipeline.reports[-1].kind == "frame":
                    frame_ms.append((time.perf_counter() - t0) * 1e3)
                for o in outs:
                    if o.role not in OUTPUT_ROLES:  # the frames between the stages are not recorded
                        continue
                    writer.write(o.topic, o.timestamp_ns, pipeline.typestore.serialize_cdr(o.msg, o.typename))
                count += 1
                if progress is not None:
                    progress(count, total)
            pipeline.drive.assembler.sync.flush()
            writer.close()
        except BaseException:
            writer.close()
            shutil.rmtree(staging, ignore_errors=True)
            raise
        wall = time.perf_counter() - wall0
        os.replace(tmp, out_path)
        staging.rmdir()

    reports = [r for r in pipeline.reports if r.kind == "frame"]
    ticks = [r for r in pipeline.reports if r.kind == "watchdog"]
    states = Counter(r.state.value for r in reports)
    init_frames = sum(1 for r in reports if r.state is State.INIT)
    result = ReplayResult()
    result.deterministic = {
        "bag": bag_path.name,
        "bundle": reports[-1].model if reports and reports[-1].model else None,
        "messages_in": count,
        "frames": len(reports),
        "drops": dict(sorted(pipeline.drive.assembler.drops.items())),
        "fallbacks": pipeline.safety.fallback_entries,
        "fallback_frames": sum(1 for r in reports if r.state is not State.ACTIVE),
        "init_frames": init_frames,
        "monitored_roles": list(pipeline.safety.supervisor.monitored_roles),
        "problems": _problems(reports, init_frames),
        "watchdog_ticks": len(ticks),
        "states": dict(sorted(states.items())),
        "faults": dict(sorted(Counter(f for r in pipeline.reports for f in r.faults).items())),
        "models": sorted({r.model for r in reports if r.model}),
        "duration_s": round(info.duration_s, 6),
        **fallback_stats(pipeline.reports),
    }
    timings: dict[str, list[float]] = {s: [] for s in STAGES}
    for r in reports:
        for k, v in r.timings_ms.items():
            timings.setdefault(k, []).append(v)
    timings["frame"] = frame_ms
    result.measured = {
        "latency_ms": {k: _percentiles(v) for k, v in timings.items()},
        "wall_s": round(wall, 4),
        "realtime_factor": round(info.duration_s / wall, 3) if wall > 0 else 0.0,
    }
    return result


def _problems(reports: list[FrameReport], init_frames: int) -> list[str]:
    """What went wrong in a replay that fallbacks do not count: frames that never left INIT, a run without one
    ACTIVE frame, no frames at all."""
    if not reports:
        return ["no frames: the synchronizer never had all the inputs the observation spec reads (see drops)"]
    out: list[str] = []
    if init_frames:
        held = Counter(f for r in reports if r.state is State.INIT for f in r.faults).most_common(3)
        why = ", ".join(f"{f} {n}" for f, n in held) or "no fault recorded"
        out.append(f"{init_frames} of {len(reports)} frames never left INIT ({why})")
    if not any(r.state is State.ACTIVE for r in reports):
        out.append("the policy never drove: no ACTIVE frame")
    return out


def fallback_stats(decisions: list[FrameReport]) -> dict[str, Any]:
    """The car stopped by the supervisor, counting the watchdog's decisions too: a camera that dies leaves
    no frames, so `fallback_frames` alone would say 0 while the car stood in a controlled stop.

    `watchdog_states`: watchdog decisions by state; `watchdog_fallback_ticks`: those not ACTIVE (a stop);
    `startup_ticks`: the watchdog's stops before the first frame (the safety node runs before the drive node's
    first command: the car was not driven yet, so these are no fallback); `fallback_decisions`: frames and
    watchdog ticks not ACTIVE from the first frame on; `fallback_s`: bag time from each such decision to the
    next decision (the last one ends the count).
    """
    ordered = sorted(decisions, key=lambda r: r.now_ns)
    ticks = [r for r in ordered if r.kind == "watchdog"]
    first = next((i for i, r in enumerate(ordered) if r.kind == "frame"), len(ordered))
    driven = ordered[first:]
    stopped_s = sum((nxt.now_ns - cur.now_ns) / 1e9 for cur, nxt in pairwise(driven) if cur.state is not State.ACTIVE)
    return {
        "watchdog_states": dict(sorted(Counter(r.state.value for r in ticks).items())),
        "watchdog_fallback_ticks": sum(1 for r in ticks if r.state is not State.ACTIVE),
        "startup_ticks": first,
        "fallback_decisions": sum(1 for r in driven if r.state is not State.ACTIVE),
        "fallback_s": round(stopped_s, 6),
    }


def write_stats(result: ReplayResult, path: Path) -> None:
    atomic_write_json(path, result.as_json(), indent=2, sort_keys=True)
