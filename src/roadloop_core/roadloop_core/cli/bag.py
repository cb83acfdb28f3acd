"""`roadloop bag info|check|reindex|plot`: look into, verify, repair and plot rosbag2 bags (sqlite3, mcap)."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from roadloop_core.bag import BagInfo, open_bag
from roadloop_core.bag.metadata import load_untrusted_yaml
from roadloop_core.bag.reindex import reindex_bag
from roadloop_core.errors import BagError, RoadloopError

__all__ = ["app", "config_distro", "qos_summary"]

app = typer.Typer(
    help="Inspect, verify and repair rosbag2 bags (sqlite3 and mcap, Humble..Kilted).",
    no_args_is_help=True,
    add_completion=False,
)

PATH_HELP = "Bag folder (with metadata.yaml), or a single .mcap/.db3 file."
DISTRO_HELP = "Typestore used to decode known types (jazzy or humble; default: config/topics.yaml's typestore)."
REINDEX_DISTRO_HELP = (
    "ROS distro whose rosbag2 must read the bag: humble writes metadata version 5, jazzy version 9 "
    "(default: what the bag says of itself, else config/topics.yaml's typestore)."
)


def config_distro() -> str:
    """The distro config/topics.yaml names (its typestore); jazzy when the config cannot be read.

    A bag tool must still work on a machine (or a copied bag) without a readable roadloop config.
    """
    try:
        from roadloop_core.config import config_dir
        from roadloop_core.registry import load_registry

        return load_registry(config_dir() / "topics.yaml").typestore
    except RoadloopError:
        return "jazzy"


_NAMES = {
    "reliability": {1: "reliable", 2: "best_effort", 0: "system_default", 3: "unknown"},
    "durability": {1: "transient_local", 2: "volatile", 0: "system_default", 3: "unknown"},
    "history": {1: "keep_last", 2: "keep_all", 0: "system_default", 3: "unknown"},
}


def qos_summary(text: str) -> list[dict[str, Any]]:
    """The offered QoS profiles of a topic as plain dicts (reliability, durability, history, depth)."""
    try:  # QoS text comes from the bag: parsed with bounded cost, like all bag metadata
        items = load_untrusted_yaml(text, "offered_qos_profiles", max_bytes=1 << 20, max_nodes=100_000) if text else []
    except BagError:
        return []
    out = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        row: dict[str, Any] = {}
        for key, names in _NAMES.items():
            v = item.get(key)
            row[key] = names.get(v, str(v)) if isinstance(v, int) else str(v)
        row["depth"] = item.get("depth")
        out.append(row)
    return out


def _stamp(ns: int) -> str:
    when = datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return f"{when} UTC ({ns // 1_000_000_000}.{ns % 1_000_000_000:09d})"


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{n} B"
        size /= 1024
    return f"{n} B"


def _compression(info: BagInfo) -> str:
    if info.compression_mode:
        return f"{info.compression_format} ({info.compression_mode})"
    if info.chunk_compression:
        return f"{info.chunk_compression} (mcap chunks)"
    return "none"


def info_dict(info: BagInfo, problems: list[str]) -> dict[str, Any]:
    return {
        "path": str(info.path),
        "storage": info.storage,
        "version": info.version,
        "ros_distro": info.ros_distro,
        "ros_distro_inferred": info.ros_distro_inferred,
        "files": [str(f) for f in info.files],
        "size_bytes": info.size_bytes,
        "compression_mode": info.compression_mode,
        "compression_format": info.compression_format,
        "chunk_compression": info.chunk_compression,
        "start_ns": info.start_ns,
        "end_ns": info.end_ns,
        "duration_s": info.duration_s,
        "message_count": info.message_count,
        "topics": [
            {
                "name": t.name,
                "type": t.type,
                "message_count": t.message_count,
                "serialization_format": t.serialization_format,
                "qos": qos_summary(t.offered_qos_profiles),
            }
            for t in info.topics
        ],
        "custom_data": info.custom_data,
        "problems": problems,
    }


@app.command("info")
def info_cmd(
    path: Path = typer.Argument(..., help=PATH_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of text."),
    distro: str | None = typer.Option(None, "--distro", help=DISTRO_HELP),
) -> None:
    """Storage, metadata version and distro, compression, duration, start/end, per topic type, count and QoS.

    Problems found while opening (metadata vs the files' own indexes, a damaged mcap summary) are
    printed one per line and make the exit status 1.
    """
    with open_bag(path, distro or config_distro()) as bag:
        info, problems = bag.info, list(bag.problems)
    if as_json:
        print(json.dumps(info_dict(info, problems)))
        if problems:
            raise typer.Exit(1)
        return
    rows = [
        ("Files", ", ".join(f.name for f in info.files)),
        ("Bag size", _size(info.size_bytes)),
        ("Storage id", f"{info.storage}" + (f" (metadata version {info.version})" if info.version else "")),
        ("ROS distro", _distro_text(info)),
        ("Compression", _compression(info)),
        ("Duration", f"{info.duration_s:.3f} s"),
        ("Start", _stamp(info.start_ns) if info.message_count else "-"),
        ("End", _stamp(info.end_ns) if info.message_count else "-"),
        ("Messages", str(info.message_count)),
    ]
    for k, v in rows:
        print(f"{k + ':':<14}{v}")
    print("Topics:")
    width = max((len(t.name) for t in info.topics), default=0)
    for t in info.topics:
        qos = qos_summary(t.offered_qos_profiles)
        q = "; ".join(f"{p['reliability']}, {p['durability']}, {p['history']}({p['depth']})" for p in qos) or "-"
        print(f"  {t.name:<{width}}  {t.type}  count={t.message_count}  format={t.serialization_format}  qos: {q}")
    for k, v in sorted(info.custom_data.items()):
        print(f"Custom data:  {k}={v}")
    for p in problems:
        print(f"PROBLEM: {p}")
    if problems:
        raise typer.Exit(1)


def _distro_text(info: BagInfo) -> str:
    if not info.ros_distro:
        return "-"
    if info.ros_distro_inferred:
        return f"{info.ros_distro} (metadata version {info.version} is what its rosbag2 writes)"
    return info.ros_distro


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
        disable=not sys.stderr.isatty(),
    )


@app.command("check")
def check_cmd(
    path: Path = typer.Argument(..., help=PATH_HELP),
    distro: str | None = typer.Option(None, "--distro", help=DISTRO_HELP),
) -> None:
    """Read and decode every message (mcap chunks CRC-checked); exit 0 only if all decode and every count agrees.

    What was read is compared with metadata.yaml and with each file's own index: a damaged chunk, a
    short read or a count mismatch is a PROBLEM line and exit 1.
    """
    decoded: dict[str, int] = {}
    failed: dict[str, int] = {}
    first_error: dict[str, str] = {}
    with open_bag(path, distro or config_distro()) as bag, _progress() as progress:
        info = bag.info
        task = progress.add_task("decoding", total=info.message_count)
        stopped = ""
        try:
            for raw in bag.messages():
                try:
                    bag.decode(raw)
                    decoded[raw.topic] = decoded.get(raw.topic, 0) + 1
                except Exception as exc:  # a decode failure is a finding of the check, not a crash
                    failed[raw.topic] = failed.get(raw.topic, 0) + 1
                    first_error.setdefault(raw.topic, str(exc))
                progress.advance(task)
        except BagError as err:  # damage met while reading: the check's finding, with what was read before it
            stopped = str(err)
        bag.verify_files()
        problems = list(bag.problems)
        if stopped and stopped not in problems:
            problems.append(f"reading stopped: {stopped}")
        read = sum(decoded.values()) + sum(failed.values())
        if read != info.message_count:
            problems.append(
                f"{path}: {read} message(s) read, but the bag holds {info.message_count} by its index and metadata"
            )
    width = max((len(t.name) for t in info.topics), default=0)
    print(f"{'topic':<{width}}  {'decoded':>8}  {'undecodable':>11}  type")
    for t in info.topics:
        print(f"{t.name:<{width}}  {decoded.get(t.name, 0):>8}  {failed.get(t.name, 0):>11}  {t.type}")
    for topic, why in first_error.items():
        print(f"UNDECODABLE {topic}: {why}")
    for p in problems:
        print(f"PROBLEM: {p}")
    total_ok, total_bad = sum(decoded.values()), sum(failed.values())
    verdict = "OK" if not total_bad and not problems else "FAILED"
    print(f"{verdict}: {total_ok} decoded, {total_bad} undecodable, {len(problems)} problem(s)")
    if verdict != "OK":
        raise typer.Exit(1)


@app.command("reindex")
def reindex_cmd(
    path: Path = typer.Argument(..., help="Bag folder whose metadata.yaml is missing or stale."),
    distro: str | None = typer.Option(None, "--distro", help=REINDEX_DISTRO_HELP),
) -> None:
    """Rebuild metadata.yaml from what the storage files verifiably hold; finish what a killed writer left.

    Every file is read through (mcap chunks CRC-checked) and only counts that were read are written;
    a file that cannot be read to its end is refused (exit 2, nothing written). `*.mcap.active` files
    of a killed writer are rewritten as complete `.mcap` files up to their last intact chunk; a
    `.mcap` with a damaged summary is rewritten with a fresh one. metadata.yaml that already agrees
    is left byte-for-byte unchanged.
    """
    target = Path(path) / "metadata.yaml"
    before = target.read_bytes() if target.is_file() else None
    with _progress() as progress:
        task = progress.add_task("reindex", total=None)

        def report(what: str, done: int, total: int) -> None:
            progress.update(task, description=what, completed=done, total=total)

        meta, recovered = reindex_bag(path, report, distro=distro, default_distro=config_distro())
    for r in recovered:
        if r.action == "removed":
            print(f"removed {r.source.name}: {r.stopped_by}")
        elif r.action == "repaired":
            print(f"repaired {r.source.name}: rewrote its damaged summary, {r.messages} messages verified and kept")
        else:
            tail = f" (stopped at damaged tail: {r.stopped_by})" if r.stopped_by else ""
            print(f"recovered {r.source.name} -> {r.target.name}: {r.messages} messages{tail}")
    summary = (
        f"{len(meta.relative_file_paths)} file(s), {len(meta.topics)} topic(s), {meta.message_count} messages, "
        f"metadata version {meta.version}"
    )
    if before is not None and target.read_bytes() == before:
        print(f"{target} already agrees with the storage files ({summary}); left unchanged")
    else:
        print(f"wrote {target}: {summary}")


@app.command("plot")
def plot_cmd(
    path: Path = typer.Argument(..., help=PATH_HELP),
    out: Path = typer.Option(Path("bag-rates.png"), "--out", "-o", help="PNG to write."),
    bins: int = typer.Option(200, "--bins", min=10, max=5000, help="Time bins across the bag's duration."),
) -> None:
    """Plot each topic's message rate over the bag's time (gaps and rate drops at a glance)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # the vehicle image may ship without matplotlib
        raise BagError(f"{path}: plotting needs matplotlib, which is not installed here") from err
    import numpy as np

    with open_bag(path) as bag, _progress() as progress:
        info = bag.info
        task = progress.add_task("reading", total=info.message_count)
        stamps: dict[str, list[int]] = {t.name: [] for t in info.topics}
        for raw in bag.messages():
            stamps[raw.topic].append(raw.timestamp_ns)
            progress.advance(task)
    if not info.message_count:
        raise BagError(f"{path}: the bag holds no messages; nothing to plot")
    span_s = max(info.duration_s, 1e-9)
    nbins = max(1, min(bins, int(np.ceil(span_s))))  # at least 1 s per bin: sparse topics stay readable
    edges = np.linspace(0.0, span_s, nbins + 1)
    width_s = span_s / nbins
    fig, axes = plt.subplots(len(stamps), 1, sharex=True, squeeze=False, figsize=(11, 0.4 + 1.1 * len(stamps)))
    for ax, (name, ts) in zip(axes[:, 0], stamps.items(), strict=True):
        rel = (np.asarray(ts, dtype=np.int64) - info.start_ns) / 1e9
        counts, _ = np.histogram(rel, bins=edges)
        ax.step(edges, np.append(counts, counts[-1:]) / width_s, where="post")
        ax.set_ylabel("msg/s", fontsize="small")
        ax.set_ylim(bottom=0, top=max(1.0, float(counts.max()) / width_s * 1.15))
        ax.set_title(f"{name}  ({len(ts)} messages)", fontsize="small", loc="left")
    axes[-1, 0].set_xlabel(f"time since bag start [s]  (bins of {width_s:.2f} s)")
    fig.suptitle(f"{Path(path).name}: {info.message_count} messages over {info.duration_s:.1f} s")
    fig.tight_layout()
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(out)
    print(f"wrote {out}")
