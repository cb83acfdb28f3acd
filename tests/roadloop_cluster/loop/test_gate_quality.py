"""The gate judges driving, not types: a candidate trained on shuffled labels is refused, a real one published.

`make demo`'s round 1 at its sizes: 32 expert demonstrations of both highway scenarios, one dataset,
and two models trained on it for the same steps (2 ranks, 15 epochs): one on the true labels, one on
labels permuted across samples (every statistic of the labels is kept, their relation to the inputs
is gone). Both are exported, signed and driven by the onboard pipeline on the gate's 32 paired
episodes. The gate must publish the real model over `lanekeep`, and refuse the shuffled one as a
candidate against the real one in production (and the real one must beat it).

Not asserted: shuffled vs `lanekeep`. A model of shuffled labels learns their mean, "straight ahead
at the demonstrations' mean speed" (~21 m/s), which on these straight highways beats lanekeep's
25 m/s into traffic (measured: DS 70.5 vs 45.8 on 16 episodes, 0 off-road): a broken model can be
better than a weak baseline, which is why every later round gates against production, not lanekeep.
Minutes on 2 cores: `soak`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from roadloop_cluster.data.shards import file_sha256, write_npz
from roadloop_cluster.loop.adapters import eval_summary
from roadloop_cluster.loop.gate_decision import decide
from roadloop_core.contract.tensors import COMMAND_ARRAY, WAYPOINTS_ARRAY

pytestmark = [pytest.mark.soak, pytest.mark.needs("highway_env")]
LABELS = (WAYPOINTS_ARRAY.name, COMMAND_ARRAY.name)


def _roadloop(cfg_dir: Path, *args: str | Path) -> None:
    env = {**os.environ, "SDL_VIDEODRIVER": "offscreen", "ROADLOOP_CONFIG_DIR": str(cfg_dir)}
    entry = "import sys; from roadloop_core.cli.main import main; sys.argv[0] = 'roadloop'; main()"
    proc = subprocess.run([sys.executable, "-c", entry, *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=1800, check=False)  # fmt: skip
    assert proc.returncode == 0, f"roadloop {' '.join(map(str, args))}: {proc.stderr[-3000:]}"


def _shuffle_labels(src: Path, dst: Path, seed: int = 0) -> None:
    """A copy of the dataset whose train labels are permuted across samples (checksums rewritten)."""
    shutil.copytree(src, dst)
    index = json.loads((dst / "index.json").read_text())
    shards = [s for s in index["splits"]["train"]["shards"]]
    arrays = [dict(np.load(dst / s["file"])) for s in shards]
    sizes = [len(a[LABELS[0]]) for a in arrays]
    perm = np.random.default_rng(seed).permutation(sum(sizes))
    for name in LABELS:
        permuted = np.concatenate([a[name] for a in arrays])[perm]
        for a, part in zip(arrays, np.split(permuted, np.cumsum(sizes)[:-1]), strict=True):
            a[name] = part
    for s, a in zip(shards, arrays, strict=True):
        write_npz(dst / s["file"], a)
        s["sha256"] = file_sha256(dst / s["file"])
    (dst / "index.json").write_text(json.dumps(index, indent=2))


def test_the_gate_refuses_shuffled_labels_and_publishes_real_learning(tmp_path: Path, repo_root: Path) -> None:
    cfg = tmp_path / "config"
    shutil.copytree(repo_root / "config", cfg)
    _roadloop(cfg, "keys", "gen", "--out", tmp_path / "keys")
    (cfg / "keys").mkdir(exist_ok=True)
    shutil.copyfile(tmp_path / "keys" / "signing.pub", cfg / "keys" / "signing.pub")
    train_yaml = yaml.safe_load((cfg / "train.yaml").read_text())
    train_yaml["run"] |= {"checkpoint_every": 1000}
    (cfg / "train.yaml").write_text(yaml.safe_dump(train_yaml))
    scen = "highway_light,highway_dense"
    _roadloop(cfg, "sim", "record", "--driver", "expert", "--scenarios", scen, "--episodes", "32", "--seed", "1",
              "--out", tmp_path / "bags", "--jobs", "0")  # fmt: skip
    _roadloop(cfg, "data", "build", tmp_path / "bags", "--out", tmp_path / "ds", "--quiet")
    _shuffle_labels(tmp_path / "ds", tmp_path / "ds-shuffled")
    evals: dict[str, Path] = {}
    for name, data in (("real", tmp_path / "ds"), ("shuffled", tmp_path / "ds-shuffled")):
        run, bundle = tmp_path / f"run-{name}", tmp_path / f"bundle-{name}"
        _roadloop(cfg, "train", "--data", data, "--out", run, "--nproc", "2", "--epochs", "15")
        _roadloop(cfg, "export", run, "--out", bundle, "--sign-key", tmp_path / "keys" / "signing.key")
        evals[name] = tmp_path / f"{name}.json"
        _roadloop(cfg, "sim", "eval", "--driver", f"bundle:{bundle}", "--scenarios", scen, "--episodes", "32",
                  "--seed", "7", "--json", evals[name], "--jobs", "0")  # fmt: skip
    evals["lanekeep"] = tmp_path / "lanekeep.json"
    _roadloop(cfg, "sim", "eval", "--driver", "lanekeep", "--scenarios", scen, "--episodes", "32", "--seed", "7",
              "--json", evals["lanekeep"], "--jobs", "0")  # fmt: skip
    rows = {k: eval_summary(p, k)["per_episode"] for k, p in evals.items()}
    ds = {k: eval_summary(p, k)["ds"] for k, p in evals.items()}
    print(f"gate quality: DS real {ds['real']:.1f}, shuffled {ds['shuffled']:.1f}, lanekeep {ds['lanekeep']:.1f}")
    round1 = decide(rows["real"], rows["lanekeep"], 0.0)
    assert round1.publish, round1.difference
    broken = decide(rows["shuffled"], rows["real"], 0.0)
    assert not broken.publish, broken.difference
    better = decide(rows["real"], rows["shuffled"], 0.0)
    assert better.publish, better.difference
