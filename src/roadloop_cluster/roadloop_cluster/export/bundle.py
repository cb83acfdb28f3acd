"""RUN -> signed model bundle (policy.onnx + manifest.json + manifest.sig), per the bundle contract."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from roadloop_cluster.export.onnx_export import OPSET, check_parity, export_onnx, load_run, parity_samples
from roadloop_cluster.train.errors import ExportError
from roadloop_core.bundle import Manifest, write_bundle
from roadloop_core.contract.tensors import check_model_io, manifest_tensors
from roadloop_core.errors import BundleError

__all__ = ["export_bundle"]


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
    samples = parity_samples(run, data, parity_count)
    try:
        stats = {k: (v["mean"], v["std"]) for k, v in run.meta["normalization"].items()}
        inputs, outputs = manifest_tensors(run.observation, stats)
        check_model_io(inputs, outputs, run.observation, f"{run_dir / 'run.json'}")  # what the vehicle will check
    except (KeyError, TypeError, BundleError) as err:
        raise ExportError(f"{run_dir}: the run's normalisation does not fit its model inputs: {err}") from err
    with tempfile.TemporaryDirectory(prefix="roadloop-export-") as tmp:
        onnx_path = Path(tmp) / "policy.onnx"
        export_onnx(run.model, onnx_path)
        worst = check_parity(run.model, onnx_path, samples, tol)
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
            observation=run.observation,
            dataset_id=str(run.meta["dataset"].get("dataset_id", "")),
            training_config=dict(run.meta["config"]),
            metrics=metrics,
        )
        try:
            return write_bundle(out, files={"policy.onnx": onnx_path}, manifest=manifest, signing_key=sign_key)
        except BundleError:
            raise
