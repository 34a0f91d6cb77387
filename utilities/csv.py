"""CSV downloads, for the API (`?format=csv` negotiates the renderer) and the pages:
rows are streamed, and every cell goes through `csv_cell`."""

import csv
import json
import re
from decimal import Decimal

from django.http import StreamingHttpResponse
from rest_framework.renderers import BaseRenderer

# A spreadsheet runs a cell starting with one of these as a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A negative number written as text is read as that number, never as a formula.
PLAIN_NUMBER = re.compile(r"-\d+(\.\d+)?(E[-+]?\d+)?")


class CSVRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        # Views stream their own CSV; what reaches here is an error body.
        return json.dumps(data).encode()


class Echo:
    """A file-like object whose write() hands the line back to the csv writer's caller."""

    def write(self, value):
        return value


def csv_cell(value):
    """A cell as a spreadsheet should show it: text that would start a formula gets
    a leading `'` (shown as text, never evaluated); numbers, including negative
    ones and their exact decimal strings, stay numbers."""
    if value is None or isinstance(value, (int, float, Decimal)):
        return value
    # Stored JSON (event attributes) as JSON, which a spreadsheet or a script can
    # read back, not as Python's dict notation.
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else str(value)
    if text.startswith(FORMULA_STARTS) and not PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_line(writer, cells) -> bytes:
    # Text that no UTF-8 encoder takes (a lone surrogate read back from stored JSON)
    # is written as its escape instead of breaking the download halfway.
    return writer.writerow([csv_cell(c) for c in cells]).encode("utf-8", "backslashreplace")


def streaming_csv(header: list[str], rows, filename: str) -> StreamingHttpResponse:
    """Stream `rows` (an iterator of sequences) as a CSV download, with constant memory."""
    writer = csv.writer(Echo())

    def lines():
        yield csv_line(writer, header)
        for row in rows:
            yield csv_line(writer, row)

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
