"""`roadloop loop`: the whole fleet loop on one machine (what `make demo` runs)."""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from roadloop_cluster.loop.config import load_loop_config
from roadloop_cluster.loop.errors import LoopError

if TYPE_CHECKING:
    from roadloop_cluster.loop.stage_runner import StageResult
from roadloop_core.config import config_dir

__all__ = ["loop"]


def _prepare_out(out: Path) -> Path | None:
    """A fresh OUT: an earlier run there is moved into OUT/previous/<time>/, never deleted."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise LoopError(f"{out}: exists and is not a folder")
    entries = [p for p in out.iterdir() if p.name != "previous"]
    if not entries:
        return None
    kept = out / "previous" / time.strftime("%Y%m%d-%H%M%S")
    kept.mkdir(parents=True, exist_ok=False)
    for p in entries:
        p.rename(kept / p.name)
    return kept


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def loop(
    config: Path = typer.Option(None, "--config", help="Loop config (default: config/loop.yaml)."),
    out: Path = typer.Option(Path("demo-out"), "--out", help="Run folder: report.md, figures, logs, every artifact."),
    rounds: int = typer.Option(0, "--rounds", help="1 or 2 rounds (0: as the config says)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log each stage's start to stderr as well."),
) -> None:
    """Run the fleet loop end to end on embedded defaults and write OUT/report.md.

    Round 1: a hub on loopback; expert demonstrations recorded on the vehicle;
    the bridge ships them; a dataset from the hub's store; torchrun training;
    ONNX export and signing; a closed-loop gate against lanekeep, publishing to
    production only if it wins; the bridge installs it; the onboard pipeline drives.

    Round 2: the policy's failed episodes become interventions with the expert's
    corrections, shipped with priority; retrain on everything, gate against production.

    A failing stage stops the loop naming the stage; everything made so far is kept
    (each stage's commands and their output in OUT/logs/STAGE.log).
    """
    from roadloop_cluster.loop.run import plan, run_loop  # matplotlib, httpx: only when the loop runs

    workspace_config = config_dir()  # the one place the loop resolves it: every stage gets it handed down
    cfg_path = config if config is not None else workspace_config / "loop.yaml"
    cfg = load_loop_config(cfg_path)
    if rounds:
        from dataclasses import replace

        if rounds not in (1, 2):
            raise LoopError(f"--rounds must be 1 or 2, got {rounds}")
        cfg = replace(cfg, rounds=rounds)
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C: the running part is killed, the hub stopped
    signal.signal(signal.SIGTERM, _terminate)
    console = Console(stderr=True)
    kept = _prepare_out(out)
    if kept is not None:
        console.print(f"an earlier run in {out} was moved to {kept}")
    stages = plan(cfg)
    with Progress(
        TextColumn("[bold]loop[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("starting", total=len(stages))

        def started(name: str, title: str) -> None:
            bar.update(task, description=f"{name}: {title}")

        def ended(r: StageResult) -> None:
            nums = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.numbers.items())
            mark = "[green]ok[/green]" if r.status == "ok" else "[red]FAILED[/red]"
            bar.console.print(f"{mark} {r.name:<16} {r.seconds:7.1f} s  {nums}")
            bar.advance(task)

        report = run_loop(cfg, out, cfg_dir=workspace_config, on_start=started, on_end=ended)
    typer.echo(f"report: {report}")
