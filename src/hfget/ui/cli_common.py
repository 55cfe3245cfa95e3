"""What the commands share: option types, the error boundary (friendly message, exit code, no secret), modes."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from typer.core import TyperGroup

try:  # typer 0.28 ships click inside it: its usage errors derive from TyperException
    from typer.exceptions import TyperException as UsageErrorBase
except ImportError:  # typer < 0.28 runs on click itself
    from click.exceptions import ClickException as UsageErrorBase

from ..errors import EXIT_INTERRUPTED, EXIT_USAGE, HfgetError


class RepoType(str, Enum):
    model = "model"
    dataset = "dataset"
    space = "space"


# --- shared options ---------------------------------------------------------------------------------------------

EnvFile = Annotated[
    Optional[Path], typer.Option("--env-file", help="Read settings from this .env file instead of the nearest one.")
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print a machine-readable result on stdout.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display; errors only.")]
Endpoint = Annotated[
    Optional[str],
    typer.Option("--endpoint", "--mirror", help="Hub endpoint or mirror URL (overrides HF_ENDPOINT).", show_default=False),
]
Token = Annotated[
    Optional[str],
    typer.Option("--token", help="HF token (overrides HF_TOKEN). Sent only to huggingface.co unless allowed.", show_default=False),
]
Proxy = Annotated[
    Optional[str],
    typer.Option(
        "--proxy",
        help="Proxy for every source: http://, https://, socks5:// or socks5h:// (overrides HTTPS_PROXY etc.).",
        show_default=False,
    ),
]
CacheDir = Annotated[
    Optional[Path], typer.Option("--cache-dir", help="Hugging Face hub cache (overrides HF_HUB_CACHE / HF_HOME).")
]
ModelScopeEndpoint = Annotated[
    Optional[str],
    typer.Option("--modelscope-endpoint", help="ModelScope URL (overrides MODELSCOPE_ENDPOINT).", show_default=False),
]


def show_result(result, render: Callable[[Console, object], None], *, json_out: bool, quiet: bool = False,
                ok: bool = True) -> None:
    """A command's result: as JSON on stdout (`{"ok": ..., **result.to_dict()}`), or drawn by `render` unless quiet."""
    if json_out:
        from .render import emit_json

        emit_json({"ok": ok, **result.to_dict()})
    elif not quiet:
        render(Console(highlight=False, soft_wrap=True), result)


# --- the error boundary -----------------------------------------------------------------------------------------


