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

import click
import typer

from roadloop_core.errors import RoadloopError

__all__ = ["app", "main"]

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


def _register_verbs() -> None:
    for ep in sorted(entry_points(group=VERB_GROUP), key=lambda e: e.name):
        try:
            target: Any = ep.load()
        except ImportError as err:
            app.command(name=ep.name)(_unavailable(ep.name, f"{type(err).__name__}: {err}"))
            continue
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=ep.name)
        else:
            app.command(name=ep.name)(target)


def _debug_requested(argv: list[str]) -> bool:
    return os.environ.get("ROADLOOP_DEBUG") == "1" or "--debug" in argv


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; RoadloopError becomes one line on stderr and exit code 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    _register_verbs()
    command = typer.main.get_command(app)
    try:
        # standalone_mode=False: click *returns* the code of `raise typer.Exit(n)` instead of exiting.
        rc = command.main(args=args, prog_name="roadloop", standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except click.exceptions.Exit as ex:
        sys.exit(ex.exit_code)
    except click.ClickException as err:
        err.show()
        sys.exit(2)
    except click.exceptions.Abort:
        print("roadloop: aborted", file=sys.stderr)
        sys.exit(130)
    except RoadloopError as err:
        if _debug_requested(args):
            raise
        print(f"roadloop: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("roadloop: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
