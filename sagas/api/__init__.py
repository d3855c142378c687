"""The REST API under /api/v1/: sagas, events, workflows, health (approvals plug in theirs)."""
