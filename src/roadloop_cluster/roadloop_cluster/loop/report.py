"""The loop's report: `report.md` with PNG figures beside it, written from the run's summary (`loop.json`).

The stages normalise what each part produced (training metrics, evaluation JSON, replay
stats) into the summary; this module only reads that summary, so it is pure over recorded
results and is tested on them. A failed run still gets a report: what finished, and which
stage stopped the loop and why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from roadloop_core.fsio import atomic_write_text, atomic_writer

__all__ = ["headline", "write_report"]

_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(float(value)) else float(value)


def _fmt(value: Any, digits: int = 1) -> str:
    v = _num(value)
    if v is None:
        return "–" if value is None else str(value)
    if v == int(v) and abs(v) >= 100:
        return f"{int(v)}"
    return f"{v:.{digits}f}"


def _save(fig: Any, path: Path) -> str:
    fig.tight_layout()
    atomic_writer(path, lambda f: fig.savefig(f, dpi=100, format="png"))
    plt.close(fig)
    return path.name


# -- figures ---------------------------------------------------------------------------------------


def _fig_stage_times(stages: Sequence[dict[str, Any]], out: Path) -> str | None:
    if not stages:
        return None
    names = [s["name"] for s in stages]
    secs = [float(s.get("seconds", 0.0)) for s in stages]
    colors = ["#2ca02c" if s.get("status") == "ok" else "#d62728" for s in stages]
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(names) + 1.2))
    ax.barh(range(len(names)), secs, color=colors)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    ax.set_title(f"Stage times (total {sum(secs):.0f} s)")
    return _save(fig, out / "stage_times.png")


def _fig_training(rounds: Sequence[dict[str, Any]], out: Path) -> str | None:
    curves = [(r["round"], r.get("training") or {}) for r in rounds]
    curves = [(n, t) for n, t in curves if t.get("loss")]
    if not curves:
        return None
    has_val = any(t.get("val_l2_3s") for _, t in curves)
    fig, axes = plt.subplots(1, 2 if has_val else 1, figsize=(11 if has_val else 6, 3.8), squeeze=False)
    ax = axes[0][0]
    for i, (n, t) in enumerate(curves):
        steps = t.get("steps") or list(range(1, len(t["loss"]) + 1))
        ax.plot(steps, t["loss"], color=_COLORS[i % len(_COLORS)], label=f"round {n}")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_yscale("log")
    ax.set_title("Training loss")
    ax.legend()
    if has_val:
        ax = axes[0][1]
        for i, (n, t) in enumerate(curves):
            vals = t.get("val_l2_3s") or []
            if vals:
                epochs = t.get("epochs") or list(range(1, len(vals) + 1))
                ax.plot(epochs, vals, "o-", color=_COLORS[i % len(_COLORS)], label=f"round {n} model")
            cv = t.get("cv_l2_3s") or []
            if cv:
                epochs = t.get("epochs") or list(range(1, len(cv) + 1))
                ax.plot(epochs, cv, "--", color=_COLORS[i % len(_COLORS)], alpha=0.6, label=f"round {n} const. vel.")
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation L2 @ 3 s (m)")
        ax.set_yscale("log")
        ax.set_title("Open-loop validation")
        ax.legend(fontsize=8)
    return _save(fig, out / "training.png")


_OPEN_LOOP_KEYS = ("l2_1s", "l2_2s", "l2_3s")


def _fig_open_loop(rounds: Sequence[dict[str, Any]], out: Path) -> str | None:
    bars: list[tuple[str, list[float]]] = []
    for r in rounds:
        ol = (r.get("training") or {}).get("open_loop") or {}
        for who, metrics in ol.items():
            got = [_num(metrics.get(k)) for k in _OPEN_LOOP_KEYS]
            clean = [v for v in got if v is not None]
            if len(clean) == len(_OPEN_LOOP_KEYS):
                bars.append((f"R{r['round']} {who}", clean))
    if not bars:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / len(bars)
    for i, (label, vals) in enumerate(bars):
        xs = [j + (i - (len(bars) - 1) / 2) * width for j in range(3)]
        ax.bar(xs, vals, width, label=label, color=_COLORS[i % len(_COLORS)])
    ax.set_xticks(range(3), ["L2 @ 1 s", "L2 @ 2 s", "L2 @ 3 s"])
    ax.set_ylabel("metres (lower is better)")
    ax.set_title("Open-loop L2 on the validation split, model vs baselines")
    ax.legend(fontsize=8)
    return _save(fig, out / "open_loop.png")


def _closed_loop_rows(rounds: Sequence[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    rows: list[tuple[str, dict[str, Any]]] = []
    for r in rounds:
        gate = r.get("gate") or {}
        for role in ("incumbent", "candidate"):
            m = gate.get(role)
            if m:
                rows.append((f"R{r['round']} gate: {m.get('name', role)}", m))
        drive = r.get("drive")
        if drive and drive.get("ds") is not None:
            rows.append((f"R{r['round']} drive: {drive.get('model', 'installed')}", drive))
        inter = r.get("interventions") or {}
        if inter.get("ds") is not None:
            rows.append((f"R{r['round']} fleet: {inter.get('model', 'policy')}", inter))
    return rows


def _fig_closed_loop(rounds: Sequence[dict[str, Any]], out: Path) -> str | None:
    rows = _closed_loop_rows(rounds)
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.6))
    keys = (("ds", "DS"), ("rc", "RC %"), ("ip", "IP × 100"))
    height = 0.8 / len(keys)
    for k, (key, label) in enumerate(keys):
        vals = []
        for _, m in rows:
            v = _num(m.get(key)) or 0.0
            vals.append(v * 100 if key == "ip" and v <= 1.0 else v)
        ys = [i + (k - 1) * height for i in range(len(rows))]
        ax.barh(ys, vals, height, label=label, color=_COLORS[k])
    ax.set_yticks(range(len(rows)), [name for name, _ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 105)
    ax.set_xlabel("score (0–100)")
    ax.set_title("Closed loop: driving score, route completion, infraction penalty")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, out / "closed_loop.png")


def _fig_latency(rounds: Sequence[dict[str, Any]], out: Path) -> str | None:
    series = [(r["round"], (r.get("latency") or {}).get("samples_ms") or []) for r in rounds]
    series = [(n, s) for n, s in series if s]
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.6))
    hi = max(max(s) for _, s in series)
    bins = [hi * i / 40 for i in range(41)] if hi > 0 else 10
    for i, (n, s) in enumerate(series):
        ax.hist(s, bins=bins, alpha=0.6, color=_COLORS[i % len(_COLORS)], label=f"round {n} ({len(s)} frames)")
    ax.set_xlabel("whole-frame latency (ms): sync, preprocessing, inference, control, safety")
    ax.set_ylabel("frames")
    ax.set_title("Onboard pipeline latency (replay of a recorded bag)")
    ax.legend(fontsize=8)
    return _save(fig, out / "latency.png")


# -- text ------------------------------------------------------------------------------------------


def headline(summary: dict[str, Any]) -> list[str]:
    """The report's first lines: did round 1 beat lanekeep, did round 2 improve, and why not if not."""
    lines: list[str] = []
    rounds = summary.get("rounds") or []
    for r in rounds:
        gate = r.get("gate") or {}
        cand, inc = gate.get("candidate"), gate.get("incumbent")
        if not (cand and inc):
            continue
        c, i = _num(cand.get("ds")), _num(inc.get("ds"))
        won = bool(gate.get("published"))
        verdict = "beat" if won else "did NOT beat"
        line = (
            f"Round {r['round']}: the candidate ({cand.get('name')}) {verdict} {inc.get('name')} closed loop: "
            f"DS {_fmt(c)} vs {_fmt(i)}"
        )
        diff = gate.get("difference")
        if won and diff:
            line += f", {_difference(diff)}, lower bound above the margin {_fmt(gate.get('margin'))}"
        line += " — published to production." if won else " — not published; production kept."
        if not won and gate.get("reason"):
            line += f" Why: {gate['reason']}"
        lines.append(line)
    if summary.get("status") == "interrupted":
        lines.append("The loop was INTERRUPTED (Ctrl-C or SIGTERM); everything made until then is kept.")
    if summary.get("status") == "failed":
        error = str(summary.get("error") or "")
        lines.append(f"The loop STOPPED at stage '{summary.get('failed_stage')}': {error}")
    return lines


