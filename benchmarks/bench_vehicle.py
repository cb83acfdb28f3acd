"""Onboard runtime: frame cost vs bare inference, replay speed, onnxruntime vs torch, onboard memory.

The model is the default policy of config/train.yaml (`roadloop_cluster.models.build_policy`,
exported with the training issue's ONNX exporter; weights untrained: latency does not care),
packaged as a signed bundle; the bag is a synthetic 10 Hz camera drive (camera 128x64 rgb8,
IMU and odometry at 50 Hz, a route).

- `frame p99 / bare ort p50`: every bit of pipeline work per camera frame (decoding all messages
  of the frame period, synchronisation, features, preprocessing, inference, control, safety,
  output messages), p99, over p50 of a bare `InferenceSession.run` on the same input with the
  same thread count, measured side by side (target <= 1.25);
- `replay real-time factor`: `roadloop replay` speed on the 10 Hz bag (target >= 10);
- `torch eager / onnxruntime p50`: the same model in torch eager mode vs onnxruntime, 1 thread each;
- `drive->safety frame crossing p99 / bare ort p50`: what the split into two processes adds per frame
  in the one wiring (encode the drive frame, CDR-serialize it, decode it on the safety side), which
  replay pays as the car does;
- `onboard peak RSS`: a separate process running `roadloop replay` with the default model,
  reporting its own peak resident set (VmHWM) (target <= 400 MB; it never imports torch).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import Bench
from roadloop_core.bag import open_bag
from roadloop_core.bundle import Manifest, TensorSpec, write_bundle
from roadloop_core.config import config_dir, dataclass_from_dict, load_yaml
from roadloop_core.contract.observation import ObservationSpec

REPO = Path(__file__).resolve().parents[1]


def _fixtures() -> Any:
    name = "roadloop_vehicle_test_fixtures"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "tests" / "roadloop_vehicle" / "fixtures.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _default_model(work: Path, obs: ObservationSpec, **overrides: Any) -> tuple[Any, Path]:
    """config/train.yaml's model for data observed with `obs` (its image size and horizon)."""
    import torch

    from roadloop_cluster.export.onnx_export import export_onnx
    from roadloop_cluster.models import ModelArgs, build_policy
    from roadloop_cluster.models.config import ModelConfig

    torch.manual_seed(0)
    section = {**load_yaml(config_dir() / "train.yaml")["model"], **overrides}
    cfg = dataclass_from_dict(ModelConfig, section, "train.yaml: model")
    model = build_policy(ModelArgs.from_observation(cfg, obs)).eval()
    work.mkdir(parents=True, exist_ok=True)
    path = work / "policy.onnx"
    export_onnx(model, path)
    return model, path


def _bundle(work: Path, onnx_path: Path, obs: ObservationSpec) -> tuple[Path, Path]:
    priv, pub = _fixtures().keys(work / "keys")
    h, w = obs.image_height, obs.image_width
    manifest = Manifest(
        name="default",
        version=1,
        inputs=(
            TensorSpec("image", (1, 3, h, w), normalization={"scale": 1 / 255}),
            TensorSpec("ego_state", (1, 4), normalization={"mean": [5.0, 0, 0, 0], "std": [3.0, 0.1, 1, 1]}),
            TensorSpec("route_target", (1, 2), normalization={"mean": [10.0, 0], "std": [2.0, 2.0]}),
        ),
        outputs=(TensorSpec("waypoints", (1, obs.label_horizon, 2)), TensorSpec("target_speed", (1, 1))),
        observation=obs,
        created="2026-01-01T00:00:00Z",
    )
    out = work / "default-v1"
    write_bundle(out, files={"policy.onnx": onnx_path}, manifest=manifest, signing_key=priv)
    return out, pub


