"""How `hfget diagnose` and `hfget token-check` look on a terminal. (Their `--json` is `report.to_dict()`.)

Everything shown comes from the reports, which hold masked tokens only; markup from servers and settings is escaped.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..diagnose import DiagnoseReport, RouteReport
from ..doctor.checks import FAIL, OK, SKIP, WARN, Check
from ..doctor.tokencheck import TokenInfo, TokenReport
from ..units import human_duration

MARK = {OK: "[green]✓[/]", WARN: "[yellow]![/]", FAIL: "[bold red]✗[/]", SKIP: "[dim]-[/]", "info": "[dim]·[/]"}
ROUTE_COLUMNS = (("proxy", "proxy"), ("dns", "DNS"), ("tcp", "TCP"), ("tls", "TLS"), ("http", "API"), ("speed", "speed"))
GROUP_ORDER = ("settings", "proxy", "tokens", "cache", "conflicts", "versions")


SHELL_NAMES = {"powershell": "PowerShell", "cmd": "cmd.exe", "bash": "bash", "zsh": "zsh", "fish": "fish",
               "dotenv": ".env"}


def diagnose(console: Console, report: DiagnoseReport) -> None:
    console.print(
        f"[bold]hfget diagnose[/]: {len(report.routes)} route(s) to {escape(report.probe_repo)}, at most "
        f"{report.timeout:g} s per step; done in {human_duration(report.elapsed)}",
        highlight=False,
    )
    if report.routes:
        _routes(console, report.routes)
    _checks(console, report.checks)
    _verdict(console, report)


def _routes(console: Console, routes: list[RouteReport]) -> None:
    table = Table(title="Routes, in the order downloads try them", title_justify="left", show_edge=False)
    table.add_column("route", overflow="fold")
    for _, title in ROUTE_COLUMNS:
        table.add_column(title, justify="center")
    table.add_column("result", overflow="fold")
    for route in routes:
        by_layer = {c.name: c for c in route.layers}
        cells = []
        for layer, _ in ROUTE_COLUMNS:
            check = by_layer.get(layer)
            if check is None:
                cells.append("[dim]·[/]")
            elif layer == "speed" and check.status in (OK, WARN):
                rate = escape(check.detail.removeprefix("slow: ").split(" (")[0])
                cells.append(f"[yellow]{rate}[/]" if check.status == WARN else rate)
            else:
                cells.append(MARK.get(check.status, "?"))
        failed = route.failed
        if failed is not None:
            result = f"[red]{escape(failed.detail)}[/]"
        else:
            api = by_layer.get("http")
            result = escape(api.detail) if api else ""
        table.add_row(escape(route.label), *cells, result)
    console.print(table)


def _checks(console: Console, checks: list[Check]) -> None:
    table = Table(title="Checks", title_justify="left", show_edge=False)
    for column in ("", "group", "check", "finding"):
        table.add_column(column, overflow="fold")
    rank = {g: i for i, g in enumerate(GROUP_ORDER)}
    for check in sorted(checks, key=lambda c: rank.get(c.group, len(rank))):
        finding = escape(check.detail)
        if check.hint and check.status in (WARN, FAIL):
            finding += f"\n[bold]→[/] {escape(check.hint)}"
        table.add_row(MARK.get(check.status, "?"), check.group, escape(check.name), finding)
    console.print(table)


def _verdict(console: Console, report: DiagnoseReport) -> None:
    v = report.verdict
    console.print()
    if v.fix_first:
        console.print("[bold red]✗[/] [bold]Fix these settings first:[/]", highlight=False)
        for line in v.fix_first:
            console.print(f"  [red]✗[/] {escape(line)}", highlight=False)
    mark = "[bold green]✓[/]" if v.ok else "[bold red]✗[/]"
    console.print(f"{mark} [bold]{escape(v.headline)}[/]", highlight=False)
    # Never wrapped: these lines are for copying.
    if v.env_lines:
        where = escape(v.env_file) if v.env_file else ".env (none yet: create it in your project folder)"
        console.print(f"  Add to {where}:", highlight=False, soft_wrap=True)
        for line in v.env_lines:
            console.print(f"    [cyan]{escape(line)}[/]", highlight=False, soft_wrap=True)
        for shell, lines in v.shell_lines.items():
            console.print(f"  Or for this {SHELL_NAMES.get(shell, shell)} session:", highlight=False)
            for line in lines:
                console.print(f"    [cyan]{escape(line)}[/]", highlight=False, soft_wrap=True)
    if v.remove:
        console.print("  Remove:", highlight=False)
        for line in v.remove:
            console.print(f"    [cyan]{escape(line)}[/]", highlight=False, soft_wrap=True)
    if v.ok and v.flags and (v.env_lines or v.remove):
        console.print(f"  Or for one run: [cyan]hfget download REPO {escape(' '.join(v.flags))}[/]", highlight=False,
                      soft_wrap=True)
    if v.failures and not v.ok:
        for failure in v.failures:
            console.print(f"  [red]✗[/] {escape(failure)}", highlight=False)
    for advice in v.advice:
        console.print(f"  [bold]Fix:[/] {escape(advice)}", highlight=False)


# --- token-check ------------------------------------------------------------------------------------------------


def token_check(console: Console, report: TokenReport) -> None:
    _token_table(console, "HF tokens, highest precedence first", report.hf,
                 "No HF token found (HF_TOKEN, HUGGING_FACE_HUB_TOKEN, .env, the token file, stored tokens).")
    if report.modelscope:
        _token_table(console, "ModelScope tokens", report.modelscope, "")
    for note in report.notes:
        console.print(f"  note: {escape(note)}", highlight=False)
    effective = report.in_effect
    if effective is None:
        mark = "[yellow]![/]"
    else:
        mark = "[bold green]✓[/]" if effective.valid is True else "[bold red]✗[/]"
    console.print(f"{mark} {escape(report.summary)}", highlight=False)
    if report.repo is not None:
        access = report.repo
        mark = "[bold green]✓[/]" if access.opens else "[bold red]✗[/]"
        where = f" (asked {escape(access.endpoint)})" if access.endpoint else ""
        console.print(f"{mark} {escape(access.repo)}: [bold]{escape(access.status)}[/]: {escape(access.detail)}{where}",
                      highlight=False)
    if report.hint and not report.ok:
        console.print(f"[bold]Fix:[/] {escape(report.hint)}", highlight=False)


def _token_table(console: Console, title: str, tokens: list[TokenInfo], empty: str) -> None:
    if not tokens:
        console.print(f"[dim]{escape(empty)}[/]")
        return
    table = Table(title=title, title_justify="left", show_edge=False)
    for column in ("source", "token", "state", "valid", "account, or why"):
        table.add_column(column, overflow="fold")
    for t in tokens:
        valid = {True: MARK[OK], False: MARK[FAIL], None: "[dim]?[/]"}[t.valid] if t.state != "empty" else "[dim]·[/]"
        why = escape(t.detail) + (f" [dim]({escape(t.note)})[/]" if t.note else "")
        state = "[bold]in effect[/]" if t.state == "in effect" else t.state
        table.add_row(escape(t.source), escape(t.masked), state, valid, why)
    console.print(table)
