"""The gate's verdict in words for the report (from the decision and the two evaluation summaries)."""

from __future__ import annotations

from typing import Any

from roadloop_cluster.loop.gate_decision import GateDecision

__all__ = ["difference_line", "refusal_reason"]


def difference_line(d: GateDecision) -> str:
    """E.g. 'paired DS difference +0.6 over 32 episodes, 95 % CI [-3.1, +4.2]'."""
    ci = d.difference
    return (
        f"paired DS difference {ci.mean:+.1f} over {ci.n} episodes, {100 * ci.confidence:.0f} % CI "
        f"[{ci.low:+.1f}, {ci.high:+.1f}]"
    )


def refusal_reason(d: GateDecision, cand: dict[str, Any], inc: dict[str, Any]) -> str:
    """One sentence: the statistics first, then what the candidate did worse (route, infractions, failures, speed)."""
    ci = d.difference
    if ci.high <= d.margin:
        verdict = f"not better than {inc['name']}"
    else:
        verdict = f"not significantly better than {inc['name']}: the CI's lower bound is not above the margin"
    parts = [f"{difference_line(d)}, margin {d.margin:.1f}: {verdict} (DS {cand['ds']:.1f} vs {inc['ds']:.1f})"]
    if cand.get("rc") is not None and inc.get("rc") is not None and round(cand["rc"], 1) < round(inc["rc"], 1):
        parts.append(f"it completes less of the route (RC {cand['rc']:.1f} vs {inc['rc']:.1f})")
    if cand.get("ip") is not None and inc.get("ip") is not None and round(cand["ip"], 2) < round(inc["ip"], 2):
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
