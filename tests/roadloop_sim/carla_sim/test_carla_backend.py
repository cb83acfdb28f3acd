"""CARLA backend: the error paths run everywhere; the live tests need a server at $CARLA_HOST."""

from __future__ import annotations

import importlib.util
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from roadloop_core.config import config_dir
from roadloop_core.errors import ConfigError
from roadloop_core.registry import TopicRegistry, load_registry
from roadloop_sim.carla_sim import CarlaSimulator, carla_scenario_set, load_carla_config, probe_server
from roadloop_sim.errors import CarlaUnavailableError
from roadloop_sim.scenarios import load_scenarios
from roadloop_sim.sensor_messages import MessageFactory

SCENARIOS = config_dir() / "scenarios.yaml"

HAVE_CARLA = importlib.util.find_spec("carla") is not None
LIVE = pytest.mark.skipif(not os.environ.get("CARLA_HOST"), reason="needs a live CARLA 0.9.16 server: set CARLA_HOST")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def listening_port() -> Iterator[int]:
    """Something that accepts TCP connections but is not CARLA."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                conn.close()
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield int(srv.getsockname()[1])
    stop.set()
    t.join()
    srv.close()


def test_unreachable_server_message() -> None:
    port = _free_port()
    with pytest.raises(CarlaUnavailableError, match=rf"^cannot reach CARLA at 127\.0\.0\.1:{port} within 0\.5 s"):
        probe_server("127.0.0.1", port, 0.5)


def test_reachable_port_passes_the_probe(listening_port: int) -> None:
    probe_server("127.0.0.1", listening_port, 2.0)


@pytest.mark.skipif(HAVE_CARLA, reason="the carla client is installed here")
def test_missing_client_is_one_clear_error(listening_port: int) -> None:
    cfg = load_carla_config(SCENARIOS, host="127.0.0.1", port=listening_port)
    with pytest.raises(CarlaUnavailableError, match="carla client is not installed"):
        CarlaSimulator(cfg, load_scenarios(SCENARIOS).simulation, load_registry(config_dir() / "topics.yaml")).connect()


def test_config_and_scenarios_load() -> None:
    cfg = load_carla_config(SCENARIOS)
    assert cfg.port == 2000 and cfg.control == "vehicle_control"
    s = carla_scenario_set(SCENARIOS)
    assert s.scenarios and all(sc.env.startswith("carla:") for sc in s.scenarios.values())
    assert s.simulation.sim_rate_hz == 20  # 0.05 s fixed step


def test_bad_carla_config_names_the_field(tmp_path: Path) -> None:
    data = yaml.safe_load((config_dir() / "scenarios.yaml").read_text())
    data["carla"]["control"] = "joystick"
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="carla: control must be vehicle_control or ackermann"):
        load_carla_config(p)


def test_cli_unreachable_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    from roadloop_core.cli import main

    port = _free_port()
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "sim",
                "eval",
                "--backend",
                "carla",
                "--carla-host",
                "127.0.0.1",
                "--carla-port",
                str(port),
                "--carla-timeout",
                "0.5",
            ]
        )
    assert exc.value.code == 2
    assert f"cannot reach CARLA at 127.0.0.1:{port} within 0.5 s" in capsys.readouterr().err


@LIVE
@pytest.mark.carla
def test_live_episode_publishes_registry_topics(registry: TopicRegistry) -> None:
    from roadloop_sim.drivers import ExpertDriver
    from roadloop_sim.episode import run_episode

    cfg = load_carla_config(SCENARIOS, host=os.environ["CARLA_HOST"], port=int(os.environ.get("CARLA_PORT", "2000")))
    sim = CarlaSimulator(cfg, load_scenarios(SCENARIOS).simulation, registry)
    try:
        res = sim.reset("town04_highway", 0)
        cam = next(m for t, _, m in res.messages if t == registry["camera"].name)
        assert np.asarray(cam.data).reshape(cam.height, cam.width, 3).std() > 5.0
        f = MessageFactory(registry.typestore)
        for _ in range(20):
            res = sim.step(f.command(res.time_ns, 0.0, 8.0))
        assert res.truth.progress_m > 5.0
        log = run_episode(
            sim, ExpertDriver(), "town04_highway", 1, registry=registry, cfg=sim.cfg, driver_label="expert"
        )
        assert log.samples and log.route_length_m > 0
    finally:
        sim.close()
