"""Entry of the `roadloop` command.

Verbs are contributed by each installed package through the `roadloop.verbs`
entry-point group (like `ros2` verbs), so a vehicle image without torch still
has `roadloop replay`, `roadloop bag ...` and `roadloop bridge ...`. A verb
whose package cannot be imported (a missing optional dependency) is listed
with the reason instead of breaking the whole command.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import typer

from roadloop_core.errors import RoadloopError

__all__ = ["add_entry_point_verbs", "app", "main", "run_app"]

VERB_GROUP = "roadloop.verbs"

app = typer.Typer(
    name="roadloop",
    help="roadloop: onboard driving policies, bag tools, simulation and the fleet retraining loop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
) -> None:
    """roadloop: onboard driving policies, bag tools, simulation and the fleet retraining loop."""
    if debug:
        os.environ["ROADLOOP_DEBUG"] = "1"


def _unavailable(verb: str, reason: str) -> Callable[[], None]:
    def command() -> None:
        raise RoadloopError(f"verb '{verb}' is unavailable here: {reason}")

    command.__doc__ = f"(unavailable: {reason})"
    return command


def _requested_verb(args: list[str]) -> str | None:
    """The verb named on the command line (first non-option word), if any."""
    return next((a for a in args if not a.startswith("-")), None)


def add_entry_point_verbs(target_app: typer.Typer, group: str, only: str | None = None) -> None:
    """Add the verbs of entry-point `group` to `target_app`; with `only`, just that verb (heavy verbs import torch).

    Used for the top-level verbs and for verb groups other packages extend (`roadloop bag play`
    comes from roadloop_vehicle through `roadloop.bag_verbs`, so roadloop_core imports nothing above it).
    A function verb may name its own command class in `typer_command_cls` (a `typer.core.TyperCommand`).
    """
    eps = sorted(entry_points(group=group), key=lambda e: e.name)
    if only is not None and any(ep.name == only for ep in eps):
        eps = [ep for ep in eps if ep.name == only]
    for ep in eps:
        try:
            target: Any = ep.load()
        except ImportError as err:
            target_app.command(name=ep.name)(_unavailable(ep.name, f"{type(err).__name__}: {err}"))
            continue
        if isinstance(target, typer.Typer):
            target_app.add_typer(target, name=ep.name)
        else:
            target_app.command(name=ep.name, cls=getattr(target, "typer_command_cls", None))(target)


def _register_verbs(only: str | None = None) -> None:
    add_entry_point_verbs(app, VERB_GROUP, only)


def _debug_requested(argv: list[str]) -> bool:
    return os.environ.get("ROADLOOP_DEBUG") == "1" or "--debug" in argv


def run_app(typer_app: typer.Typer, prog_name: str, args: list[str]) -> None:
    """Run a typer app as roadloop runs its verbs: RoadloopError becomes one line on stderr and exit 2.

    Usage errors (exit 2), `--help` and `typer.Exit(n)` are handled by typer's standalone
    mode, whichever click typer bundles.
    """
    command = typer.main.get_command(typer_app)
    try:
        command.main(args=args, prog_name=prog_name, standalone_mode=True)
    except RoadloopError as err:
        if _debug_requested(args):
            raise
        print(f"roadloop: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("roadloop: interrupted", file=sys.stderr)
        sys.exit(130)


def main(argv: list[str] | None = None) -> None:
    """Run the `roadloop` CLI, loading only the verb asked for."""
    args = list(sys.argv[1:] if argv is None else argv)
    _register_verbs(_requested_verb(args))
    run_app(app, "roadloop", args)


if __name__ == "__main__":
    main()
