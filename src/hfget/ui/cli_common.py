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

from ..errors import EXIT_INTERRUPTED, HfgetError


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


# --- the error boundary -----------------------------------------------------------------------------------------


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def boundary(json_mode: bool = False, secrets: Callable[[], list[str]] = lambda: []):
    """Map every failure to a friendly message and an exit code; a traceback only with HFGET_DEBUG=1. Ctrl-C,
    SIGTERM and Ctrl-Break are an interruption: exit code 130."""
    from ..interrupts import stop_signals_interrupt
    from ..net.tokens import redact

    debug = os.environ.get("HFGET_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")
    try:
        with stop_signals_interrupt():  # SIGTERM (and Ctrl-Break on Windows) stop a command as Ctrl-C does
            yield
    except typer.Exit:
        raise
    except HfgetError as err:
        err.message = redact(err.message, *secrets())
        err.hint = redact(err.hint, *secrets()) if err.hint else err.hint
        if json_mode:
            from .render import emit_json

            emit_json({"ok": False, "error": err.to_dict()})
        from .render import error

        error(stderr_console(), err)
        if debug:
            _print_traceback(secrets())
        raise typer.Exit(err.exit_code) from None
    except KeyboardInterrupt:
        stderr_console().print("[yellow]Interrupted.[/] Run the same command again to resume.")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Exception as exc:  # a bug: say so plainly, keep the traceback for HFGET_DEBUG=1
        from ..net.tokens import redact as _redact

        message = _redact(f"{type(exc).__name__}: {exc}", *secrets())
        if json_mode:
            from .render import emit_json

            emit_json({"ok": False, "error": {"kind": "internal", "message": message, "exit_code": 1}})
        stderr_console().print(f"[bold red]Internal error:[/] {message}")
        stderr_console().print("Run again with HFGET_DEBUG=1 for the traceback, and please report it.")
        if debug:
            _print_traceback(secrets())
        raise typer.Exit(1) from None


def _print_traceback(secrets: list[str]) -> None:
    from ..net.tokens import redact

    print(redact(traceback.format_exc(), *secrets), file=sys.stderr)


def progress_mode(quiet: bool, json_mode: bool) -> str:
    if quiet or json_mode:
        return "none"
    return "rich" if sys.stdout.isatty() and sys.stderr.isatty() else "plain"


def known_secrets(settings_box: list, *explicit: str | None) -> list[str]:
    """Every secret a message could contain: tokens, and the passwords inside proxy URLs (not the URLs)."""
    found = [s for s in explicit if s]
    for settings in settings_box:
        for key in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "MODELSCOPE_API_TOKEN"):
            if settings.get(key):
                found.append(settings.get(key))
        if settings.token.is_set:
            found.append(settings.token.value)
        for key in ("HFGET_PROXY", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"):
            password = proxy_password(settings.get(key))
            if password:
                found.append(password)
    return found


def proxy_password(url: str | None) -> str | None:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).password if url and "://" in url else None
    except ValueError:
        return None
