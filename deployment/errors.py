"""The deployment domain's errors (answered by annotation.api.errors.api_error: 400 naming the
field, 409 for a state that does not allow the change, 404 for what is not the requester's)."""

from annotation import errors
from annotation.errors import DomainError


class DeploymentError(DomainError):
    """A device, fleet or channel change the domain refuses."""


class Conflict(DeploymentError, errors.Conflict):
    """The state does not allow it (roll back a channel with nothing before, enrol a device id twice)."""


class NotFound(DeploymentError, errors.NotFound):
    """No such device, fleet or channel in this project."""
