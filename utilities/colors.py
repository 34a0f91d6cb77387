"""Colours as brands give them: `#rrggbb`, and the text colour readable on each."""

import re

HEX_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
INKS = ("#ffffff", "#000000")


def color_problem(value: str) -> str | None:
    """Why `value` is not a colour the portal accepts, or None."""
    if HEX_COLOR.fullmatch(value):
        return None
    return "Give a colour as #rrggbb, six hexadecimal digits (for example #1f6feb)."


def relative_luminance(color: str) -> float:
    """WCAG 2's relative luminance of a `#rrggbb` colour, 0 (black) to 1 (white)."""
    channels = [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(first: str, second: str) -> float:
    """WCAG 2's contrast ratio between two colours, 1 to 21."""
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def readable_ink(background: str) -> str:
    """White or black, whichever contrasts more with `background` (white on a tie)."""
    return max(INKS, key=lambda ink: contrast_ratio(ink, background))
