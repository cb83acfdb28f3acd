"""A hub for the loop: `roadloop hub serve` as a real subprocess on a free loopback port.

Tokens are minted per run (`roadloop hub token add`) into files under OUT/secrets (0600),
exactly as an operator would; the hub verifies published bundles against the run's key.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from roadloop_cluster.loop.commands import child_env, roadloop_argv
from roadloop_cluster.loop.errors import LoopError
from roadloop_core.errors import HubClientError
from roadloop_core.hub_client import HubClient

__all__ = ["HubServer", "free_port"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the hub binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HubServer:
    """`with HubServer(root, public_key, log) as hub:` — started, healthy, stopped on exit."""

    def __init__(
        self,
        root: Path,
        public_key: Path,
        log: Path,
        *,
        start_timeout_s: float = 60.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.root = root
        self.env = env
        self.public_key = public_key
        self.log = log
        self.start_timeout_s = start_timeout_s
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: object | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        last = ""
        for _attempt in range(3):  # a port taken between free_port() and bind: try another
            self.port = free_port()
            args = ["hub", "serve", "--root", str(self.root), "--host", "127.0.0.1", "--port", str(self.port),
                    "--public-key", str(self.public_key)]  # fmt: skip
            log = open(self.log, "ab")  # noqa: SIM115  (kept open for the server's lifetime)
            log.write(f"$ roadloop {' '.join(args)}\n".encode())
            log.flush()
            self._log_file = log
            self._proc = subprocess.Popen(
                roadloop_argv(*args),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_env(self.env),
                start_new_session=True,
            )
            if self._wait_healthy():
                return
            last = self._tail()
            self.stop()
        raise LoopError(f"the hub did not come up on 127.0.0.1 (see {self.log}): {last}")

    def _wait_healthy(self) -> bool:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout_s
        with HubClient(self.url, timeout_s=2.0) as client:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    return False
                try:
                    if client.health().get("ok") is True:
                        return True
                except HubClientError:
                    pass
                time.sleep(0.2)
        return False

    def _tail(self) -> str:
        try:
            lines = [ln for ln in self.log.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return "(no log)"
        return lines[-1] if lines else "(no output)"

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log, self._log_file = self._log_file, None
        if log is not None:
            log.close()  # type: ignore[attr-defined]

    def __enter__(self) -> HubServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
