"""Option parsing shared by commands (sizes, output formats, signature settings)."""

from __future__ import annotations

import re
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ipsms.errors import UsageError

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "ki": 1024,
          "m": 1000**2, "mb": 1000**2, "mib": 1024**2, "mi": 1024**2,
          "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "gi": 1024**3}


def parse_size(text: str) -> int:
    """``'1MiB'`` -> 1048576, ``'512k'`` -> 512000, ``'2048'`` -> 2048."""
    m = _SIZE_RE.match(text)
    unit = (m.group(2) or "").lower() if m else ""
    if not m or unit not in _UNITS:
        raise UsageError(f"cannot read the size {text!r}", hint="use bytes or a unit: 64KiB, 1MiB")
    size = int(float(m.group(1)) * _UNITS[unit])
    if size < 1:
        raise UsageError(f"size {text!r} must be at least 1 byte")
    return size


HmacOption = Annotated[str, typer.Option(
    "--hmac", envvar="IPSMS_HMAC", metavar="ALGO[:ORDER][:ENCODING]",
    help="HMAC variant for --signature-mode hmac, e.g. sha256, sha1:message+refid, "
    "sha512:refid+message:base64.")]
DEFAULT_HMAC = "sha256"
# (Help texts say "(default: ...)": typer renders "[...]" as rich markup and drops it.)
DbOption = Annotated[Path | None, typer.Option(
    "--db", envvar="IPSMS_DB",
    help="SQLite message store (default: ipsms.sqlite3 in the state home).")]


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    plain = "plain"


def resolve_format(requested: OutputFormat | None) -> OutputFormat:
    """The human form on a terminal, NDJSON on a pipe, unless asked for."""
    if requested is not None:
        return requested
    return OutputFormat.table if sys.stdout.isatty() else OutputFormat.json
