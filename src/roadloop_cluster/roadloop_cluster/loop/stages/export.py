"""Stage `rN-export`: ONNX export (its parity check included) and signing as version N, then `bundle verify`."""

from __future__ import annotations

from roadloop_cluster.loop.adapters import read_json
from roadloop_cluster.loop.context import StageContext
from roadloop_cluster.loop.stage_runner import StageOutcome

__all__ = ["export"]


def export(ctx: StageContext, n: int) -> StageOutcome:
    lay = ctx.layout
    bundle = lay.round(n) / "bundle"
    ctx.roadloop("export", lay.round(n) / "run", "--out", bundle, "--sign-key", lay.signing_key, "--version", str(n))
    ctx.roadloop("bundle", "verify", bundle, "--public-key", lay.public_key)
    manifest = read_json(bundle / "manifest.json", "the bundle manifest")
    name = f"{manifest.get('name', 'policy')}-v{manifest.get('version', n)}"
    ctx.round(n)["bundle"] = {"name": name, "path": lay.rel(bundle)}
    return StageOutcome({"name": name, "onnx_kB": (bundle / "policy.onnx").stat().st_size / 1e3},
                        {"bundle": lay.rel(bundle)})  # fmt: skip
