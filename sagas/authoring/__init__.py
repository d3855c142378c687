"""Workflow authoring: publishing, the workflow admin, diff, import/export, the catalogue.

publish     who may publish; validating, publishing and archiving documents
transfer    YAML dumps in reading order; importing a file of documents
diff        two versions' YAML compared line by line
catalogue   every registered action and step kind, and the workflows using each
selectors   the current versions, a workflow's history, the sagas on each version
forms, admin                the workflow admin (README: Workflow authoring)
management/commands         loadworkflows, dumpworkflows

This package is an installed app (for its admin and its commands), so Django
imports it before the models are ready: the public names below are loaded
from their modules on first use (PEP 562) rather than when it is imported.
"""

from importlib import import_module

_PUBLIC = {
    "PUBLISH_PERMISSION": "publish",
    "archive_workflow": "publish",
    "can_publish": "publish",
    "check_document": "publish",
    "parse_document": "publish",
    "publish_workflow": "publish",
    "validation_context": "publish",
    "with_batch": "publish",
    "in_dependency_order": "publish",
    "documents_in": "transfer",
    "dump_document": "transfer",
    "dump_documents": "transfer",
    "human_order": "transfer",
    "import_workflows": "transfer",
    "DiffLine": "diff",
    "diff_versions": "diff",
    "action_catalogue": "catalogue",
    "is_latest": "selectors",
    "latest_versions": "selectors",
    "running_saga_counts": "selectors",
    "versions_of": "selectors",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)


def __dir__():
    return sorted([*globals(), *_PUBLIC])
