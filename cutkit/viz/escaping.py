"""Text from the data as HTML that shows what is there: everything escaped, and the characters a
reader cannot see (C0 and C1 control characters such as NUL) or that reorder what a reader sees
(the bidirectional embeddings, overrides, isolates and marks, e.g. U+202E RIGHT-TO-LEFT OVERRIDE)
never written raw, but shown as their escape (``\\x00``, ``\\u202e``): in element text inside a
marked span, in an attribute (a tooltip) as plain text.

Layout whitespace (space, tab, newline, carriage return) is left to the callers, which draw it
with their own markers (:func:`cutkit.viz.tokenview.visible_text`).

>>> escape_text("ok\\u202e<b>")
'ok<span class="ck-tv-esc" style="color:#b2182b;font-family:monospace;font-size:11px" title="U+202E RIGHT-TO-LEFT OVERRIDE">\\\\u202e</span>&lt;b&gt;'
"""

from __future__ import annotations

import html
import re
import unicodedata

BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
"""The characters that change the display order of text around them (Unicode bidi controls)."""

ESCAPE_SPAN = (
    '<span class="ck-tv-esc" style="color:#b2182b;font-family:monospace;font-size:11px" '
    'title="{name}">{escape}</span>'
)
"""How a hidden character is drawn in element text (inline style: it survives JupyterLab's
sanitizer)."""

_HIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f" + "".join(sorted(BIDI_CONTROLS)) + "]")


def is_hidden(char: str) -> bool:
    """True for a control character other than layout whitespace, or a bidi control."""
    return _HIDDEN.fullmatch(char) is not None


def escape_of(char: str) -> str:
    """``\\x00`` / ``\\u202e``: how a hidden character is written."""
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _name(char: str) -> str:
    return f"U+{ord(char):04X} {unicodedata.name(char, 'control character')}"


def escape_text(text: str) -> str:
    """``text`` for HTML element content: escaped, hidden characters as marked escapes."""
    parts, last = [], 0
    for match in _HIDDEN.finditer(text):
        char = match.group()
        parts.append(html.escape(text[last : match.start()]))
        parts.append(ESCAPE_SPAN.format(name=_name(char), escape=html.escape(escape_of(char))))
        last = match.end()
    parts.append(html.escape(text[last:]))
    return "".join(parts)


def plain_escapes(text: str) -> str:
    """``text`` with each hidden character replaced by its escape (for attributes and other
    places that take no markup); not HTML-escaped."""
    return _HIDDEN.sub(lambda match: escape_of(match.group()), text)


def escape_attribute(text: str) -> str:
    """``text`` for a double-quoted HTML attribute (a tooltip): escaped, hidden characters as
    plain escapes, newlines as ``&#10;``."""
    return html.escape(plain_escapes(text), quote=True).replace("\n", "&#10;")
