"""The REST API under /api/v1/: sagas, events, workflows, health (approvals plug in theirs).

What other apps' endpoints may build on is named here; the modules behind
these names are this package's own business:

KeysetPagination    newest-first pages by (created_at, id) with a `next` link
Text                a serializer field that takes a JSON string and nothing else
error_responses     the OpenAPI error responses, in the one error shape, for given statuses
"""

from .errors import error_responses
from .pagination import KeysetPagination
from .serializers import Text

__all__ = ["KeysetPagination", "Text", "error_responses"]