def _frame_costs(
    bag: Path, bundle: Path, pub: Path, *, paced: bool = False
) -> tuple[list[float], list[float], dict[str, np.ndarray]]:
    """Per camera frame (ms): the frame path (the step that completes a frame: synchronisation, features,
    preprocessing, inference, control, safety, output messages) and all pipeline work of the frame
    period (every message decoded since the previous frame as well); plus one frame's model input.
    `paced`: each message is stepped at its recorded time (sleeping in between, as a node does), not back
    to back."""
    from roadloop_vehicle.params import load_vehicle_params
    from roadloop_vehicle.pipeline import Pipeline

    pipe = Pipeline(load_vehicle_params(config_dir() / "vehicle.yaml"), bundle, public_key=pub)
    path: list[float] = []
    period: list[float] = []
    acc = 0.0
    with open_bag(bag) as b:
        msgs = list(b.messages())
    start_wall, start_bag = time.monotonic_ns(), msgs[0].timestamp_ns if msgs else 0
    for raw in msgs:
        while paced and (left := start_wall + raw.timestamp_ns - start_bag - time.monotonic_ns()) > 0:
            time.sleep(left / 1e9)
        n = len(pipe.reports)
        t0 = time.perf_counter()
        pipe.step(raw)
        dt = time.perf_counter() - t0
        acc += dt
        if len(pipe.reports) > n:
            path.append(dt * 1e3)
            period.append(acc * 1e3)
            acc = 0.0
    model = pipe.manager.active
    if model is None:
        raise RuntimeError(f"bundle refused: {[e.reason for e in pipe.manager.drain_events()]}")
    inputs = {k: v.copy() for k, v in model.runtime.backend.buffers.inputs.items()}
    return path[10:], period[10:], inputs  # the first frames pay one-off allocations


def _bare_ort_ms(onnx_path: Path, inputs: dict[str, np.ndarray], runs: int) -> list[float]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])
    for _ in range(5):
        sess.run(None, inputs)
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, inputs)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def _torch_ms(model: Any, inputs: dict[str, np.ndarray], runs: int) -> list[float]:
    import torch

    torch.set_num_threads(1)
    tensors = {k: torch.from_numpy(v) for k, v in inputs.items()}
    out = []
    with torch.inference_mode():
        for _ in range(5):
            model(tensors)
        for _ in range(runs):
            t0 = time.perf_counter()
            model(tensors)
            out.append((time.perf_counter() - t0) * 1e3)
    return out


