"""Recording: real bags read back with roadloop_core.bag; determinism; expert interventions."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from roadloop_core.bag import open_bag
from roadloop_core.registry import TopicRegistry
from roadloop_sim.errors import SimError
from roadloop_sim.evaluate import evaluate, write_report
from roadloop_sim.record import interventions_from_report, record_episodes
from roadloop_sim.scenarios import ScenarioSet


def _messages(path: Path) -> list[tuple[str, int, bytes]]:
    with open_bag(path) as bag:
        return [(m.topic, m.timestamp_ns, bytes(m.data)) for m in bag.messages()]


@pytest.fixture(scope="module")
def recorded(
    tmp_path_factory: pytest.TempPathFactory, short_scenarios: ScenarioSet, registry: TopicRegistry
) -> list[Path]:
    out = tmp_path_factory.mktemp("bags")
    eps = record_episodes(
        out,
        scenarios="highway_dense,racetrack",
        episodes=2,
        seed=1,
        scenario_set=short_scenarios,
        registry=registry,
        progress=False,
    )
    return [e.path for e in eps]


def test_one_complete_bag_per_episode(recorded: list[Path], registry: TopicRegistry) -> None:
    assert [p.name for p in recorded] == ["000_highway_dense_s1000", "001_racetrack_s1000"]
    assert not (recorded[0].parent / ".partial").exists()
    for path in recorded:
        with open_bag(path) as bag:
            info = bag.info
            assert info.storage == "mcap"
            assert {t.name for t in info.topics} == {t.name for t in registry.recorded()}
            assert all(t.message_count > 0 for t in info.topics)
            for raw in bag.messages():
                bag.decode(raw)  # every message decodes
    with open_bag(recorded[1]) as bag:
        assert bag.info.custom_data == {
            "roadloop.scenario": "racetrack",
            "roadloop.seed": "1000",
            "roadloop.episode": "1",
            "roadloop.driver": "expert",
            "roadloop.intervention": "false",
        }


def test_camera_images_are_not_blank(recorded: list[Path], registry: TopicRegistry) -> None:
    with open_bag(recorded[0]) as bag:
        imgs = [bag.decode(m) for m in bag.messages([registry["camera"].name])]
    assert len(imgs) > 10
    for img in imgs[:: max(1, len(imgs) // 5)]:
        px = np.asarray(img.data).reshape(img.height, img.width, 3)
        assert px.std() > 10.0


def test_commands_are_recorded_at_policy_rate(recorded: list[Path], registry: TopicRegistry) -> None:
    with open_bag(recorded[0]) as bag:
        stamps = [m.timestamp_ns for m in bag.messages([registry["command"].name])]
    assert np.allclose(np.diff(stamps), 1e8)  # 10 Hz policy


def test_same_seed_same_messages(
    tmp_path: Path, recorded: list[Path], short_scenarios: ScenarioSet, registry: TopicRegistry
) -> None:
    again = record_episodes(
        tmp_path,
        scenarios="highway_dense",
        episodes=1,
        seed=1,
        scenario_set=short_scenarios,
        registry=registry,
        progress=False,
    )
    assert _messages(again[0].path) == _messages(recorded[0])


def test_existing_bag_is_not_overwritten(
    recorded: list[Path], short_scenarios: ScenarioSet, registry: TopicRegistry
) -> None:
    with pytest.raises(SimError, match="already exists"):
        record_episodes(
            recorded[0].parent,
            scenarios="highway_dense",
            episodes=1,
            seed=1,
            scenario_set=short_scenarios,
            registry=registry,
            progress=False,
        )


def test_intervention_replays_failures_with_the_expert(
    tmp_path: Path, short_scenarios: ScenarioSet, registry: TopicRegistry
) -> None:
    report = evaluate(
        "constant",
        scenarios="highway_dense",
        episodes=1,
        seed=1,
        scenario_set=short_scenarios,
        registry=registry,
        progress=False,
    )
    ep = report["episodes"][0]
    assert not ep["success"] and ep["first_infraction_s"] is not None  # constant rear-ends the traffic
    write_report(report, tmp_path / "eval.json")
    jobs = interventions_from_report(tmp_path / "eval.json", lead_s=2.0)
    assert [(j.scenario, j.seed, j.driver) for j in jobs] == [("highway_dense", 1000, "constant")]
    assert jobs[0].takeover_s == pytest.approx(max(0.0, ep["first_infraction_s"] - 2.0))
    done = record_episodes(
        tmp_path / "bags",
        intervene_on=tmp_path / "eval.json",
        scenario_set=short_scenarios,
        registry=registry,
        progress=False,
    )
    assert len(done) == 1
    m = done[0].metrics
    assert m["infractions"]["collision_vehicle"] == 0  # the expert avoided what the baseline hit
    with open_bag(done[0].path) as bag:
        custom = bag.info.custom_data
        assert custom["roadloop.intervention"] == "true" and custom["roadloop.driver"] == "constant+expert"
        first_ns = min(m.timestamp_ns for m in bag.messages())
        route = [m for m in bag.messages([registry["route"].name])]
    start_ns = short_scenarios.simulation.start_time_s * 1_000_000_000
    assert first_ns >= start_ns + int(jobs[0].takeover_s * 1e9) - 1  # recorded from the takeover on
    assert route and route[0].timestamp_ns == first_ns  # the latched route is there from the first instant


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{", "not a roadloop sim eval report"),
        ('{"episodes": [{"success": false}]}', r"episodes\[0\]: missing or bad field"),
    ],
)
def test_bad_intervention_report(tmp_path: Path, content: str, match: str) -> None:
    p = tmp_path / "r.json"
    p.write_text(content)
    with pytest.raises(SimError, match=match):
        interventions_from_report(p)
    with pytest.raises(SimError, match="no such eval report"):
        interventions_from_report(tmp_path / "missing.json")


def test_a_killed_runs_partial_bag_is_kept_not_deleted(
    tmp_path: Path, short_scenarios: ScenarioSet, registry: TopicRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    leftover = tmp_path / ".partial" / "000_highway_dense_s1000"
    leftover.mkdir(parents=True)
    (leftover / "000_highway_dense_s1000_0.mcap.active").write_bytes(b"\x89MCAP0\r\n flushed chunks of a killed run")
    done = record_episodes(
        tmp_path,
        scenarios="highway_dense",
        episodes=1,
        seed=1,
        scenario_set=short_scenarios,
        registry=registry,
        progress=False,
    )
    kept = tmp_path / ".partial" / "000_highway_dense_s1000.interrupted"
    assert (kept / "000_highway_dense_s1000_0.mcap.active").read_bytes().endswith(b"of a killed run")
    assert f"kept the unfinished bag of an interrupted run as {kept}" in capsys.readouterr().err
    assert done[0].path.is_dir() and _messages(done[0].path)  # and this run's bag is complete
    # a second leftover gets its own name: the first is never overwritten
    (tmp_path / ".partial" / "000_highway_dense_s1000").mkdir()
    shutil.rmtree(done[0].path)
    record_episodes(
        tmp_path,
        scenarios="highway_dense",
        episodes=1,
        seed=1,
        scenario_set=short_scenarios,
        registry=registry,
        progress=False,
    )
    assert kept.is_dir() and (tmp_path / ".partial" / "000_highway_dense_s1000.interrupted-2").is_dir()


def test_recording_for_humble_writes_metadata_version_5(
    tmp_path: Path, short_scenarios: ScenarioSet, registry: TopicRegistry, recorded: list[Path]
) -> None:
    done = record_episodes(
        tmp_path,
        scenarios="highway_dense",
        episodes=1,
        seed=1,
        scenario_set=short_scenarios,
        registry=registry,
        progress=False,
        distro="humble",
    )
    info = yaml.safe_load((done[0].path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["version"] == 5 and "custom_data" not in info and "ros_distro" not in info
    for t in info["topics_with_message_count"]:
        assert isinstance(t["topic_metadata"]["offered_qos_profiles"], str)  # Humble parses QoS from a string
        assert "type_description_hash" not in t["topic_metadata"]
    with open_bag(done[0].path) as bag:
        assert bag.info.custom_data["roadloop.scenario"] == "highway_dense"  # kept in the mcap files
    assert _messages(done[0].path) == _messages(recorded[0])  # the same messages as for Jazzy
