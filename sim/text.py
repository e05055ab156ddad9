"""Names printed as text: policy, scenario, group and model names come from user files, so they may hold Rich
markup (``[/red]``, which makes Rich raise) or terminal control sequences (ESC ..., which the terminal would obey).
Everything the CLI prints that holds such a name goes through :func:`printable`, and Rich tables get names as
:class:`rich.text.Text` (never parsed as markup)."""

from __future__ import annotations

import re

from rich.text import Text

# C0 controls, DEL and C1 controls (ESC, CSI, OSC ... start terminal sequences).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(value: object) -> str:
    """``value`` as a string with every control character shown as a visible escape (ESC becomes ``\\x1b``)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


def text(value: object, style: str = "") -> Text:
    """A Rich cell that shows ``value`` literally: no markup parsing, no control characters."""
    return Text(printable(value), style=style)
