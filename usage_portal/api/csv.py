"""CSV over the API: `?format=csv` negotiates this renderer; rows are streamed."""

import csv
import json

from django.http import StreamingHttpResponse
from rest_framework.renderers import BaseRenderer


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


def streaming_csv(header: list[str], rows, filename: str) -> StreamingHttpResponse:
    """Stream `rows` (an iterator of sequences) as a CSV download, with constant memory."""
    writer = csv.writer(Echo())

    def lines():
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow(row)

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
