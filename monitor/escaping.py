"""Captured text on its way out of govwatch: CSV cells that never start a spreadsheet formula, and
terminal text whose control characters are shown, never obeyed (one helper for the CLI and web)."""
from __future__ import annotations

import re
import sys
from typing import Any

_CSV_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """Spreadsheets run cells that start like a formula; captured text must never be one."""
    s = "" if value is None else str(value)
    return "'" + s if s.startswith(_CSV_FORMULA) else s


# C0 controls but tab and newline, DEL, the C1 controls (U+0080-U+009F: a terminal may read U+009B
# as CSI), and the bidirectional overrides/isolates that reorder what a reader sees.
_TERMINAL_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _visible(m: re.Match) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c <= 0xFF else f"\\u{c:04x}"


def terminal_text(value: Any, *, newlines: bool = True) -> str:
    """`value` for a terminal: escape sequences (ESC ] ... BEL, CSI colours), other C0/C1 controls and
    bidi overrides become visible `\\x1b`-style text; newlines are kept (or escaped with newlines=False)."""
    s = "" if value is None else str(value)
    s = _TERMINAL_UNSAFE.sub(_visible, s)
    return s if newlines else s.replace("\n", "\\n")


def console():
    """The CLI's rich console: in a pipe or a container log, tables are not squeezed into 80 columns."""
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def text_cell(value: Any):
    """A table cell of captured or user-written text: control characters shown escaped, and never
    read as rich markup (a title like "[link=...]" would otherwise become a terminal hyperlink)."""
    from rich.text import Text

    return Text(terminal_text(value, newlines=False))
