class DomainError(Exception):
    """A request the domain refuses; `field` names the input at fault, when there is one."""

    def __init__(self, message, field=None):
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(DomainError):
    """The thing named in the URL is not the requester's (answered 404)."""


class Conflict(DomainError):
    """The request was valid but the state does not allow it, or moved on (answered 409)."""


class ImportRejected(DomainError):
    """A whole import refused before anything was written (empty file, too big, wrong kind)."""
