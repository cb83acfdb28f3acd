"""`roadloop sim ...` through the real roadloop entry point (verbs from entry points)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from roadloop_core.cli import main

REPO = Path(__file__).resolve().parents[2]


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main([*args])
    code = exc.value.code
    out = capsys.readouterr()
    return int(code or 0), out.out, out.err


def _ok(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    try:
        main(args)
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr().err
    return capsys.readouterr().out


def test_help_explains(capsys: pytest.CaptureFixture[str]) -> None:
    out = _ok(["sim", "eval", "--help"], capsys)
    for word in ("--driver", "--scenarios", "--episodes", "--seed", "--json", "--plots", "bundle:PATH"):
        assert word in out
    assert "--intervene-on" in _ok(["sim", "record", "--help"], capsys)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sim", "eval", "--scenarios", "moon"], "unknown scenario 'moon'; valid: highway_light"),
        (["sim", "eval", "--driver", "pilot"], "unknown driver 'pilot'; valid: expert"),
        (["sim", "eval", "--driver", "lanekeep", "--over-ros"], "--over-ros drives with the onboard nodes: it needs"),
        (["sim", "record", "--out", "{tmp}/b", "--intervene-on", "{tmp}/none.json"], "none.json: no such eval report"),
        (
            ["sim", "eval", "--driver", "bundle:{tmp}", "--params", "{tmp}/vehicle.yaml"],
            "vehicle.yaml: /**.vehicle_limits.max_speed_mps: .nan is not finite",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vehicle = (REPO / "config" / "vehicle.yaml").read_text().replace("max_speed_mps: 30.0", "max_speed_mps: .nan")
    (tmp_path / "vehicle.yaml").write_text(vehicle)  # the bundle: driver's parameters, refused before any episode
    code, _, err = _run([a.replace("{tmp}", str(tmp_path)) for a in args], capsys)
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.startswith("roadloop: error:")]
    assert len(lines) == 1 and message in lines[0]


def test_eval_and_record_commands(
    short_scenarios_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _ok(
        ["sim", "eval", "--driver", "lanekeep", "--scenarios", "racetrack", "--episodes", "1", "--seed", "2",
         "--json", str(tmp_path / "e.json"), "--scenarios-file", str(short_scenarios_file)],
        capsys,
    )  # fmt: skip
    assert "lanekeep: DS" in out
    assert json.loads((tmp_path / "e.json").read_text())["episodes"][0]["scenario"] == "racetrack"
    out = _ok(
        ["sim", "record", "--scenarios", "racetrack", "--episodes", "1", "--seed", "2", "--out", str(tmp_path / "bags"),
         "--scenarios-file", str(short_scenarios_file)],
        capsys,
    )  # fmt: skip
    assert "1 bag(s)" in out and (tmp_path / "bags" / "000_racetrack_s2000" / "metadata.yaml").is_file()


def test_scenarios_lists_both_backends(capsys: pytest.CaptureFixture[str]) -> None:
    out = _ok(["sim", "scenarios"], capsys)
    for name in ("highway_light", "highway_dense", "racetrack", "uturn", "town04_highway"):
        assert name in out


def test_compare_pairs_two_evaluations_of_the_same_episodes(
    short_scenarios_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def evaluate(driver: str, seed: int) -> Path:
        path = tmp_path / f"{driver}-{seed}.json"
        _ok(["sim", "eval", "--driver", driver, "--scenarios", "racetrack", "--episodes", "2", "--seed", str(seed),
             "--json", str(path), "--scenarios-file", str(short_scenarios_file)], capsys)  # fmt: skip
        return path

    expert, constant = evaluate("expert", 2), evaluate("constant", 2)
    out = _ok(["sim", "compare", str(expert), str(constant)], capsys)
    lines = out.strip().splitlines()
    assert lines[0].startswith("candidate expert: DS") and "racetrack" in lines[0] and "collisions" in lines[0]
    assert lines[1].startswith("incumbent constant: DS")
    reports = [json.loads(p.read_text()) for p in (expert, constant)]
    gain = [a["driving_score"] - b["driving_score"] for a, b in zip(*(r["episodes"] for r in reports), strict=True)]
    assert f"paired DS difference {sum(gain) / 2:+.2f} over 2 episodes, 95 % CI [" in lines[2]
    # episodes of another base seed are not the same episodes: refused, naming them
    code, _, err = _run(["sim", "compare", str(expert), str(evaluate("constant", 3))], capsys)
    assert code == 2 and "did not drive the same episodes: only the candidate drove racetrack seed 2000" in err
