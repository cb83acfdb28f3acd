"""Why the gate refused a candidate, in words for the report (from the two evaluation summaries)."""

from __future__ import annotations

from typing import Any

__all__ = ["refusal_reason"]


def refusal_reason(cand: dict[str, Any], inc: dict[str, Any], margin: float) -> str:
    """One sentence: the scores, then what the candidate did worse (route, infractions, failure kinds, speed)."""
    parts = [f"DS {cand['ds']:.1f} is not above {inc['name']}'s {inc['ds']:.1f} + margin {margin:.1f}"]
    if cand.get("rc") is not None and inc.get("rc") is not None and cand["rc"] < inc["rc"]:
        parts.append(f"it completes less of the route (RC {cand['rc']:.1f} vs {inc['rc']:.1f})")
    if cand.get("ip") is not None and inc.get("ip") is not None and cand["ip"] < inc["ip"]:
        parts.append(f"it commits more infractions (IP {cand['ip']:.2f} vs {inc['ip']:.2f})")
    failed = [e for e in cand.get("per_episode", []) if e.get("why")]
    kinds: dict[str, int] = {}
    for e in failed:
        for k in str(e["why"]).split(", "):
            kinds[k] = kinds.get(k, 0) + 1
    if kinds:
        parts.append(
            f"{len(failed)} of {len(cand.get('per_episode', []))} episodes failed ("
            + ", ".join(f"{k} in {v}" for k, v in sorted(kinds.items())) + ")"
        )  # fmt: skip
    cs, is_ = cand.get("mean_speed"), inc.get("mean_speed")
    if cs is not None and is_ is not None and cs > is_ + 1.0 and "collision_vehicle" in kinds:
        parts.append(
            f"it drives faster than {inc['name']} ({cs:.1f} vs {is_:.1f} m/s mean) into the vehicles ahead: "
            "car following is not learned well enough from these demonstrations"
        )
    return "; ".join(parts)
