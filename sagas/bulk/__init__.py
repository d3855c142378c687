"""Bulk actions on every saga a filter matches (issue 16): preview, create, a task that works through them.

- registry.py: the actions bulk offers, each an operator service of the engine
  (retry and cancel here; pause and resume register themselves the same way);
- services.py: the filter checked (the saga list's own FilterSet), the preview,
  the operation created with one queued outcome per saga, and its task queued;
- runner.py: the django-q2 task that acts on each saga in its own transaction
  and records its outcome there, so that a task run twice (or taken over after
  its worker died) acts on no saga twice; the sweep that takes over.
"""

from .registry import BulkAction, actions, get_action, register_bulk_action
from .runner import resume_stale, run_bulk
from .services import BULK_TASK, BulkRefused, create_bulk, matching, outcomes_page, preview_bulk

__all__ = [
    "BULK_TASK",
    "BulkAction",
    "BulkRefused",
    "actions",
    "create_bulk",
    "get_action",
    "matching",
    "outcomes_page",
    "preview_bulk",
    "register_bulk_action",
    "resume_stale",
    "run_bulk",
]
