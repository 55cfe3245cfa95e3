"""Human-readable sizes and durations, and their parsing (for filters such as `size>1GB`)."""

from __future__ import annotations

import re

_UNITS = ["B", "kB", "MB", "GB", "TB", "PB"]


def human_bytes(n: float) -> str:
    """Decimal units, like huggingface_hub and most download tools: 1.2 GB."""
    n = float(n)
    for unit in _UNITS:
        if abs(n) < 1000 or unit == _UNITS[-1]:
            return f"{int(n)} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def human_rate(bytes_per_second: float) -> str:
    return human_bytes(bytes_per_second) + "/s"


def human_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?i?b?)\s*$", re.IGNORECASE)
_FACTORS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}


def parse_size(text: str) -> int:
    """'1.5GB' -> 1_500_000_000, '2GiB' -> 2*2**30, '500' -> 500. Raises ValueError."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r}")
    number, unit = float(match.group(1)), match.group(2).lower()
    binary = "i" in unit
    letter = unit[:1] if unit[:1] != "b" else ""
    factor = 1024 ** ("kmgtp".index(letter) + 1) if binary and letter else _FACTORS[letter]
    return int(number * factor)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)
_SECONDS = {
    "s": 1, "sec": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 7 * 86400, "week": 7 * 86400, "weeks": 7 * 86400,
    "y": 365 * 86400, "year": 365 * 86400, "years": 365 * 86400,
}


def parse_duration(text: str) -> float:
    """'30d' -> 2592000.0, '12h', '90min', '2w', '1y'; a bare number is days (what `--older-than 30` means).

    Raises ValueError.
    """
    match = _DURATION.match(text)
    if not match or match.group(2).lower() not in {"", *_SECONDS}:
        raise ValueError(f"not a duration: {text!r}")
    unit = match.group(2).lower()
    return float(match.group(1)) * (_SECONDS[unit] if unit else 86400)


def human_age(seconds: float) -> str:
    """How long ago, compactly, for table cells: 'now', '5 min', '3 h', '12 d', '4 mo', '2 y'."""
    if seconds < 60:
        return "now"
    for limit, size, unit in ((3600, 60, "min"), (86400, 3600, "h"), (60 * 86400, 86400, "d"),
                              (730 * 86400, 30 * 86400, "mo"), (float("inf"), 365 * 86400, "y")):
        if seconds < limit:
            return f"{int(seconds // size)} {unit}"
    raise AssertionError("unreachable")


def plural(count: int, noun: str) -> str:
    """`1 file`, `2 files`, `0 files`."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
