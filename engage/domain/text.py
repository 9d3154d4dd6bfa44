"""Text that users send: what every free-text field must satisfy.

Valid Unicode that can be stored and sent on (no lone surrogates, which JSON's
``\\ud800`` escapes can smuggle in and which Postgres and UTF-8 encoders
refuse), no control characters other than newline and tab, no bidirectional
embedding, override or isolate controls (they let a comment or a name display
as something other than what it is: "Trojan Source", CVE-2021-42574), and a
length limit counted in characters. The plain direction marks (LRM, RLM, ALM)
stay allowed: right-to-left writers need them, and they reorder nothing.
"""

from __future__ import annotations

import re

from engage.errors import ValidationError

_SURROGATE_RE = re.compile(r"[\ud800-\udfff]")
#: C0 and C1 controls, DEL, and the Unicode line/paragraph separators (which
#: break JavaScript string literals and some renderers).
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_OR_NEWLINE_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: LRE, RLE, PDF, LRO, RLO and LRI, RLI, FSI, PDI.
_BIDI_CONTROL_RE = re.compile(r"[\u202a-\u202e\u2066-\u2069]")


def check_text(value: object, field: str, *, max_chars: int, multiline: bool = True,
               blank_ok: bool = False, code: str | None = None) -> str:
    """Return ``value`` if it is acceptable text for ``field``.

    Args:
        value: what the client sent.
        field: its name, for the error message.
        max_chars: the most characters allowed.
        multiline: newlines and tabs allowed (comment bodies) or not (names, reasons).
        blank_ok: an empty or all-whitespace value is allowed.
        code: the error code (default ``invalid_<field>``).

    Raises:
        ValidationError: not a string, blank, too long, not valid Unicode, or
            with control characters.
    """
    code = code or f"invalid_{field}"
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string", code=code)
    if not blank_ok and not value.strip():
        raise ValidationError(f"{field} must not be blank", code=code)
    if len(value) > max_chars:
        raise ValidationError(f"{field} must be at most {max_chars} characters",
                              code=f"{field}_too_long")
    if _SURROGATE_RE.search(value):
        raise ValidationError(f"{field} is not valid Unicode (lone surrogate)",
                              code="invalid_characters")
    if (_CONTROL_RE if multiline else _CONTROL_OR_NEWLINE_RE).search(value):
        allowed = "other than newline and tab " if multiline else ""
        raise ValidationError(f"{field} must not contain control characters {allowed}".strip(),
                              code="invalid_characters")
    if _BIDI_CONTROL_RE.search(value):
        raise ValidationError(f"{field} must not contain bidirectional override, embedding or "
                              f"isolate characters (U+202A-U+202E, U+2066-U+2069)",
                              code="invalid_characters")
    return value