class JsonUsageGroup(TyperGroup):
    """A command group whose usage errors (a bad option value, a missing argument) are also JSON on stdout when the
    command line asks for --json, and never show a secret: click prints the offending value, which may be a token
    or a proxy URL pasted in the wrong place."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        ctx.meta.setdefault("hfget.json", "--json" in args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: typer.Context):
        from ..redact import redact

        try:
            return super().invoke(ctx)
        except UsageErrorBase as error:  # click's UsageError (and BadParameter...) as Typer ships it: exit code 2
            if getattr(error, "exit_code", None) != EXIT_USAGE:
                raise
            error.message = redact(error.message, *known_secrets([]))
            if ctx.meta.get("hfget.json"):
                from .render import emit_json

                hint = "See the command's --help for its options and arguments."
                emit_json({"ok": False, "error": {"kind": "usage", "message": error.format_message(), "hint": hint,
                                                  "exit_code": EXIT_USAGE}})
            raise


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def boundary(json_mode: bool = False, secrets: Callable[[], list] | None = None, quiet: bool = False):
    """Map every failure to a friendly message and an exit code; a traceback only with HFGET_DEBUG=1. Ctrl-C,
    SIGTERM and Ctrl-Break are an interruption: exit code 130.

    Everything that leaves here is scrubbed of every secret the run knows (`secrets()`), of credentials in URLs and
    of anything shaped like an HF token, whatever built the message. `quiet` keeps the error to its paragraph and
    fix (no table of the sources tried, no notes).
    """
    from ..redact import redact
    from .interrupts import stop_signals_interrupt

    secrets = secrets or (lambda: known_secrets([]))
    debug = os.environ.get("HFGET_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")
    try:
        with stop_signals_interrupt():  # SIGTERM (and Ctrl-Break on Windows) stop a command as Ctrl-C does
            yield
    except typer.Exit:
        raise
    except HfgetError as err:
        known = secrets()
        err.message = redact(err.message, *known)
        err.hint = redact(err.hint, *known) if err.hint else err.hint
        err.notes = [redact(note, *known) for note in err.notes]
        err.attempts = [{k: redact(str(v), *known) for k, v in a.items()} for a in err.attempts]
        if json_mode:
            from .render import emit_json

            emit_json({"ok": False, "error": err.to_dict()})
        from .render import error

        error(stderr_console(), err, quiet=quiet)
        if debug:
            _print_traceback(known)
        raise typer.Exit(err.exit_code) from None
    except KeyboardInterrupt:
        stderr_console().print("[yellow]Interrupted.[/] Run the same command again to resume.")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Exception as exc:  # a bug: say so plainly, keep the traceback for HFGET_DEBUG=1
        from rich.markup import escape

        known = secrets()
        message = redact(f"{type(exc).__name__}: {exc}", *known)
        if json_mode:
            from .render import emit_json

            emit_json({"ok": False, "error": {"kind": "internal", "message": message, "exit_code": 1}})
        stderr_console().print(f"[bold red]Internal error:[/] {escape(message)}", highlight=False)
        stderr_console().print("Run again with HFGET_DEBUG=1 for the traceback, and please report it.")
        if debug:
            _print_traceback(known)
        raise typer.Exit(1) from None


def _print_traceback(secrets: list) -> None:
    from ..redact import redact

    print(redact(traceback.format_exc(), *secrets), file=sys.stderr)


def progress_mode(quiet: bool, json_mode: bool) -> str:
    if quiet or json_mode:
        return "none"
    return "rich" if sys.stdout.isatty() and sys.stderr.isatty() else "plain"


SECRET_KEYS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "MODELSCOPE_API_TOKEN")
URL_KEYS = ("HFGET_PROXY", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "HF_ENDPOINT", "MODELSCOPE_ENDPOINT",
            "HFGET_OFFICIAL_ENDPOINT", "HFGET_KNOWN_MIRRORS")


def known_secrets(settings_box: list, *explicit: str | None, urls: tuple[str | None, ...] = ()) -> list:
    """Every secret a message could contain: tokens (`explicit`: as typed and as cleaned), and what URLs (`urls`, and
    the settings') hold besides an address: proxy and endpoint passwords, from every layer (flag, environment,
    .env; lower or upper case)."""
    from ..config import clean_token
    from ..redact import MASK, url_secrets

    found: list = []
    for value in explicit:
        if value:
            found.append(value)
            found.append(clean_token(value))
    for url in urls:
        found += [(s, MASK) for s in url_secrets(url)]
    if not settings_box:  # the settings could not be read: what the environment holds is still known
        for key in (*SECRET_KEYS, *URL_KEYS):
            for name in (key, key.lower()):
                value = os.environ.get(name)
                if value and key in SECRET_KEYS:
                    found += [value.strip(), clean_token(value)]
                elif value:
                    found += [(s, MASK) for part in value.split(",") for s in url_secrets(part)]
    for settings in settings_box:
        for key in SECRET_KEYS:
            for layer in settings.layers.get(key, ()):
                if layer.value:
                    found += [layer.value.strip(), clean_token(layer.value)]
        if settings.token.is_set:
            found.append(settings.token.value)
        for key in URL_KEYS:
            for layer in settings.layers.get(key, ()):
                for url in (layer.value or "").split(","):
                    found += [(s, MASK) for s in url_secrets(url)]
    return [s for s in found if s]
