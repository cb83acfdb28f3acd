"""Reading what the parts wrote into the loop's summary: dataset index, training metrics, evaluations, replay.

Each function turns one part's output files into the plain numbers the report shows. They
are the only places that know those formats, so a format change touches one function.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from roadloop_cluster.loop.errors import LoopError
from roadloop_core.contract.dataset_index import read_dataset_index

__all__ = [
    "dataset_summary",
    "eval_summary",
    "read_json",
    "training_summary",
]


def read_json(path: Path, what: str) -> Any:
    """Load a part's JSON output; a missing or broken file is a LoopError naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LoopError(f"{path}: {what} was not written") from None
    except (OSError, ValueError) as err:
        raise LoopError(f"{path}: cannot read {what}: {err}") from err


def dataset_summary(dataset: Path) -> dict[str, Any]:
    """Counts from a dataset's index (read with the dataset index's own reader), as the report's JSON."""
    index = read_dataset_index(dataset)
    obs = index.observation
    return {
        "dataset_id": index.dataset_id,
        "train": index.splits["train"].count if "train" in index.splits else 0,
        "val": index.splits["val"].count if "val" in index.splits else 0,
        "bags": len(index.sources),
        "skipped": len(index.skipped),
        "drops": sum(index.drops.values()),
        "label": {"horizon": obs.label_horizon, "dt": obs.label_dt_s},
        "observation": obs.to_dict(),
    }


