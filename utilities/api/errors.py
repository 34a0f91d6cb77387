"""One error shape for the API: {"errors": [{"index"?, "field"?, "message"}]} or {"detail"}."""

import logging

from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import JsonResponse
from rest_framework import exceptions, status
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from utilities.api.parsers import PayloadTooLarge

logger = logging.getLogger(__name__)
NON_FIELD_KEYS = {api_settings.NON_FIELD_ERRORS_KEY, "__all__"}


def flatten_errors(detail, field: str | None = None, index: int | None = None) -> list[dict]:
    """Turn DRF's nested error detail into a flat list of {index, field, message}."""
    if isinstance(detail, dict):
        errors = []
        for key, value in detail.items():
            if isinstance(key, int):  # a list serializer's errors, by position
                child = f"{field}[{key}]" if field else None
                errors.extend(flatten_errors(value, child, key if field is None else index))
                continue
            child = field if key in NON_FIELD_KEYS else f"{field}.{key}" if field else str(key)
            errors.extend(flatten_errors(value, child, index))
        return errors
    if isinstance(detail, list):
        if any(isinstance(item, dict) for item in detail):
            errors = []
            for i, item in enumerate(detail):
                if item:
                    if field is None and index is None:
                        errors.extend(flatten_errors(item, None, i))
                    else:
                        errors.extend(flatten_errors(item, f"{field}[{i}]", index))
            return errors
        errors = []
        for item in detail:
            errors.extend(flatten_errors(item, field, index))
        return errors
    error = {"message": str(detail)}
    if field:
        error["field"] = field
    if index is not None:
        error["index"] = index
    return [error]


def drf_validation_error(error: DjangoValidationError) -> exceptions.ValidationError:
    """A model-level validation error, as the API's 400."""
    if hasattr(error, "error_dict"):
        return exceptions.ValidationError(error.message_dict)
    return exceptions.ValidationError({api_settings.NON_FIELD_ERRORS_KEY: error.messages})


class DatabaseUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "database_unavailable"
    default_detail = (
        "The database is unavailable; nothing from this request was stored. "
        "Retry shortly with the same event_ids."
    )
    retry_after_seconds = 5


def exception_handler(exc, context):
    if isinstance(exc, (OperationalError, InterfaceError)):
        # A lost connection or a locked/restarting database: the request's transaction
        # is gone, so the caller may safely resend (event_ids make it idempotent).
        logger.warning("Database unavailable: %s", exc)
        response = drf_exception_handler(DatabaseUnavailable(), context)
        response["Retry-After"] = str(DatabaseUnavailable.retry_after_seconds)
        return response
    if isinstance(exc, DjangoValidationError):
        exc = drf_validation_error(exc)
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.ValidationError):
        response.data = {"errors": flatten_errors(exc.detail)}
    elif response is not None and response.status_code == status.HTTP_400_BAD_REQUEST:
        # Unparseable bodies: the same shape as every other bad input.
        response.data = {"errors": [{"message": str(exc.detail)}]}
    return response


def json_not_found(request, exception=None):
    return JsonResponse({"detail": "Not found."}, status=404)


def json_server_error(request):
    return JsonResponse({"detail": "Server error."}, status=500)
