"""/diagnostics content: one DiagnosticStatus for the safety state, one for the model (deterministic only)."""

from __future__ import annotations

from roadloop_vehicle.models.manager import ModelEvent
from roadloop_vehicle.safety.supervisor import SafetyOutput, State

__all__ = ["LEVEL_ERROR", "LEVEL_OK", "LEVEL_WARN", "Status", "model_status", "safety_status"]

LEVEL_OK, LEVEL_WARN, LEVEL_ERROR = 0, 1, 2
Status = tuple[int, str, str, dict[str, str]]  # level, name, message, key/values


def safety_status(out: SafetyOutput) -> Status:
    level = {State.ACTIVE: LEVEL_OK, State.FALLBACK: LEVEL_ERROR}.get(out.state, LEVEL_WARN)
    return (
        level,
        "roadloop/safety",
        out.reason or out.state.value,
        {"state": out.state.value, "faults": ",".join(out.faults)},
    )


def model_status(model: str | None, events: list[ModelEvent]) -> Status:
    values = {"active": model or ""}
    for i, ev in enumerate(events):
        values[f"event{i}"] = f"{ev.kind} {ev.label}: {ev.reason}" if ev.reason else f"{ev.kind} {ev.label}"
    bad = model is None or any(ev.kind in ("refused", "rolled_back") for ev in events)
    return (LEVEL_WARN if bad else LEVEL_OK), "roadloop/model", model or "no model loaded", values