def _finite(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(float(v)) else None


def _tb_scalars(tb_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in a TensorBoard log folder (empty if there is none or it is unreadable)."""
    if not tb_dir.is_dir():
        return {}
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        return {}
    out: dict[str, list[tuple[int, float]]] = {}
    for events in sorted({p.parent for p in tb_dir.rglob("events.out.tfevents.*")}):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            out.setdefault(tag, []).extend((int(e.step), float(e.value)) for e in acc.Scalars(tag))
    return {k: sorted(v) for k, v in out.items()}


def _pick(scalars: dict[str, list[tuple[int, float]]], *needles: str) -> list[tuple[int, float]]:
    for needle in needles:
        for tag, series in scalars.items():
            if tag == needle:
                return series
    for needle in needles:
        for tag, series in scalars.items():
            if needle in tag:
                return series
    return []


def training_summary(run: Path) -> dict[str, Any]:
    """Curves (TensorBoard scalars) and final open-loop metrics (metrics.json) of a training run."""
    metrics = read_json(run / "metrics.json", "the training metrics")
    scalars = _tb_scalars(run / "tb")
    loss = _pick(scalars, "train/loss", "loss")
    val = _pick(scalars, "val/l2_3s", "val/policy/l2_3s", "l2_3s")
    cv = _pick(scalars, "val/constant_velocity/l2_3s", "baseline/constant_velocity/l2_3s", "constant_velocity/l2_3s")
    open_loop: dict[str, dict[str, float | None]] = {}
    keys = ("l2_1s", "l2_2s", "l2_3s", "ade", "fde")
    val_final = metrics.get("val") or {}
    open_loop["model"] = {k: _finite(val_final.get(k)) for k in keys}
    for name, m in (metrics.get("baselines") or {}).items():
        open_loop[name] = {k: _finite(m.get(k)) for k in keys}
    history = [h for h in metrics.get("history") or [] if _finite(h.get("l2_3s")) is not None]
    if history:  # per-epoch validation as the trainer recorded it
        epochs = [int(h.get("epoch", i)) + 1 for i, h in enumerate(history)]
        val_l2 = [float(h["l2_3s"]) for h in history]
    else:
        epochs, val_l2 = list(range(1, len(val) + 1)), [v for _, v in val]
    return {
        "steps": [s for s, _ in loss],
        "loss": [v for _, v in loss],
        "epochs": epochs,
        "val_l2_3s": val_l2,
        "cv_l2_3s": [v for _, v in cv],
        "open_loop": open_loop,
        "world_size": metrics.get("world_size"),
        "total_steps": metrics.get("steps"),
        "samples_per_s": _finite(metrics.get("samples_per_s")),
        "scalar_tags": sorted(scalars),
    }


COLLISIONS = ("collision_vehicle", "collision_static")  # the evaluator's infraction kinds that are collisions

_AGG_KEYS = {
    "ds": ("ds", "driving_score", "DS"),
    "rc": ("rc", "route_completion", "RC"),
    "ip": ("ip", "infraction_penalty", "IP"),
    "success": ("success_rate", "success", "sr"),
    "mean_speed": ("mean_speed",),
}


def _get(d: dict[str, Any], names: tuple[str, ...]) -> Any:
    for n in names:
        if n in d:
            return d[n]
    return None


def _counts(infractions: Any) -> dict[str, int]:
    """The evaluator's infraction counts by kind (a list of kinds in older reports counts nothing)."""
    if not isinstance(infractions, dict):
        return {}
    return {str(k): int(v) for k, v in infractions.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _episode_row(ep: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {
        k: _finite(_get(ep, names)) for k, names in _AGG_KEYS.items() if k not in ("success", "mean_speed")
    }
    row["scenario"] = ep.get("scenario")
    row["success"] = bool(ep.get("success"))
    row["seed"] = ep.get("seed")
    counts = _counts(ep.get("infractions"))
    row["infractions"] = sum(counts.values())
    row["collisions"] = sum(counts.get(k, 0) for k in COLLISIONS)
    route_m, rc = _finite(ep.get("route_length_m")), row.get("rc")
    row["km"] = route_m * rc / 100.0 / 1000.0 if route_m is not None and rc is not None else None
    why: list[str] = []
    if not row["success"]:  # why an episode failed: its infractions, else how it ended (e.g. timeout)
        infractions = ep.get("infractions") or {}
        if isinstance(infractions, dict):
            why = [f"{k}×{v}" if isinstance(v, int) and v > 1 else k for k, v in infractions.items() if v]
        else:
            why = [str(x) for x in infractions]
        end = ep.get("end_reason")
        if end and not why and not str(end).startswith("route_complete"):
            why.append(str(end))  # no infraction: it ended otherwise (timeout, stopped)
    row["why"] = ", ".join(why)
    return row


def _per_km(infractions: int, km: float) -> float:
    """Infractions per km of route completed, as the evaluator counts them (all of them when nothing was driven)."""
    return infractions / km if km > 0 else float(infractions)


def _by_scenario(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """DS, collisions and infractions per km of each scenario (the per-episode rows grouped)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(str(r["scenario"]), []).append(r)
    out = {}
    for name, rs in groups.items():
        ds = [r["ds"] for r in rs if r.get("ds") is not None]
        km = sum(r["km"] for r in rs if r.get("km") is not None)
        out[name] = {
            "episodes": len(rs),
            "ds": sum(ds) / len(ds) if ds else None,
            "collisions": sum(r["collisions"] for r in rs),
            "infractions_per_km": _per_km(sum(r["infractions"] for r in rs), km),
        }
    return out


def eval_summary(path: Path, name: str) -> dict[str, Any]:
    """Aggregate DS/RC/IP and per-episode rows from `roadloop sim eval --json` output."""
    data = read_json(path, "the closed-loop evaluation")
    agg = data.get("aggregate") or data.get("summary") or data
    episodes = [_episode_row(e) for e in (data.get("episodes") or [])]
    out: dict[str, Any] = {"name": name}
    for key, names in _AGG_KEYS.items():
        out[key] = _finite(_get(agg, names))
    if out["ip"] is not None and out["ip"] > 1.0:
        out["ip"] /= 100.0  # some report IP in percent
    if out["success"] is not None and out["success"] <= 1.0:
        out["success"] *= 100.0
    out["episodes"] = len(episodes) or agg.get("episodes")
    out["infractions_per_km"] = _finite(agg.get("infractions_per_km"))
    out["collisions"] = sum(_counts(agg.get("infractions")).get(k, 0) for k in COLLISIONS)
    out["by_scenario"] = _by_scenario(episodes)
    out["per_episode"] = episodes
    if out["ds"] is None:
        raise LoopError(f"{path}: no driving score in the evaluation output (keys: {sorted(agg)[:12]})")
    return out
