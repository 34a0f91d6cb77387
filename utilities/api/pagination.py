"""List pagination shared by every API list: {"next", "previous", "results"}, and
cursor pagination for lists ordered by time. Neither counts the list."""

from datetime import UTC

from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from utilities.inputs import SUPPORTED_DATES
from utilities.text import text_problem


class PagePagination(PageNumberPagination):
    """Numbered pages that count nothing: a page reads one row past its end to know
    whether another follows (the response has no count, and counting a large list
    took longer than reading a page of it)."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
    # Past this, an offset no list reaches (and more than SQLite's integers hold).
    max_page = 10**9

    def paginate_queryset(self, queryset, request, view=None):
        size = self.get_page_size(request)
        if not size:
            return None
        self.request = request
        self.number = self.requested_page(request)
        start = (self.number - 1) * size
        rows = list(queryset[start : start + size + 1])
        if not rows and self.number > 1:
            raise NotFound(self.invalid_page_message)
        self.more = len(rows) > size
        return rows[:size]

    def requested_page(self, request) -> int:
        try:
            number = int(request.query_params.get(self.page_query_param) or 1)
        except ValueError:
            raise NotFound(self.invalid_page_message) from None
        if not 1 <= number <= self.max_page:
            raise NotFound(self.invalid_page_message)
        return number

    def get_next_link(self):
        if not self.more:
            return None
        url = self.request.build_absolute_uri()
        return replace_query_param(url, self.page_query_param, self.number + 1)

    def get_previous_link(self):
        if self.number == 1:
            return None
        url = self.request.build_absolute_uri()
        if self.number == 2:
            return remove_query_param(url, self.page_query_param)
        return replace_query_param(url, self.page_query_param, self.number - 1)

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
