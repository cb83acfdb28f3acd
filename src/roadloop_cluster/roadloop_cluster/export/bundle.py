"""RUN -> signed model bundle (policy.onnx + manifest.json + manifest.sig), per the bundle contract."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from roadloop_cluster.export.onnx_export import OPSET, check_parity, export_onnx, load_run, parity_samples
from roadloop_cluster.train.errors import ExportError
from roadloop_core.bundle import Manifest, TensorSpec, write_bundle
from roadloop_core.errors import BundleError

__all__ = ["export_bundle"]


def _tensor_specs(meta: dict[str, Any], uses_image: bool, h: int, w: int, horizon: int) -> tuple[Any, Any]:
    norm = meta["normalization"]
    inputs = [TensorSpec("image", (1, 3, h, w), "float32", {"scale": 1.0 / 255.0})] if uses_image else []
    inputs += [
        TensorSpec("ego_state", (1, 4), "float32", dict(norm["ego_state"])),
        TensorSpec("route_target", (1, 2), "float32", dict(norm["route_target"])),
    ]
    outputs = [TensorSpec("waypoints", (1, horizon, 2)), TensorSpec("target_speed", (1, 1))]
    return tuple(inputs), tuple(outputs)


def export_bundle(
    run_dir: Path,
    out: Path,
    sign_key: Path,
    *,
    name: str = "roadloop-policy",
    version: int | None = None,
    data: Path | None = None,
    parity_count: int = 16,
    tol: float = 1e-4,
) -> Manifest:
    """Export, check parity with onnxruntime on validation samples, then write and sign the bundle."""
    if out.exists():
        raise ExportError(f"{out}: already exists")
    if not sign_key.is_file():
        raise ExportError(f"{sign_key}: no such signing key (make one with `roadloop keys gen --out DIR`)")
    run = load_run(run_dir)
    cfg = run.cfg
    samples = parity_samples(run, data, parity_count)
    with tempfile.TemporaryDirectory(prefix="roadloop-export-") as tmp:
        onnx_path = Path(tmp) / "policy.onnx"
        export_onnx(run.model, onnx_path)
        worst = check_parity(run.model, onnx_path, samples, tol)
        inputs, outputs = _tensor_specs(run.meta, cfg.uses_image, cfg.image_size[0], cfg.image_size[1], cfg.horizon)
        metrics = {
            "open_loop": run.metrics.get("val", {}),
            "baselines": run.metrics.get("baselines", {}),
            "parity": {"samples": len(samples), "max_abs_diff": worst, "tolerance": tol, "opset": OPSET},
            "training": {k: run.metrics.get(k) for k in ("steps", "world_size", "samples_per_s")},
        }
        manifest = Manifest(
            name=name,
            # Seconds since the epoch by default: successive exports get increasing versions.
            version=version if version is not None else int(time.time()),
            inputs=inputs,
            outputs=outputs,
            observation=dict(run.meta.get("observation", {})),
            dataset_id=str(run.meta["dataset"].get("dataset_id", "")),
            training_config=dict(run.meta["config"]),
            metrics=metrics,
        )
        try:
            return write_bundle(out, files={"policy.onnx": onnx_path}, manifest=manifest, signing_key=sign_key)
        except BundleError:
            raise