def _onboard_rss_mb(bag: Path, bundle: Path, pub: Path, out: Path) -> tuple[float, bool]:
    # VmHWM, not ru_maxrss: after fork+exec ru_maxrss still holds the (torch-loaded) parent's peak.
    code = (
        "import atexit, re, sys\n"
        "hwm = lambda: re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
        "atexit.register(lambda: print('ROADLOOP_RSS', hwm(), int('torch' in sys.modules), file=sys.stderr))\n"
        "from roadloop_core.cli import main\n"
        f"main(['replay', {str(bag)!r}, '--bundle', {str(bundle)!r}, '--public-key', {str(pub)!r},"
        f" '--out', {str(out)!r}])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    line = next((ln for ln in proc.stderr.splitlines() if ln.startswith("ROADLOOP_RSS")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"onboard replay process failed ({proc.returncode}): {proc.stderr[-500:]}")
    _, kb, torch_loaded = line.split()
    return int(kb) / 1024, bool(int(torch_loaded))


def _crossing_ms(horizon: int, runs: int) -> list[float]:
    """encode -> CDR -> decode of one drive frame, as drive_node publishes it and safety_node judges it."""
    from roadloop_core.registry import load_registry
    from roadloop_core.typesys import typestore_for
    from roadloop_vehicle.control.controller import Command
    from roadloop_vehicle.frame import DriveFrame, decode_frame, encode_frame

    reg = load_registry(config_dir() / "topics.yaml")
    store, typename = typestore_for(reg.typestore), reg["command_raw"].type
    wp = np.linspace(0.0, 20.0, horizon * 2, dtype=np.float32).reshape(horizon, 2)
    frame = DriveFrame(1_700_000_000_000_000_000, "default-v1", True, Command(0.01, 7.5, -1.2, 0.3, 0.02), 7.5, wp)
    out = []
    for i in range(runs + 20):
        t0 = time.perf_counter()
        data = store.serialize_cdr(encode_frame(store, frame), typename)
        decode_frame(store.deserialize_cdr(data, typename))
        if i >= 20:
            out.append((time.perf_counter() - t0) * 1e3)
    return out


def _frame_figure(bench: Bench, name: str, bag: Path, bundle: Path, pub: Path, runs: int) -> float:
    path, period, inputs = _frame_costs(bag, bundle, pub)
    bare = _bare_ort_ms(bundle / "policy.onnx", inputs, runs)
    p99, p50 = float(np.percentile(path, 99)), float(np.percentile(bare, 50))
    ratio = p99 / p50
    bench.figure(
        name,
        ratio,
        "x",
        target="<= 1.25",
        ok=ratio <= 1.25,
        detail=f"frame p50 {np.percentile(path, 50):.2f} p99 {p99:.2f} ms (p50 ratio "
        f"{np.percentile(path, 50) / p50:.2f}x), bare ort p50 {p50:.2f} ms; "
        f"with all decoding of the frame period p50 {np.percentile(period, 50):.2f} p99 "
        f"{np.percentile(period, 99):.2f} ms ({len(path)} frames)",
    )
    return p50


def run(bench: Bench) -> None:
    from roadloop_vehicle.params import load_vehicle_params
    from roadloop_vehicle.replay import replay_bag

    work = bench.workdir
    obs = ObservationSpec.from_config(config_dir() / "dataset.yaml")
    model, onnx_path = _default_model(work, obs)
    bundle, pub = _bundle(work, onnx_path, obs)
    seconds = 10.0 if bench.quick else 30.0
    bag = _fixtures().write_drive_bag(work / "drive", seconds=seconds, camera_hz=10.0)

    runs = 100 if bench.quick else 300
    p50 = _frame_figure(bench, "frame p99 / bare ort p50", bag, bundle, pub, runs)

    crossing = _crossing_ms(obs.label_horizon, runs * 10)
    c50, c99 = float(np.percentile(crossing, 50)), float(np.percentile(crossing, 99))
    bench.figure(
        "drive->safety frame crossing p99 / bare ort p50",
        c99 / p50,
        "x",
        detail=f"encode + CDR + decode of a drive frame ({obs.label_horizon} waypoints) p50 {c50 * 1e3:.0f} "
        f"p99 {c99 * 1e3:.0f} us, bare ort p50 {p50:.2f} ms",
    )

    vehicle = load_vehicle_params(config_dir() / "vehicle.yaml")
    res = replay_bag(bag, work / "replayed", bundle, params=vehicle, public_key=pub)
    rtf = float(res.measured["realtime_factor"])
    bench.figure(
        "replay real-time factor (10 Hz camera)",
        rtf,
        "x",
        target=">= 10",
        ok=rtf >= 10.0,
        detail=f"{res.deterministic['frames']} frames of {seconds:.0f} s in {res.measured['wall_s']:.2f} s",
    )

    inputs = _frame_costs(bag, bundle, pub)[2]
    torch_ms = _torch_ms(model, inputs, runs)
    t50 = float(np.percentile(torch_ms, 50))
    bench.figure(
        "torch eager / onnxruntime p50",
        t50 / p50,
        "x",
        detail=f"torch eager p50 {t50:.2f} ms vs onnxruntime p50 {p50:.2f} ms, 1 thread each",
    )

    rss, torch_loaded = _onboard_rss_mb(bag, bundle, pub, work / "rss-out")
    bench.figure(
        "onboard peak RSS (default model)",
        rss,
        "MB",
        target="<= 400",
        ok=rss <= 400 and not torch_loaded,
        detail="roadloop replay in its own process" + ("; torch WAS imported" if torch_loaded else ", no torch"),
    )
    (work / "figures.json").write_text(json.dumps([f.__dict__ for f in bench.figures]))
