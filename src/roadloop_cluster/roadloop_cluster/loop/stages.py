"""The loop's stages: each a small function over a `LoopContext`, calling the parts through their CLIs.

    hub ─► r1-record ─► r1-ship ─► r1-dataset ─► r1-train ─► r1-export ─► r1-gate ─► r1-deploy ─► r1-drive
       └─► r2-fleet ─► r2-corrections ─► r2-ship ─► r2-dataset ─► r2-train ─► r2-export ─► r2-gate ─► ...

Everything lives under OUT (see `Layout`); every command a stage runs is logged to
OUT/logs/<stage>.log with its output, so a failed stage can be re-run by hand.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from roadloop_cluster.loop.adapters import dataset_summary, eval_summary, read_json, training_summary
from roadloop_cluster.loop.config import LoopConfig
from roadloop_cluster.loop.errors import LoopError
from roadloop_cluster.loop.hub import HubServer
from roadloop_cluster.loop.proc import run_roadloop
from roadloop_cluster.loop.stage_runner import StageOutcome
from roadloop_core.errors import HubClientError
from roadloop_core.fsio import atomic_write_json
from roadloop_core.hub_client import HubClient

__all__ = ["Layout", "LoopContext"]


@dataclass(frozen=True)
class Layout:
    """Where everything goes under OUT."""

    out: Path

    @property
    def keys(self) -> Path:
        return self.out / "keys"

    @property
    def config(self) -> Path:
        """The run's config folder (ROADLOOP_CONFIG_DIR of every part): the workspace's, plus this run's key."""
        return self.out / "config"

    @property
    def secrets(self) -> Path:
        return self.out / "secrets"

    @property
    def hub(self) -> Path:
        return self.out / "hub"

    @property
    def vehicle(self) -> Path:
        return self.out / "vehicle"

    @property
    def recordings(self) -> Path:
        return self.vehicle / "recordings"

    @property
    def golden(self) -> Path:
        return self.vehicle / "golden"

    @property
    def bridge_state(self) -> Path:
        return self.vehicle / "bridge-state"

    @property
    def models(self) -> Path:
        return self.vehicle / "models"

    def round(self, n: int) -> Path:
        return self.out / f"round{n}"


