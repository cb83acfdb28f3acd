"""A synthetic dataset in the on-disk contract format, for tests and benchmarks without a simulator.

Each "episode" is a kinematic car whose yaw rate moves towards the curvature of the road ahead;
the route target (a point on that road) and the image (the road drawn as a bright curve) both carry
the turn the car is about to make, so a policy can beat constant velocity, which cannot.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from roadloop_core.features.spec import ObservationSpec

__all__ = ["write_synthetic_dataset"]


def _future(v: float, a: float, w0: float, w1: float, horizon: int, dt: float) -> NDArray[np.float32]:
    """Integrate speed and yaw rate (w0 -> w1 over 1.5 s) at 20 Hz; sample every dt."""
    sub = 20
    h = dt / sub
    x = y = yaw = 0.0
    out = []
    for i in range(1, horizon * sub + 1):
        t = i * h
        w = w1 + (w0 - w1) * np.exp(-t / 1.5)
        speed = max(0.0, v + a * t)
        yaw += w * h
        x += speed * np.cos(yaw) * h
        y += speed * np.sin(yaw) * h
        if i % sub == 0:
            out.append((x, y))
    return np.asarray(out, np.float32)


def _draw(curv: float, size: tuple[int, int], rng: np.random.Generator) -> NDArray[np.uint8]:
    """A bird's-eye-ish view: the road centre line y = curv * x^2 / 2 as a bright band on noise."""
    hgt, wid = size
    img = rng.integers(0, 40, size=(hgt, wid, 3), dtype=np.uint8)
    rows = np.arange(hgt)
    x = (hgt - 1 - rows) / hgt * 30.0  # metres ahead for each image row
    lateral = curv * x**2 / 2
    cols = np.clip((wid / 2 - lateral / 10.0 * wid / 2).round().astype(int), 0, wid - 1)
    for dc in (-1, 0, 1):
        img[rows, np.clip(cols + dc, 0, wid - 1)] = (255, 220, 60)
    return img


def _save_npz(path: Path, arrays: dict[str, NDArray[np.generic]]) -> str:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    with open(tmp, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return digest


def write_synthetic_dataset(
    root: Path,
    n_train: int = 512,
    n_val: int = 128,
    image_size: tuple[int, int] | None = (32, 32),
    horizon: int = 6,
    dt: float = 0.5,
    shard_size: int = 128,
    seed: int = 0,
) -> Path:
    """Write DATASET/shards/*.npz and DATASET/index.json (last, atomically); image_size None = state-only."""
    rng = np.random.default_rng(seed)
    (root / "shards").mkdir(parents=True, exist_ok=True)
    splits: dict[str, dict[str, object]] = {}
    stats_src: dict[str, NDArray[np.float32]] = {}
    for split, n in (("train", n_train), ("val", n_val)):
        v = rng.uniform(2.0, 14.0, n)
        a = rng.uniform(-1.5, 1.5, n)
        curv = rng.uniform(-0.06, 0.06, n)
        w0 = rng.uniform(-0.15, 0.15, n)
        ego = np.stack([v, w0, a, v * w0], axis=1).astype(np.float32)
        wps = np.stack([_future(v[i], a[i], w0[i], curv[i] * v[i], horizon, dt) for i in range(n)])
        route = np.stack([np.full(n, 20.0), curv * 20.0**2 / 2], axis=1).astype(np.float32)
        arrays: dict[str, NDArray[np.generic]] = {
            "ego_state": ego,
            "route_target": route,
            "waypoints": wps,
            "command": np.stack([np.arctan(2.8 * curv), np.maximum(0.0, v + a)], axis=1).astype(np.float32),
            "stamp_ns": (np.arange(n, dtype=np.int64) * 100_000_000),
            "source": np.zeros(n, np.int32),
        }
        if image_size is not None:
            arrays["image"] = np.stack([_draw(c, image_size, rng) for c in curv])
        shards = []
        for k, lo in enumerate(range(0, n, shard_size)):
            name = f"{split}-{k:05d}.npz"
            part = {key: arr[lo : lo + shard_size] for key, arr in arrays.items()}
            digest = _save_npz(root / "shards" / name, part)
            shards.append({"file": f"shards/{name}", "count": len(part["ego_state"]), "sha256": digest})
        splits[split] = {"count": n, "shards": shards}
        if split == "train":
            stats_src = {"ego_state": ego, "route_target": route, "waypoints": wps.reshape(-1, 2)}
    stats = {k: {"mean": v.mean(0).tolist(), "std": v.std(0).tolist()} for k, v in stats_src.items()}
    hw = image_size or (64, 64)
    observation = ObservationSpec(
        camera=None if image_size is None else "camera",
        image_height=hw[0],
        image_width=hw[1],
        label_horizon=horizon,
        label_dt_s=dt,
    ).to_dict()
    index = {
        "format": "roadloop-dataset/1",
        "dataset_id": f"synthetic-{seed}-{n_train}-{n_val}",
        "observation": observation,
        "label": {"horizon": horizon, "dt": dt},
        "splits": splits,
        "stats": stats,
        "sources": [{"path": "synthetic://kinematic", "sha256": "", "split": "train", "samples": n_train}],
        "drops": {},
        "skipped": [],
        "config": {"generator": "roadloop_cluster.train.synthetic", "seed": seed},
    }
    tmp = root / "index.json.tmp"
    tmp.write_text(json.dumps(index, indent=2))
    os.replace(tmp, root / "index.json")
    return root
