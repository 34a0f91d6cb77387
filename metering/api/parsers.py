"""JSON for usage events: exact decimals, no NaN/Infinity, and a body size limit."""

import json
from decimal import Decimal

from rest_framework import exceptions
from rest_framework.parsers import JSONParser

from metering.ingestion import MAX_BODY_BYTES
from usage_portal.api.errors import PayloadTooLarge


def reject_constant(name):
    raise ValueError(f"{name} is not a number this API accepts; quantities must be finite.")


class EventsJSONParser(JSONParser):
    """Numbers parse to Decimal so 0.1 stays 0.1; the body is read at most once, bounded."""

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        length = request.META.get("CONTENT_LENGTH") if request is not None else None
        if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
            raise PayloadTooLarge()
        body = stream.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLarge()
        try:
            return json.loads(
                body.decode("utf-8"), parse_float=Decimal, parse_constant=reject_constant
            )
        except (ValueError, UnicodeDecodeError) as error:
            raise exceptions.ParseError(f"The body is not valid JSON: {error}") from None
