"""Request body parsers for every API endpoint (settings `DEFAULT_PARSER_CLASSES`).

Each reads a bounded body and holds what it parsed to the rules of
`utilities.inputs` before a view sees it: a JSON body nested too deep, a
number out of range, or a string with a control character or an unpaired
surrogate is a 400 naming the field, whatever the endpoint does next.
"""

import json
import math

from django.conf import settings
from django.core.exceptions import TooManyFieldsSent
from django.http import QueryDict
from rest_framework import exceptions, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser, get_encoding
from rest_framework.settings import api_settings

from utilities.inputs import MAX_JSON_DEPTH, data_problem, querydict_problem

# Beyond a 64-bit integer or a double's exponent, a JSON number is out of range:
# databases and Decimal arithmetic overflow on it.
MAX_JSON_INTEGER = 2**63 - 1
MAX_JSON_EXPONENT = 308
TOO_DEEP = f"The body is nested more than {MAX_JSON_DEPTH} levels deep."


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"

    def __init__(self):
        megabytes = settings.DATA_UPLOAD_MAX_MEMORY_SIZE // (1024 * 1024)
        super().__init__(f"The body is larger than {megabytes} MB; send smaller batches.")


def read_body(stream, request) -> bytes:
    """The body, refused with 413 past DATA_UPLOAD_MAX_MEMORY_SIZE without reading on."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    length = request.META.get("CONTENT_LENGTH") if request is not None else None
    if length and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge()
    body = stream.read(limit + 1) if stream is not None else b""
    if len(body) > limit:
        raise PayloadTooLarge()
    return body


def reject_constant(name):
    raise ValueError(f"{name} is not a number this API accepts; numbers must be finite.")


def bounded_int(text: str) -> int:
    value = int(text)
    if abs(value) > MAX_JSON_INTEGER:
        raise ValueError(f"Number {text[:20]}… is out of range.")
    return value


def bounded_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"Number {text[:40]} is out of range.")
    return value


def rejected(problem: tuple[str, str]) -> exceptions.ValidationError:
    field, message = problem
    return exceptions.ValidationError({field or api_settings.NON_FIELD_ERRORS_KEY: [message]})


class StrictJSONParser(JSONParser):
    """JSON with bounded size, depth and numbers, and only acceptable text."""

    parse_float = staticmethod(bounded_float)
    parse_int = staticmethod(bounded_int)

    def parse(self, stream, media_type=None, parser_context=None):
        context = parser_context or {}
        body = read_body(stream, context.get("request"))
        try:
            text = body.decode(get_encoding(context))
            data = json.loads(
                text,
                parse_float=self.parse_float,
                parse_int=self.parse_int,
                parse_constant=reject_constant,
            )
        except RecursionError:
            raise exceptions.ParseError(TOO_DEEP) from None
        except ValueError as error:  # UnicodeDecodeError and JSONDecodeError included
            raise exceptions.ParseError(f"The body is not valid JSON: {error}") from None
        problem = data_problem(data, source=text)
        if problem is not None:
            raise rejected(problem)
        return data


def checked_form(data: QueryDict) -> QueryDict:
    problem = querydict_problem(data)
    if problem is not None:
        raise rejected(problem)
    return data


class StrictFormParser(FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        context = parser_context or {}
        body = read_body(stream, context.get("request"))
        try:
            return checked_form(QueryDict(body, encoding=get_encoding(context)))
        except TooManyFieldsSent as error:
            raise exceptions.ParseError(str(error)) from None


class StrictMultiPartParser(MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            parsed = super().parse(stream, media_type, parser_context)
        except TooManyFieldsSent as error:
            raise exceptions.ParseError(str(error)) from None
        checked_form(parsed.data)
        return parsed