@dataclass
class LoopContext:
    """State shared by the stages of one run: config, layout, the hub, and the summary being built."""

    cfg: LoopConfig
    layout: Layout
    config_dir: Path
    log_dir: Path
    hub: HubServer | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    production: Path | None = None  # bundle currently in the production channel (None: lanekeep baseline)
    production_name: str = ""
    production_eval: Path | None = None  # the production bundle's gate evaluation (when it won)
    version: int = 0

    # -- helpers --------------------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """Every part reads its settings from the run's config folder."""
        return {"ROADLOOP_CONFIG_DIR": str(self.layout.config.resolve())}

    def roadloop(self, stage: str, *args: str | Path) -> str:
        return run_roadloop(
            list(args), log=self.log_dir / f"{stage}.log", timeout_s=self.cfg.stage_timeout_s, env=self.env
        )

    def config_file(self, name: str) -> Path:
        """A config named in loop.yaml: absolute as given, else from the run's config folder."""
        return self.cfg.resolve(name, self.layout.config)

    def rnd(self, n: int) -> dict[str, Any]:
        rounds: list[dict[str, Any]] = self.summary.setdefault("rounds", [])
        for r in rounds:
            if r["round"] == n:
                return r
        r = {"round": n}
        rounds.append(r)
        return r

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.layout.out))
        except ValueError:
            return str(path)

    @property
    def hub_url(self) -> str:
        if self.hub is None:
            raise LoopError("the hub is not running")
        return self.hub.url

    @property
    def admin_token(self) -> Path:
        return self.layout.secrets / "admin.token"

    @property
    def vehicle_token(self) -> Path:
        return self.layout.secrets / f"{self.cfg.vehicle}.token"

    @property
    def scenarios(self) -> str:
        return ",".join(self.cfg.scenarios)

    # -- setup and hub ----------------------------------------------------------------------------

    def setup(self, stage: str, n: int) -> StageOutcome:
        """The run's config folder and signing keys, and hub tokens, made with the commands an operator uses."""
        lay = self.layout
        for d in (lay.secrets, lay.recordings, lay.bridge_state, lay.models, lay.config / "keys"):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(lay.secrets, 0o700)
        copied = _copy_config(self.config_dir, lay.config)
        self.roadloop(stage, "keys", "gen", "--out", lay.keys)
        # the vehicle trusts this run's key (config/vehicle.yaml: public_key keys/signing.pub) and
        # installs models where the bridge puts them
        shutil.copyfile(lay.keys / "signing.pub", lay.config / "keys" / "signing.pub")
        _set_vehicle_models_dir(lay.config / "vehicle.yaml", lay.models.resolve())
        self.roadloop(stage, "hub", "token", "add", "loop-admin", "--admin", "--root", lay.hub,
                      "--out", self.admin_token)  # fmt: skip
        self.roadloop(stage, "hub", "token", "add", self.cfg.vehicle, "--root", lay.hub, "--out", self.vehicle_token)
        self._check_episode_counts()
        return StageOutcome(
            {"vehicle": self.cfg.vehicle, "config_files": copied},
            {"keys": self.rel(lay.keys), "secrets": self.rel(lay.secrets), "config": self.rel(lay.config)},
        )

    def distinct_episodes(self, names: list[str]) -> int:
        """How many episodes `sim eval/record` runs before repeating one: scenarios x their standard seeds."""
        from roadloop_sim.scenarios import load_scenarios

        selected = load_scenarios(self.layout.config / "scenarios.yaml").select(names)
        return len(selected) * min(len(sc.seeds) for sc in selected)

    def _check_episode_counts(self) -> None:
        """An evaluation longer than the distinct episodes would count some episodes twice: refuse it."""
        cap = self.distinct_episodes(self.cfg.scenarios)
        for what, episodes in (
            ("gate.episodes", self.cfg.gate.episodes),
            ("drive.episodes", self.cfg.drive.episodes),
            ("intervention.episodes", self.cfg.intervention.episodes),
        ):
            if episodes > cap:
                raise LoopError(
                    f"loop config {what}={episodes}: only {cap} distinct episodes exist for scenarios "
                    f"{self.scenarios} (scenarios x seeds in scenarios.yaml); more would repeat episodes"
                )

    def start_hub(self, stage: str, n: int) -> StageOutcome:
        hub = HubServer(
            self.layout.hub,
            self.layout.keys / "signing.pub",
            self.log_dir / "hub.log",
            start_timeout_s=self.cfg.hub_start_timeout_s,
            env=self.env,
        )
        hub.start()
        self.hub = hub
        return StageOutcome({"url": hub.url}, {"hub": self.rel(self.layout.hub)})

    # -- vehicle side ----------------------------------------------------------------------------

    def record(self, stage: str, n: int) -> StageOutcome:
        """Round 1: expert demonstrations recorded into the vehicle's recording folder (one folder per bag)."""
        out = self.layout.recordings
        rec = self.cfg.record
        before = set(_bags_in(out))
        names = rec.scenarios or self.cfg.scenarios
        # one `sim record` repeats its episodes after scenarios x seeds: more demonstrations come from
        # further runs with the next base seed (episode k of base seed S uses seed S*1000 + seeds[k])
        cap = self.distinct_episodes(names)
        left, seed = rec.episodes, rec.seed
        while left > 0:
            batch = min(left, cap)
            self.roadloop(stage, "sim", "record", "--scenarios", ",".join(names), "--episodes", str(batch),
                          "--seed", str(seed), "--driver", "expert", "--out", out)  # fmt: skip
            left, seed = left - batch, seed + 1
        bags = [b for b in _bags_in(out) if b not in before]
        if not bags:
            raise LoopError(f"`roadloop sim record` wrote no bag under {out}")
        # the vehicle keeps one expert drive as its golden bag: the bridge replays every new bundle on it
        # (no fallback, no NaN) before making it current
        if not _bags_in(self.layout.golden):
            shutil.copytree(bags[0], self.layout.golden / bags[0].name)
        self.rnd(n)["recorded"] = {"bags": len(bags), "episodes": rec.episodes}
        return StageOutcome({"bags": len(bags), "MB": sum(_size(b) for b in bags) / 1e6}, {"recordings": self.rel(out)})

    def ship(self, stage: str, n: int) -> StageOutcome:
        """The vehicle bridge uploads every closed bag (priority first) and pulls models once."""
        before = self._hub_bags()
        t0 = time.perf_counter()
        self._bridge(stage)
        seconds = time.perf_counter() - t0
        after = self._hub_bags()
        new = len(after) - len(before)
        local = _bags_in(self.layout.recordings)
        missing = {b.name for b in local} - {r.get("bag_name") for r in after}
        if missing:
            raise LoopError(f"after the bridge ran, the hub lacks {len(missing)} bag(s): {sorted(missing)[:3]}")
        prio = [r["bag_name"] for r in after if r not in before and r.get("tags")]
        self.rnd(n)["shipped"] = {"new": new, "total": len(after)}
        return StageOutcome(
            {
                "uploaded": new,
                "hub_bags": len(after),
                "tagged": len(prio),
                "MB_per_s": _size(self.layout.recordings) / 1e6 / max(seconds, 1e-6),
            }
        )

    def _bridge(self, stage: str) -> str:
        lay = self.layout
        return self.roadloop(
            stage, "bridge", "run", "--watch", lay.recordings, "--hub", self.hub_url, "--token-file",
            self.vehicle_token, "--state", lay.bridge_state, "--models", lay.models, "--public-key",
            lay.keys / "signing.pub", "--settle", "0", "--quiet", "--once", *self._golden_args(),
        )  # fmt: skip

    def _golden_args(self) -> list[str | Path]:
        golden = _bags_in(self.layout.golden)
        return ["--golden-bag", golden[0]] if golden else []

    def _hub_bags(self) -> list[dict[str, Any]]:
        """The hub's catalog, as an admin sees it over HTTP (`GET /v1/bags`)."""
        try:
            with HubClient.from_token_file(self.hub_url, self.admin_token) as hub:
                return hub.list_bags()
        except HubClientError as err:
            raise LoopError(str(err)) from err

    # -- cluster side ----------------------------------------------------------------------------

    def dataset(self, stage: str, n: int) -> StageOutcome:
        """Every bag in the hub's store (content-addressed, symlinked out) -> one dataset."""
        rd = self.layout.round(n)
        bags = rd / "hub-bags"
        self.roadloop(stage, "hub", "export-bags", "--root", self.layout.hub, "--out", bags)
        ds = rd / "dataset"
        # each exported entry is a symlink into the store, named <vehicle>__<bag>: passed one by one
        entries = sorted(p for p in bags.iterdir() if not p.name.startswith("."))
        if not entries:
            raise LoopError(f"the hub's store holds no readable bag ({bags} is empty)")
        self.roadloop(stage, "data", "build", *entries, "--config", self.config_file(self.cfg.dataset_config),
                      "--out", ds, "--quiet")  # fmt: skip
        s = dataset_summary(ds)
        interventions = sum(1 for r in self._hub_bags() if _is_intervention(r))
        s["interventions"] = interventions
        self.rnd(n)["dataset"] = {k: s[k] for k in ("dataset_id", "bags", "train", "val", "interventions", "drops")}
        return StageOutcome(
            {k: s[k] for k in ("bags", "train", "val", "drops", "interventions")} | {"id": str(s["dataset_id"])[:12]},
            {"dataset": self.rel(ds)},
        )

    def train(self, stage: str, n: int) -> StageOutcome:
        rd = self.layout.round(n)
        ds = rd / "dataset"
        cfg_path = self._train_config(rd)
        run = rd / "run"
        t0 = time.perf_counter()
        self.roadloop(
            stage, "train", "--config", cfg_path, "--data", ds, "--out", run, "--nproc", str(self.cfg.train.nproc)
        )
        seconds = time.perf_counter() - t0
        t = training_summary(run)
        self.rnd(n)["training"] = t
        ol = t["open_loop"]
        numbers: dict[str, Any] = {"ranks": t.get("world_size"), "steps": t.get("total_steps"), "seconds": seconds}
        for who in ("model", "constant_velocity", "ego_mlp"):
            if who in ol and ol[who].get("l2_3s") is not None:
                numbers[f"{who}_l2_3s"] = ol[who]["l2_3s"]
        return StageOutcome(numbers, {"run": self.rel(run), "train_config": self.rel(cfg_path)})

    def _train_config(self, rd: Path) -> Path:
        """The base training config with the demo's epochs and batch (the model takes its input size,
        horizon and dt from the dataset itself)."""
        from roadloop_core.config import load_yaml

        base = load_yaml(self.config_file(self.cfg.train.config))
        run = dict(base.get("run", {}))
        run["epochs"] = self.cfg.train.epochs
        if self.cfg.train.batch_size:
            run["batch_size"] = self.cfg.train.batch_size
        merged = {**base, "run": run}
        path = rd / "train.yaml"
        path.write_text(
            "# Written by `roadloop loop`: config/train.yaml with the demo's epochs and batch size.\n"
            + yaml.safe_dump(merged, sort_keys=False)
        )
        return path

    def export(self, stage: str, n: int) -> StageOutcome:
        rd = self.layout.round(n)
        bundle = rd / "bundle"
        self.version = n
        self.roadloop(stage, "export", rd / "run", "--out", bundle, "--sign-key", self.layout.keys / "signing.key",
                      "--version", str(self.version))  # fmt: skip
        self.roadloop(stage, "bundle", "verify", bundle, "--public-key", self.layout.keys / "signing.pub")
        manifest = read_json(bundle / "manifest.json", "the bundle manifest")
        name = f"{manifest.get('name', 'policy')}-v{manifest.get('version', n)}"
        self.rnd(n)["bundle"] = {"name": name, "path": self.rel(bundle)}
        return StageOutcome(
            {"name": name, "onnx_kB": (bundle / "policy.onnx").stat().st_size / 1e3}, {"bundle": self.rel(bundle)}
        )

    def _eval(self, stage: str, driver: str, seed: int, episodes: int, json_out: Path, name: str,
              plots: Path | None = None) -> dict[str, Any]:  # fmt: skip
        args: list[str | Path] = ["sim", "eval", "--driver", driver, "--scenarios", self.scenarios,
                                  "--episodes", str(episodes), "--seed", str(seed), "--json", json_out]  # fmt: skip
        if plots is not None:
            args += ["--plots", plots]
        self.roadloop(stage, *args)
        return eval_summary(json_out, name)

    def gate(self, stage: str, n: int) -> StageOutcome:
        """Candidate vs the production model (round 1: the lanekeep baseline) on the same scenarios and seeds."""
        rd = self.layout.round(n)
        g = self.cfg.gate
        gdir = rd / "gate"
        gdir.mkdir(parents=True, exist_ok=True)
        cand_name = self.rnd(n)["bundle"]["name"]
        note = ""
        if self.production is None:
            inc = self._eval(stage, g.baseline, g.seed, g.episodes, gdir / "incumbent.json", g.baseline)
        elif self.production_eval is not None:
            # the production bundle was scored on exactly these scenarios and seeds when it won its gate, and
            # simulator and pipeline are deterministic: that evaluation is the incumbent's score
            shutil.copyfile(self.production_eval, gdir / "incumbent.json")
            inc = eval_summary(gdir / "incumbent.json", self.production_name)
            note = f"incumbent score from {self.rel(self.production_eval)} (same bundle, scenarios and seeds)"
        else:
            inc = self._eval(stage, f"bundle:{self.production}", g.seed, g.episodes, gdir / "incumbent.json",
                             self.production_name)  # fmt: skip
        cand = self._eval(stage, f"bundle:{rd / 'bundle'}", g.seed, g.episodes, gdir / "candidate.json", cand_name)
        won = cand["ds"] > inc["ds"] + g.margin
        reason = "" if won else _why_not(cand, inc, g.margin)
        self.roadloop(stage, "hub", "publish", rd / "bundle", "--hub", self.hub_url, "--token-file", self.admin_token,
                      "--channel", "candidate")  # fmt: skip
        if won:
            self.roadloop(stage, "hub", "publish", rd / "bundle", "--hub", self.hub_url, "--token-file",
                          self.admin_token, "--channel", "production")  # fmt: skip
            self.production = rd / "bundle"
            self.production_name = cand_name
            self.production_eval = gdir / "candidate.json"
        self.rnd(n)["gate"] = {
            "candidate": _strip(cand), "incumbent": _strip(inc), "published": won, "margin": g.margin, "reason": reason,
            "note": note,
        }  # fmt: skip
        return StageOutcome(
            {"candidate_ds": cand["ds"], "incumbent": inc["name"], "incumbent_ds": inc["ds"], "published": won},
            {"gate": self.rel(gdir)},
        )

    def deploy(self, stage: str, n: int) -> StageOutcome:
        """The bridge pulls the production channel, verifies and installs it; `current` must point at it."""
        self._bridge(stage)
        current = self.layout.models / "current"
        if self.production is None:
            installed = os.readlink(current) if current.is_symlink() else None
            self.rnd(n)["deploy"] = {"installed": installed, "note": "nothing new in production"}
            return StageOutcome({"installed": str(installed), "new": False})
        if not current.is_symlink():
            raise LoopError(f"the bridge ran but {current} is not a symlink to an installed bundle")
        new = bool(self.rnd(n).get("gate", {}).get("published"))
        target = Path(os.readlink(current))
        want = read_json(self.production / "manifest.json", "the production manifest")
        got = read_json(current / "manifest.json", "the installed manifest")
        if (got.get("name"), got.get("version")) != (want.get("name"), want.get("version")):
            raise LoopError(
                f"installed {got.get('name')} v{got.get('version')} "
                f"but production is {want.get('name')} v{want.get('version')}"
            )
        self.rnd(n)["deploy"] = {"installed": target.name, "new": new}
        return StageOutcome({"installed": target.name, "new": new}, {"current": self.rel(current)})

    def drive(self, stage: str, n: int) -> StageOutcome:
        """The onboard pipeline with the installed bundle: closed loop in the simulator, a bag replay for latency."""
        rd = self.layout.round(n)
        current, name = self._driving_bundle(n)
        d = self.cfg.drive
        plots = rd / "drive-plots"
        res = self._eval(stage, f"bundle:{current}", d.seed, d.episodes, rd / "drive.json", name, plots)
        drive = _strip(res)
        drive["model"] = name
        drive["per_episode"] = [
            {k: e.get(k) for k in ("scenario", "seed", "ds", "rc", "why")} for e in res["per_episode"]
        ]
        # the evaluator draws each episode's path over the road: the report shows the first two and the summary
        pngs = sorted(plots.glob("*.png")) if plots.is_dir() else []
        episodes = [p for p in pngs if p.name != "summary.png"][:2]
        drive["plots"] = [self.rel(p) for p in episodes + [p for p in pngs if p.name == "summary.png"]]
        self.rnd(n)["drive"] = drive
        latency = self._latency(stage, rd, current)
        self.rnd(n)["latency"] = latency
        return StageOutcome(
            {"model": name, "ds": res["ds"], "rc": res["rc"], "ip": res["ip"], "p99_ms": latency.get("p99_ms")},
            {"drive": self.rel(rd / "drive.json")},
        )

    def _driving_bundle(self, n: int) -> tuple[Path, str]:
        """What the vehicle drives with: the installed model, or (nothing deployed yet because the candidate
        lost its gate) round n's candidate in shadow mode, so the loop still learns from its failures."""
        current = self.layout.models / "current"
        if current.exists():
            return current, Path(os.readlink(current)).name if current.is_symlink() else current.name
        bundle = self.layout.round(n) / "bundle"
        name = self.rnd(n).get("bundle", {}).get("name", "candidate")
        return bundle, f"{name} (not deployed: shadow mode)"

    def _latency(self, stage: str, rd: Path, bundle: Path) -> dict[str, Any]:
        """Replay one recorded bag through the pipeline: `roadloop replay` stats plus per-frame samples."""
        bags = _bags_in(self.layout.golden) or _bags_in(self.layout.recordings)
        if not bags:
            return {}
        bag = bags[0]
        out = rd / "replay"
        shutil.rmtree(out, ignore_errors=True)
        stats_path = rd / "replay-stats.json"
        self.roadloop(stage, "replay", bag, "--bundle", bundle, "--out", out, "--stats", stats_path,
                      "--public-key", self.layout.keys / "signing.pub")  # fmt: skip
        stats = read_json(stats_path, "the replay stats")
        measured = stats.get("measured", {})
        frame = (measured.get("latency_ms") or {}).get("frame", {})
        samples = _frame_latencies(bag, bundle, self.layout.config / "vehicle.yaml")
        return {
            "bag": bag.name,
            "frames": stats.get("frames"),
            "fallbacks": stats.get("fallbacks"),
            "p50_ms": frame.get("p50"),
            "p99_ms": frame.get("p99"),
            "realtime_factor": measured.get("realtime_factor"),
            "samples_ms": samples,
        }

    # -- round 2: interventions --------------------------------------------------------------------

    def fleet_drive(self, stage: str, n: int) -> StageOutcome:
        """The deployed policy drives new episodes; those it does not finish cleanly are interventions."""
        rd = self.layout.round(n)
        iv = self.cfg.intervention
        driver_bundle, name = self._driving_bundle(n - 1)
        report = rd / "fleet.json"
        res = self._eval(stage, f"bundle:{driver_bundle}", iv.seed, iv.episodes, report, name)
        data = read_json(report, "the fleet evaluation")
        failed: list[dict[str, Any]] = []
        for e in data["episodes"]:
            if not e.get("success") and all((e["scenario"], e["seed"]) != (f["scenario"], f["seed"]) for f in failed):
                failed.append(e)
        failed = failed[: iv.max_corrections]
        # what `roadloop sim record --intervene-on` replays: the same report, only the episodes taken over
        atomic_write_json(rd / "interventions.json", {**data, "episodes": failed}, default=str)
        rows = {(e["scenario"], e["seed"]): e for e in res["per_episode"]}
        self.rnd(n)["interventions"] = _strip(res) | {
            "model": name, "episodes": len(res["per_episode"]), "failed": len(failed),
            "failed_episodes": [
                {k: rows[(e["scenario"], e["seed"])].get(k) for k in ("scenario", "seed", "ds", "why")} for e in failed
            ],
            "corrections": 0,
        }  # fmt: skip
        numbers = {"model": name, "ds": res["ds"], "episodes": len(res["per_episode"]), "failed": len(failed)}
        return StageOutcome(numbers, {"fleet": self.rel(report)})

    def corrections(self, stage: str, n: int) -> StageOutcome:
        """The failed episodes replayed with the expert taking over before the failure: intervention bags."""
        rd = self.layout.round(n)
        inter = self.rnd(n)["interventions"]
        if not inter["failed"]:
            return StageOutcome({"failed": 0, "corrections": 0})
        before = set(_bags_in(self.layout.recordings))
        self.roadloop(stage, "sim", "record", "--intervene-on", rd / "interventions.json", "--driver", "expert",
                      "--out", self.layout.recordings)  # fmt: skip
        new = [b for b in _bags_in(self.layout.recordings) if b not in before]
        inter["corrections"] = len(new)
        return StageOutcome({"failed": inter["failed"], "corrections": len(new)})