def _difference(diff: dict[str, Any]) -> str:
    """'paired DS difference +0.6 over 32 episodes, 95 % CI [-3.1, +4.2]'."""
    conf = _num(diff.get("confidence")) or 0.95
    return (
        f"paired DS difference {_signed(diff.get('mean'))} over {diff.get('n')} episodes, {100 * conf:.0f} % CI "
        f"[{_signed(diff.get('low'))}, {_signed(diff.get('high'))}]"
    )


def _count(value: Any) -> str:
    v = _num(value)
    return "–" if v is None else str(int(v))


def _signed(value: Any) -> str:
    v = _num(value)
    return "–" if v is None else f"{v:+.1f}"


def _gate_tables(rounds: Sequence[dict[str, Any]]) -> list[str]:
    """Per gate: both drivers side by side on the same episodes (per-scenario DS, infractions/km, collisions) and
    the confidence interval that decided."""
    md: list[str] = []
    for r in rounds:
        gate = r.get("gate") or {}
        cand, inc, diff = gate.get("candidate"), gate.get("incumbent"), gate.get("difference")
        if not (cand and inc):
            continue
        scenarios = list(dict.fromkeys([*(cand.get("by_scenario") or {}), *(inc.get("by_scenario") or {})]))
        md += [f"### Round {r['round']}: {cand.get('name')} vs {inc.get('name')} ({cand.get('episodes')} episodes)", ""]
        head = ["DS", *[f"DS {s}" for s in scenarios], "RC (%)", "IP", "infractions/km", "collisions",
                *[f"collisions {s}" for s in scenarios], "success (%)"]  # fmt: skip
        md += ["| | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
        for role, m in (("candidate", cand), ("incumbent", inc)):
            per = m.get("by_scenario") or {}
            ds = [_fmt((per.get(s) or {}).get("ds")) for s in scenarios]
            collisions = [_count((per.get(s) or {}).get("collisions")) for s in scenarios]
            cells = [_fmt(m.get("ds")), *ds, _fmt(m.get("rc")), _fmt(m.get("ip"), 3),
                     _fmt(m.get("infractions_per_km"), 2), _count(m.get("collisions")), *collisions,
                     _fmt(m.get("success"))]  # fmt: skip
            md.append(f"| {role}: {m.get('name')} | " + " | ".join(cells) + " |")
        md.append("")
        if diff:
            verdict = "**published**" if gate.get("published") else "**refused**"
            md += [
                f"P{_difference(diff)[1:]} (candidate − incumbent, per episode), from "
                f"{diff.get('resamples')} bootstrap resamples of the pairs (seed {diff.get('seed')}). Publishing "
                f"needs the lower bound above the margin {_fmt(gate.get('margin'))}: {verdict}.",
                "",
            ]
    return md


def _stage_numbers(numbers: dict[str, Any]) -> str:
    parts = []
    for k, v in numbers.items():
        if isinstance(v, (dict, list)):
            continue
        parts.append(f"{k}={_fmt(v, 2) if isinstance(v, float) else v}")
    return ", ".join(parts)


def _open_loop_table(rounds: Sequence[dict[str, Any]]) -> list[str]:
    rows = []
    for r in rounds:
        ol = (r.get("training") or {}).get("open_loop") or {}
        for who, m in ol.items():
            rows.append(f"| {r['round']} | {who} | " + " | ".join(_fmt(m.get(k), 2) for k in _OPEN_LOOP_KEYS) + " |")
    if not rows:
        return ["(no open-loop metrics were recorded)"]
    return ["| round | model | L2 @ 1 s (m) | L2 @ 2 s (m) | L2 @ 3 s (m) |", "|---|---|---|---|---|", *rows]


def _closed_loop_table(rounds: Sequence[dict[str, Any]]) -> list[str]:
    rows = _closed_loop_rows(rounds)
    if not rows:
        return ["(no closed-loop evaluation was recorded)"]
    out = ["| round / where: model | DS | RC (%) | IP | success (%) | episodes |", "|---|---|---|---|---|---|"]
    for name, m in rows:
        out.append(
            f"| {name} | {_fmt(m.get('ds'))} | {_fmt(m.get('rc'))} | {_fmt(m.get('ip'), 3)} | "
            f"{_fmt(m.get('success'))} | {m.get('episodes', '–')} |"
        )
    return out


def _dagger_section(rounds: Sequence[dict[str, Any]]) -> list[str]:
    rows = [(r["round"], r["dagger"]) for r in rounds if r.get("dagger")]
    if not rows:
        return []
    md = [
        "## DAgger: the policy drives, the expert labels every state",
        "",
        "Every labelled state went into the aggregated dataset; a state can be of several kinds (failure: "
        "within 3 s before an infraction; near miss: a vehicle ahead within 0.8 s headway or 2.5 s to collision; "
        "disagreement: the policy's command ≥ 0.05 rad or 2 m/s from the expert's).",
        "",
        "| round | driver | beta | episodes | DS (mixed drive) | collisions | labelled states | failure | near miss "
        "| disagreement | other | expert drove |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, d in rows:
        c = d.get("labelled") or {}
        md.append(
            f"| {n} | {d.get('model')} | {_fmt(d.get('beta'), 2)} | {d.get('episodes')} | {_fmt(d.get('ds'))} "
            f"| {d.get('collisions')} | {c.get('states')} | {c.get('failure')} | {c.get('near_miss')} "
            f"| {c.get('disagreement')} | {c.get('other')} | {c.get('expert_drove')} |"
        )
    return [*md, ""]


def _evaluation_section(ev: dict[str, Any]) -> list[str]:
    if not ev:
        return []
    r = ev.get("ratio_to_expert") or {}
    baselines = [k.removeprefix("gain_over_") for k in ev if k.startswith("gain_over_")]  # as the stage wrote them
    drivers = [ev.get("model") or {}, ev.get("expert") or {}, *(ev[b] for b in baselines)]
    gains = []
    for b in baselines:
        g = ev.get(f"gain_over_{b}") or {}
        verdict = "significant" if float(g.get("low") or 0) > 0 else "not significant"
        gains.append(
            f"- DS gain over {b}: {_signed(g.get('mean'))}, "
            f"95 % CI [{_signed(g.get('low'))}, {_signed(g.get('high'))}] ({verdict})."
        )
    return [
        "## Held-out evaluation",
        "",
        f"{ev.get('episodes')} episodes never trained or gated on (base seed {ev.get('seed')}).",
        "",
        "| driver | DS | RC | collisions |",
        "|---|---|---|---|",
        *(f"| {d.get('name')} | {_fmt(d.get('ds'))} | {_fmt(d.get('rc'))} | {d.get('collisions')} |" for d in drivers),
        "",
        f"- DS of the model / DS of the expert: **{_fmt(r.get('mean'), 3)}**, 95 % paired bootstrap CI "
        f"[{_fmt(r.get('low'), 3)}, {_fmt(r.get('high'), 3)}] (target ≥ 0.9).",
        *gains,
        f"- Episodes with a collision: {100 * float(ev.get('collision_rate') or 0):.1f} % (target ≤ 5 %).",
        "",
    ]


def _rounds_table(rounds: Sequence[dict[str, Any]]) -> list[str]:
    """DS per round with the gate's paired CI: the curve the loop exists for."""
    rows = [r for r in rounds if r.get("gate")]
    if not rows:
        return []
    md = [
        "## Round by round",
        "",
        "| round | data (train samples) | init | candidate DS | incumbent | incumbent DS | DS gain [95 % CI] "
        "| collisions (cand / inc) | published |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        g, ds, tr = r["gate"], r.get("dataset") or {}, r.get("training") or {}
        c, i, d = g.get("candidate") or {}, g.get("incumbent") or {}, g.get("difference") or {}
        md.append(
            f"| {r['round']} | {ds.get('train', '?')} | {'fine-tune' if tr.get('init_from') else 'scratch'} "
            f"| {_fmt(c.get('ds'))} | {i.get('name', '?')} | {_fmt(i.get('ds'))} "
            f"| {_signed(d.get('mean'))} [{_signed(d.get('low'))}, {_signed(d.get('high'))}] "
            f"| {c.get('collisions', '?')} / {i.get('collisions', '?')} | {'yes' if g.get('published') else 'no'} |"
        )
    return [*md, ""]


def write_report(summary: dict[str, Any], out: Path) -> Path:
    """Write `out/report.md` and its figures from a loop summary; returns the report's path."""
    out.mkdir(parents=True, exist_ok=True)
    rounds: list[dict[str, Any]] = list(summary.get("rounds") or [])
    stages: list[dict[str, Any]] = list(summary.get("stages") or [])
    md: list[str] = ["# roadloop fleet loop — report", ""]
    status = summary.get("status", "unknown")
    md.append(
        f"Status: **{status}** · wall time {_fmt(summary.get('wall_s'), 0)} s · "
        f"{len(stages)} stages · written by `roadloop loop`."
    )
    md.append("")
    md.extend(f"- {line}" for line in headline(summary))
    md.append("")

    md += ["## Stages", "", "| # | stage | what | status | time (s) | numbers |", "|---|---|---|---|---|---|"]
    for i, s in enumerate(stages, 1):
        numbers = _stage_numbers(s.get("numbers") or {})
        if s.get("error"):
            numbers = f"**{s['error']}**"
        md.append(
            f"| {i} | `{s['name']}` | {s.get('title', '')} | {s.get('status')} | {_fmt(s.get('seconds'))} | {numbers} |"
        )
    md.append("")
    fig = _fig_stage_times(stages, out)
    if fig:
        md += [f"![stage times]({fig})", ""]

    md += ["## Training", ""]
    for r in rounds:
        ds = r.get("dataset") or {}
        if ds:
            md.append(
                f"- Round {r['round']}: dataset `{ds.get('dataset_id', '?')}` from {ds.get('bags', '?')} bags "
                f"({ds.get('interventions', 0)} intervention bags, {ds.get('dagger', 0)} DAgger bags): "
                f"{ds.get('train', '?')} train / "
                f"{ds.get('val', '?')} val samples."
            )
    fig = _fig_training(rounds, out)
    md += ["", f"![training curves]({fig})" if fig else "(no training curves were recorded)", ""]

    md += ["## Open loop: L2 at 1/2/3 s against the baselines", ""]
    md += _open_loop_table(rounds)
    md.append("")
    md.append(
        "Open-loop L2 compares predicted and recorded future positions on the validation split; "
        "constant velocity and an ego-status-only MLP are computed on the same samples."
    )
    fig = _fig_open_loop(rounds, out)
    if fig:
        md += ["", f"![open-loop L2]({fig})"]
    md.append("")

    md += ["## Closed loop: DS, RC, IP per model and round", ""]
    md += _closed_loop_table(rounds)
    md.append("")
    md.append(
        "DS = mean over episodes of RC × IP (CARLA Leaderboard definitions mapped onto the simulator). "
        "A gate's incumbent and candidate drive the same episodes (scenario and seed); the drive and fleet rows "
        "use episodes of their own (config/loop.yaml; setup checks that training, gate and evaluation episodes "
        "are disjoint)."
    )
    for r in rounds:
        gate = r.get("gate") or {}
        if gate.get("note"):
            md.append(f"- Round {r['round']} gate: {gate['note']}.")
        if gate and not gate.get("published") and gate.get("reason"):
            md.append(f"- Round {r['round']} gate refused the candidate: {gate['reason']}.")
    fig = _fig_closed_loop(rounds, out)
    if fig:
        md += ["", f"![closed loop]({fig})"]
    md.append("")

    gates = _gate_tables(rounds)
    if gates:
        md += ["## The gate: candidate and incumbent on the same episodes", "", *gates]

    for r in rounds:
        inter = r.get("interventions") or {}
        if inter:
            md += [
                f"## Round {r['round']}: interventions",
                "",
                f"The policy {inter.get('model', '')} drove {inter.get('episodes', '?')} episodes; "
                f"{inter.get('failed', '?')} failed "
                "(collision, off-road, invalid command or route not finished) and were flagged as interventions; "
                f"the expert took over before each failure and its corrections ({inter.get('corrections', '?')} bags) "
                "were shipped with priority and added to the data.",
                "",
            ]
            failed = inter.get("failed_episodes") or []
            if failed:
                md += ["| scenario | seed | DS | why |", "|---|---|---|---|"]
                md += [
                    f"| {e.get('scenario')} | {e.get('seed')} | {_fmt(e.get('ds'))} | {e.get('why', '')} |"
                    for e in failed
                ]
                md.append("")

    md += _dagger_section(rounds)
    md += _rounds_table(rounds)
    md += _evaluation_section(summary.get("evaluation") or {})

    md += ["## Example driven paths", ""]
    any_paths = False
    for r in rounds:
        # the evaluator draws each episode's path over the road (and a summary): the report links them
        for img in (r.get("drive") or {}).get("plots") or []:
            any_paths = True
            md += [f"![round {r['round']} evaluator plot]({img})", ""]
    if not any_paths:
        md += ["(no driven paths were recorded)", ""]

    md += ["## Onboard latency", ""]
    for r in rounds:
        lat = r.get("latency") or {}
        if lat:
            md.append(
                f"- Round {r['round']}: {lat.get('frames', len(lat.get('samples_ms') or []))} frames, "
                f"p50 {_fmt(lat.get('p50_ms'), 2)} ms, p99 {_fmt(lat.get('p99_ms'), 2)} ms, "
                f"real-time factor {_fmt(lat.get('realtime_factor'))}×, fallbacks {lat.get('fallbacks', '–')}."
            )
    fig = _fig_latency(rounds, out)
    md += ["", f"![latency histogram]({fig})" if fig else "(no latency samples were recorded)", ""]

    notes = summary.get("notes") or []
    if notes:
        md += ["## Notes", "", *[f"- {n}" for n in notes], ""]

    path = out / "report.md"
    atomic_write_text(path, "\n".join(md) + "\n")
    return path
