"""Reads about workflow versions: the current ones, a workflow's history, the sagas still on each."""

from django.db.models import Count

from sagas.models import Saga, WorkflowDefinition
from sagas.states import FINISHED_SAGA_STATES


def latest_versions(*, include_archived=False):
    """The newest version of each workflow, by name; archived workflows only when asked."""
    latest = {}
    for definition in WorkflowDefinition.objects.order_by("name", "-version"):
        latest.setdefault(definition.name, definition)
    return [
        d
        for d in latest.values()
        if include_archived or d.status == WorkflowDefinition.Status.PUBLISHED
    ]


def is_latest(definition):
    return not WorkflowDefinition.objects.filter(
        name=definition.name, version__gt=definition.version
    ).exists()


def running_saga_counts(definition_ids):
    """{definition id: number of sagas on it that have not finished}."""
    rows = (
        Saga.objects.filter(definition_id__in=list(definition_ids))
        .exclude(state__in=FINISHED_SAGA_STATES)
        .values("definition_id")
        .annotate(n=Count("id"))
    )
    return {row["definition_id"]: row["n"] for row in rows}


def versions_of(name):
    """Every version of a workflow, newest first, each with `.running` (unfinished sagas)."""
    versions = list(WorkflowDefinition.objects.filter(name=name).order_by("-version"))
    counts = running_saga_counts(v.pk for v in versions)
    for version in versions:
        version.running = counts.get(version.pk, 0)
    return versions
