"""`hfget env [REPO]`: the environment that makes `from_pretrained` work here, as lines for your shell."""

from __future__ import annotations

import os
import sys
from enum import Enum
from typing import Annotated, Optional

import typer

from .cli_common import CacheDir, Endpoint, EnvFile, JsonOut, Proxy, RepoType, boundary, known_secrets


class Shell(str, Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"
    powershell = "powershell"
    cmd = "cmd"
    dotenv = "dotenv"


def verdict_shells(asked: list[Shell] | None, *, windows: bool | None = None) -> tuple[str, ...]:
    """The shells diagnose's verdict writes its lines for, besides `.env`: those asked for with --shell; by default
    on Windows both of its shells (which one a user types in is anyone's guess there), elsewhere none."""
    if asked:
        return tuple(dict.fromkeys(s.value for s in asked))
    return ("powershell", "cmd") if (os.name == "nt" if windows is None else windows) else ()


def default_shell(environ=os.environ) -> str:
    """The shell this is probably run from: PowerShell on Windows, else $SHELL when it is one we write, else bash."""
    if sys.platform == "win32":
        return "powershell"
    name = os.path.basename(environ.get("SHELL", ""))
    return name if name in ("bash", "zsh", "fish") else "bash"


def env(
    repo: Annotated[
        Optional[str], typer.Argument(help="The repo your app loads (default: DEFAULT_MODEL).", show_default=False)
    ] = None,
    shell: Annotated[
        Optional[Shell],
        typer.Option("--shell", help="Write lines for this shell (default: yours, from $SHELL; PowerShell on Windows).",
                     show_default=False),
    ] = None,
    revision: Annotated[str, typer.Option("--revision", "-r", help="Branch, tag or commit your app loads.")] = "main",
    repo_type: Annotated[RepoType, typer.Option("--repo-type", help="Kind of repo.")] = RepoType.model,
    cache_dir: CacheDir = None,
    endpoint: Endpoint = None,
    proxy: Proxy = None,
    json_out: JsonOut = False,
    env_file: EnvFile = None,
) -> None:
    """Print the variables that make from_pretrained(REPO) work here, for your shell.

    HF_HUB_OFFLINE=1 when REPO is complete in the cache; else the route hfget diagnose finds (HF_ENDPOINT, proxy
    variables). Use it as: eval "$(hfget env REPO)".
    """
    flags = {"HF_HUB_CACHE": str(cache_dir) if cache_dir else None, "HF_ENDPOINT": endpoint, "HFGET_PROXY": proxy}
    settings_box: list = []
    secrets = lambda: known_secrets(settings_box, urls=(proxy, endpoint))  # noqa: E731
    with boundary(json_out, secrets=secrets):
        from .. import config
        from ..doctor.shells import ShellQuoteError, render
        from ..flows.appenv import app_environment
        from ..redact import redact
        from .render import emit_json

        settings = config.resolve(flags, env_file=env_file)
        settings_box.append(settings)
        report = app_environment(settings, repo, revision, repo_type.value)
        if json_out:
            emit_json(report.to_dict())
        else:
            try:
                text = render(report.assignments, (shell.value if shell else default_shell()), report.comments)
            except ShellQuoteError as error:
                from ..errors import UsageError

                raise UsageError(f"A value cannot be written for this shell: {error}.",
                                 "Use another --shell (dotenv, bash, PowerShell take any value).") from None
            sys.stdout.write(redact(text, *secrets()))
    raise typer.Exit(0 if report.ok else 1)
