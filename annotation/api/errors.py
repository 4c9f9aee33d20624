"""How the APIs answer a request the domain refused: one rule for every app."""

from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, ValidationError

from .. import errors


class ConflictError(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The state does not allow this; reload and ask again."
    default_code = "conflict"


def api_error(exc: errors.DomainError) -> APIException:
    """404 for errors.NotFound, 409 naming the field for errors.Conflict, else 400 naming it."""
    if isinstance(exc, errors.NotFound):
        return NotFound(exc.message)
    body = {exc.field or "non_field_errors": [exc.message]}
    if isinstance(exc, errors.Conflict):
        return ConflictError(body)
    return ValidationError(body)