def _bags_in(root: Path) -> list[Path]:
    """Closed bags (folders with metadata.yaml) under `root`, sorted by path."""
    if not root.is_dir():
        return []
    return sorted(p.parent for p in root.rglob("metadata.yaml") if not p.parent.name.startswith("."))


def _size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _is_intervention(row: dict[str, Any]) -> bool:
    tags = row.get("tags") or []
    return any(t in ("intervention", "disengagement") for t in tags)


def _strip(res: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in res.items() if k != "per_episode"}


def _why_not(cand: dict[str, Any], inc: dict[str, Any], margin: float) -> str:
    parts = [f"DS {cand['ds']:.1f} is not above {inc['name']}'s {inc['ds']:.1f} + margin {margin:.1f}"]
    if cand.get("rc") is not None and inc.get("rc") is not None and cand["rc"] < inc["rc"]:
        parts.append(f"it completes less of the route (RC {cand['rc']:.1f} vs {inc['rc']:.1f})")
    if cand.get("ip") is not None and inc.get("ip") is not None and cand["ip"] < inc["ip"]:
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


def _frame_latencies(bag: Path, bundle: Path, vehicle_yaml: Path) -> list[float]:
    """Whole-frame latency of every frame, timed around Pipeline.step as `roadloop replay` does."""
    from roadloop_core.bag import open_bag
    from roadloop_vehicle.params import load_vehicle_params
    from roadloop_vehicle.pipeline import Pipeline

    params = load_vehicle_params(vehicle_yaml)
    pipeline = Pipeline(params, bundle, public_key=vehicle_yaml.parent / "keys" / "signing.pub", deterministic=True)
    samples: list[float] = []
    with open_bag(bag) as reader:
        for raw in reader.messages():
            n = len(pipeline.reports)
            t0 = time.perf_counter()
            pipeline.step(raw)
            if len(pipeline.reports) > n:
                samples.append((time.perf_counter() - t0) * 1e3)
    return [round(s, 4) for s in samples]


def _copy_config(src: Path, dst: Path) -> int:
    """The workspace's config files into the run's config folder (the run then never edits the workspace)."""
    n = 0
    for path in sorted(src.glob("*.yaml")):
        shutil.copyfile(path, dst / path.name)
        n += 1
    if not (dst / "topics.yaml").is_file():
        raise LoopError(f"{src}: no topics.yaml: not a roadloop config folder")
    return n


def _set_vehicle_models_dir(vehicle_yaml: Path, models: Path) -> None:
    if not vehicle_yaml.is_file():
        return
    data = yaml.safe_load(vehicle_yaml.read_text()) or {}
    try:
        data["drive_node"]["ros__parameters"]["model_manager"]["models_dir"] = str(models)
    except (KeyError, TypeError):
        return
    vehicle_yaml.write_text(
        "# Written by `roadloop loop`: config/vehicle.yaml with this run's models folder.\n"
        + yaml.safe_dump(data, sort_keys=False)
    )
