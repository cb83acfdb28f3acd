"""A one-page picture of a dataset (`roadloop data info --plot PNG`): what a person checks at a glance."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from roadloop_cluster.data.shards import open_npz_mmap
from roadloop_core.contract.dataset_index import DatasetIndex
from roadloop_core.contract.tensors import EGO_STATE_ARRAY, ROUTE_TARGET_ARRAY, WAYPOINTS_ARRAY

__all__ = ["plot_dataset"]

_MAX_TRAJECTORIES = 300


def plot_dataset(root: Path, index: DatasetIndex, out: Path) -> Path:
    """Samples per split, drop reasons, label waypoints (ego frame) and the ego-state distributions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    ax = axes[0, 0]
    names = list(index.splits)
    ax.bar(names, [index.splits[s].count for s in names], color=["tab:blue", "tab:orange"][: len(names)])
    ax.set_title("samples per split")
    ax = axes[0, 1]
    drops = index.drops
    if drops:
        ax.barh(list(drops), list(drops.values()), color="tab:red")
    ax.set_title("dropped frames by reason")
    shards = index.split("train").shards or index.split("val").shards
    arrays = open_npz_mmap(root / shards[0].file) if shards else {}
    ax = axes[1, 0]
    if WAYPOINTS_ARRAY.name in arrays:
        every = max(1, len(arrays[WAYPOINTS_ARRAY.name]) // _MAX_TRAJECTORIES)
        wp = np.asarray(arrays[WAYPOINTS_ARRAY.name][::every])
        for traj in wp:
            ax.plot(traj[:, 1], traj[:, 0], color="tab:green", alpha=0.15, lw=1)
        if ROUTE_TARGET_ARRAY.name in arrays:  # absent with route_source: none
            rt = np.asarray(arrays[ROUTE_TARGET_ARRAY.name][: len(wp) * every])
            kind = "hindsight route target" if index.observation.route_source == "hindsight" else "route target"
            ax.scatter(rt[:, 1], rt[:, 0], s=3, color="tab:purple", alpha=0.3, label=kind)
        ax.invert_xaxis()  # y (left) drawn to the left
        ax.set_xlabel("y left [m]")
        ax.set_ylabel("x forward [m]")
        if ROUTE_TARGET_ARRAY.name in arrays:
            ax.legend(loc="lower right")
        ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(f"label waypoints, ego frame (first train shard, K={index.observation.label_horizon})")
    ax = axes[1, 1]
    if EGO_STATE_ARRAY.name in arrays:
        ego = np.asarray(arrays[EGO_STATE_ARRAY.name])
        for i, name in enumerate(EGO_STATE_ARRAY.fields):
            ax.hist(ego[:, i], bins=40, histtype="step", label=name)
        ax.legend()
    ax.set_title(f"ego state ({EGO_STATE_ARRAY.unit})")
    fig.suptitle(f"dataset {index.dataset_id}: {index.count} samples from {len(index.sources)} bag(s)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(out)
    return out
