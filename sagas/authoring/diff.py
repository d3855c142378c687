"""Comparing two versions of a workflow: a unified diff of their YAML, line by line."""

import difflib
from dataclasses import dataclass

from sagas.engine import NotFound
from sagas.models import WorkflowDefinition

from .transfer import dump_document


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "added", "removed", "hunk", "header" or "same"
    text: str


def diff_versions(*, name, old, new):
    """Lines of a unified diff between two versions' YAML; NotFound for a missing version."""
    found = {
        d.version: d for d in WorkflowDefinition.objects.filter(name=name, version__in=[old, new])
    }
    for version in (old, new):
        if version not in found:
            raise NotFound(f"workflow {name!r} has no version {version}")
    lines = difflib.unified_diff(
        dump_document(found[old].spec).splitlines(),
        dump_document(found[new].spec).splitlines(),
        fromfile=f"{name} v{old}",
        tofile=f"{name} v{new}",
        lineterm="",
        n=3,
    )
    result = []
    for line in lines:
        if line.startswith(("---", "+++")):
            kind = "header"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "added"
        elif line.startswith("-"):
            kind = "removed"
        else:
            kind = "same"
        result.append(DiffLine(kind, line))
    return result
