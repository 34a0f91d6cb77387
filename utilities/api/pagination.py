"""List pagination shared by every API list: {"next", "previous", "results"}, and
cursor pagination for lists ordered by time."""

from datetime import UTC

from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.response import Response

from utilities.inputs import SUPPORTED_DATES
from utilities.text import text_problem


class PagePagination(PageNumberPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_paginated_response(self, data):
        return Response(
            {
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema):
        full = super().get_paginated_response_schema(schema)
        full["properties"].pop("count", None)
        full["required"] = ["results"]
        return full


class CheckedCursorPagination(CursorPagination):
    """A cursor comes back from the client, so its position is input like any other:
    a time position is brought to UTC within the supported dates (PostgreSQL
    refuses offsets past 15:59, and converting year 9999 to UTC overflows);
    anything else that is not a position this list wrote is an invalid cursor."""

    def decode_cursor(self, request):
        cursor = super().decode_cursor(request)
        if cursor is None or cursor.position is None:
            return cursor
        if text_problem(cursor.position):
            raise NotFound(self.invalid_cursor_message)
        try:
            moment = parse_datetime(cursor.position)
        except ValueError:
            raise NotFound(self.invalid_cursor_message) from None
        if moment is None:
            return cursor
        first, last = SUPPORTED_DATES
        if not first <= moment.date() <= last:
            raise NotFound(self.invalid_cursor_message)
        if moment.tzinfo is not None:
            cursor = cursor._replace(position=moment.astimezone(UTC).isoformat())
        return cursor
