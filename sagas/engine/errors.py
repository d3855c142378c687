"""What the engine refuses, and how an interface reports it (code and HTTP status)."""


class SagaError(Exception):
    """A request the engine refuses; `code` and `status` say how an interface reports it."""

    code = "invalid"
    status = 400

    def __init__(self, message, fields=None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class NotFound(SagaError):
    code = "not_found"
    status = 404


class Forbidden(SagaError):
    """The user may not do this (not eligible, four-eyes); nothing was changed."""

    code = "forbidden"
    status = 403


class Conflict(SagaError):
    code = "conflict"
    status = 409


class InvalidInput(SagaError):
    code = "invalid"
    status = 400


class IdempotencyConflict(Conflict):
    """The key started another saga with another input; `saga_id` names it, for callers who may see it."""

    def __init__(self, message, *, saga_id):
        super().__init__(message)
        self.saga_id = saga_id


class Expired(Conflict):
    """The act came after its step's deadline: the deadline was fired instead (README, Approvals)."""

    code = "expired"
