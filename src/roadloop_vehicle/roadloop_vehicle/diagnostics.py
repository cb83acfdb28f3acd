"""/diagnostics content shared by the nodes and the pipeline (deterministic values only, no latencies)."""

from __future__ import annotations

from roadloop_vehicle.model_manager.manager import ModelEvent

__all__ = ["LEVEL_ERROR", "LEVEL_OK", "LEVEL_WARN", "Status", "model_status"]

LEVEL_OK, LEVEL_WARN, LEVEL_ERROR = 0, 1, 2
Status = tuple[int, str, str, dict[str, str]]  # level, name, message, key/values


def model_status(model: str | None, events: list[ModelEvent]) -> Status:
    """`roadloop/model`: the model driving, and what happened to bundles since the last report."""
    values = {"active": model or ""}
    for i, ev in enumerate(events):
        values[f"event{i}"] = f"{ev.kind} {ev.label}: {ev.reason}" if ev.reason else f"{ev.kind} {ev.label}"
    bad = model is None or any(ev.kind in ("refused", "rolled_back", "fell_back") for ev in events)
    return (LEVEL_WARN if bad else LEVEL_OK), "roadloop/model", model or "no model loaded", values
