"""Running the other parts the way a user does: `roadloop <verb> ...` in a subprocess, logged to a file.

The loop drives every part through its command line, so the demo exercises exactly the
commands the README documents. `Commands` is what a stage holds: its log file, the stage
timeout and the run's config folder. A failing command becomes one LoopError carrying the
command and its own one-line error (the last `roadloop: error:` line, else the last line).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from roadloop_cluster.loop.errors import LoopError

__all__ = ["Commands", "child_env", "roadloop_argv", "run_roadloop", "tail_error"]


_ENTRY = "import sys; from roadloop_core.cli.main import main; sys.argv[0] = 'roadloop'; main()"


def roadloop_argv(*args: str | Path) -> list[str]:
    """The argv of `roadloop ARGS...` with this interpreter (works without the venv on PATH)."""
    return [sys.executable, "-c", _ENTRY, *(str(a) for a in args)]


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a part's process: ours, headless rendering, no stray bytecode."""
    env = dict(os.environ)
    env.setdefault("SDL_VIDEODRIVER", "offscreen")
    env.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    # A child's progress bars go to the log file: keep them to a line per update.
    env.setdefault("TERM", "dumb")
    if extra:
        env.update(extra)
    return env


def tail_error(text: str) -> str:
    """The line that says why a command failed: its `roadloop: error:` line, else its last line."""
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith("roadloop: error:"):
            return line.removeprefix("roadloop: error:").strip()
    for line in reversed(lines):
        if "Error" in line or "error" in line:
            return line
    return lines[-1] if lines else "(no output)"


def run_roadloop(
    args: Sequence[str | Path],
    *,
    log: Path,
    timeout_s: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run `roadloop ARGS`, append its output to `log`, return its stdout; fail with one line."""
    argv = roadloop_argv(*args)
    shown = "roadloop " + shlex.join(str(a) for a in args)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"$ {shown}\n")
        f.flush()
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                argv,
                cwd=cwd,
                env=child_env(env),
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            f.write(_decode(err.stdout) + _decode(err.stderr))
            raise LoopError(f"`{shown}` did not finish within {timeout_s:.0f} s") from err
        f.write(proc.stdout)
        f.write(proc.stderr)
        f.write(f"[exit {proc.returncode} after {time.perf_counter() - t0:.1f} s]\n\n")
    if proc.returncode != 0:
        reason = tail_error(proc.stderr or proc.stdout)
        raise LoopError(f"`{shown}` exited {proc.returncode}: {reason}")
    return proc.stdout


@dataclass(frozen=True)
class Commands:
    """`roadloop ARGS` for one stage: appended to the stage's log, killed after the stage timeout, with
    the run's environment (ROADLOOP_CONFIG_DIR: every part reads the run's config folder)."""

    log: Path
    timeout_s: float
    env: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, *args: str | Path) -> str:
        """Run `roadloop ARGS`; returns its stdout, raises LoopError with the command's own error line."""
        return run_roadloop(list(args), log=self.log, timeout_s=self.timeout_s, env=self.env)


def _decode(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode("utf-8", "replace")
