"""What text the portal accepts: no control characters, NUL or lone surrogates.

Such characters break mail headers and CSV rows, PostgreSQL refuses NUL, and a
lone surrogate cannot be encoded as UTF-8, so a stored one would break every
read that includes it. One rule for every string that comes in.
"""

import re

_ANY_LINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_SINGLE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def text_problem(value: str, *, single_line: bool = True) -> str | None:
    """Why `value` is not acceptable text, or None. Multi-line text (descriptions)
    may hold tabs and line breaks; names, ids and parameters may not."""
    found = (_SINGLE_LINE if single_line else _ANY_LINE).search(value)
    if found is None:
        return None
    code = ord(found.group())
    if 0xD800 <= code <= 0xDFFF:
        return f"Contains an unpaired surrogate (U+{code:04X}); send valid Unicode text."
    return f"Control character U+{code:04X} is not allowed here."


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def header_text(value: str) -> str:
    """Text for a mail header: line breaks and other controls in stored names (older
    data, or an operator's import) become spaces, so data can never add a header."""
    return " ".join(_CONTROL_CHARACTERS.sub(" ", value).split())
