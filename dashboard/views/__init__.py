"""Dashboard pages, one module per page area; HTMX requests get the page's fragment.

Every view checks the user's role on the server (common.py). Writes go
through the engine's services (sagas.engine) and the approvals services,
which decide what is allowed; a view only translates their answers into
pages. The names below are the views dashboard/urls.py routes to.
"""

from .inbox import approval, inbox
from .overview import overview
from .sagas import saga_action, saga_bulk, saga_detail, saga_list
from .workflows import workflow_list, workflow_start

__all__ = [
    "approval",
    "inbox",
    "overview",
    "saga_action",
    "saga_bulk",
    "saga_detail",
    "saga_list",
    "workflow_list",
    "workflow_start",
]
