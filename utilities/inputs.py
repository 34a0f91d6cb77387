"""What any text, JSON body or date from outside must satisfy before code sees it.

One rule for every entry point (API parsers, the request middleware, forms,
filtersets, the `ingest` command): text holds no control characters and no
unpaired surrogates (`utilities.text`, the rule models share), JSON is nested at
most `MAX_JSON_DEPTH` levels, dates lie in `SUPPORTED_DATES`. PostgreSQL refuses
NUL in text, no UTF-8 encoder accepts a lone surrogate, and date arithmetic
overflows at years 1 and 9999: checked here, each is a 400 naming the field
instead of a 500 somewhere deeper.
"""

import json
import re
from datetime import date, datetime

from django.core.exceptions import ValidationError

from utilities.text import text_problem

# Field names whose values are multi-line text wherever they appear (JSON key or
# form field, admin inline prefixes like `items-0-tiers` included): descriptions,
# and JSON typed into the admin's text areas, which may be laid out over lines.
MULTILINE_FIELDS = frozenset({"description", "tiers", "thresholds", "attributes", "branding"})

# Deeper than any body the API defines (a plan's tiers sit 4 levels down); far
# below what would exhaust the interpreter's stack while parsing or walking.
MAX_JSON_DEPTH = 32
SUPPORTED_DATES = (date(2000, 1, 1), date(2100, 12, 31))


def is_multiline_field(name: str) -> bool:
    return name.rsplit("-", 1)[-1] in MULTILINE_FIELDS


def field_problem(name: str, value: str) -> str | None:
    """`text_problem` for the value of a field called `name`."""
    return text_problem(value, single_line=not is_multiline_field(name))


# Characters the text rule refuses that strict JSON lets through unescaped.
_RAW_REFUSED = re.compile(r"[\x7f-\x9f]")


def could_hold_refused_text(source: str) -> bool:
    """Whether JSON text could decode to a string the text rule refuses. Strict JSON
    keeps control characters out of strings unless escaped, and a lone surrogate
    only comes as an escape (no strict decoder yields one): without a backslash
    and without DEL or a C1 control, no string in it breaks the rule."""
    return "\\" in source or _RAW_REFUSED.search(source) is not None


def data_problem(data, source: str | None = None) -> tuple[str, str] | None:
    """(field path, reason) for a value in parsed JSON that breaks the text or depth
    rules, or None when none does. Walks with its own stack, so depth is bounded by the rule,
    not by the interpreter's recursion limit.

    `source`, the JSON text `data` was parsed from (strictly), spares the text checks
    of a body that cannot hold refused text (see could_hold_refused_text): a batch
    of ten thousand events is then walked for its depth alone."""
    if source is not None and not could_hold_refused_text(source):
        return depth_problem(data)
    # (value, its key or index, the trail of its parent, depth); paths are only
    # spelled out for the value at fault.
    pending = [(data, None, None, 1)]
    while pending:
        value, step, parent, depth = pending.pop()
        if isinstance(value, str):
            multiline = isinstance(step, str) and is_multiline_field(step)
            problem = text_problem(value, single_line=not multiline)
            if problem:
                return trail_path((step, parent)), problem
            continue
        if not isinstance(value, (dict, list)):
            continue
        if depth > MAX_JSON_DEPTH:
            return trail_path((step, parent)), f"Nested more than {MAX_JSON_DEPTH} levels deep."
        trail = (step, parent)
        if isinstance(value, list):
            pending.extend((item, index, trail, depth + 1) for index, item in enumerate(value))
            continue
        for name, item in value.items():
            problem = text_problem(name)
            if problem:
                return trail_path(trail) or name.encode("unicode_escape").decode("ascii"), problem
            pending.append((item, name, trail, depth + 1))
    return None


def depth_problem(data) -> tuple[str, str] | None:
    """data_problem's depth rule alone: only containers are walked."""
    if not isinstance(data, (dict, list)):
        return None
    pending = [(data, None, None, 1)]
    while pending:
        value, step, parent, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            return trail_path((step, parent)), f"Nested more than {MAX_JSON_DEPTH} levels deep."
        trail = (step, parent)
        items = enumerate(value) if isinstance(value, list) else value.items()
        pending.extend(
            (item, key, trail, depth + 1) for key, item in items if isinstance(item, (dict, list))
        )
    return None


def trail_path(trail) -> str:
    """`events[3].attributes.k` from a trail of (key or index, parent trail)."""
    steps = []
    while trail is not None and trail[0] is not None:
        step, trail = trail
        steps.append(f"[{step}]" if isinstance(step, int) else f".{step}")
    return "".join(reversed(steps)).lstrip(".")


def querydict_problem(data) -> tuple[str, str] | None:
    """(field, reason) for a QueryDict name or value that breaks the text rules, or None."""
    for name, values in data.lists():
        problem = text_problem(name)
        if problem:
            return name, problem
        for value in values:
            problem = field_problem(name, value) if isinstance(value, str) else None
            if problem:
                return name, problem
    return None


def validate_supported_date(value: date | datetime) -> None:
    """A form field validator: dates (and times) within `SUPPORTED_DATES`."""
    day = value.date() if isinstance(value, datetime) else value
    first, last = SUPPORTED_DATES
    if not first <= day <= last:
        raise ValidationError(
            f"Use a date between {first.isoformat()} and {last.isoformat()}.",
            code="unsupported_date",
        )


def load_json_text(text: str, **options):
    """`json.loads` for text typed or uploaded by a person (an admin text area, a
    line of a bulk file): ValueError naming the problem when it is not JSON, is
    nested too deep or holds text the rules refuse."""
    try:
        data = json.loads(text, **options)
    except RecursionError:
        raise ValueError(f"Nested more than {MAX_JSON_DEPTH} levels deep.") from None
    problem = data_problem(data)
    if problem:
        path, reason = problem
        raise ValueError(f"{path}: {reason}" if path else reason)
    return data
