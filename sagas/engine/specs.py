"""What the engine reads from a saga's pinned workflow document: a step's spec, kind, lease, retries."""

import random
from datetime import timedelta

from django.conf import settings

from sagas import kinds
from sagas.definitions import parse_duration, retry_policy
from sagas.models import WorkflowDefinition

# definition id -> its document; published versions never change.
_specs = {}
# definition id -> {step name: its spec}, branches included (names are unique in a document).
_by_name = {}


def forget_definitions(**kwargs):
    """Published versions never change, but ids can be reused after a delete (tests, SQLite)."""
    _specs.clear()
    _by_name.clear()


def spec_of(saga):
    """The saga's pinned document; published versions never change, so they are cached."""
    return document(saga.definition_id)


def document(definition_id):
    """A workflow version's document, read once per process (shared: never to be changed)."""
    spec = _specs.get(definition_id)
    if spec is None:
        spec = WorkflowDefinition.objects.values_list("spec", flat=True).get(pk=definition_id)
        _specs[definition_id] = spec
    return spec


def preload_definitions(limit=200):
    """Cache the most recently published documents: the versions new sagas are pinned to.

    At worker start (worker.warm_up), so a worker's first saga of a workflow
    does not wait for its document.
    """
    published = WorkflowDefinition.objects.filter(status=WorkflowDefinition.Status.PUBLISHED)
    _specs.update(published.order_by("-created_at").values_list("pk", "spec")[:limit])
    return len(_specs)


def step_spec(saga, step):
    """The spec of a step row: found by name, since names are unique across the document.

    Every element of a for_each runs the same steps, so all their rows share a spec.
    """
    specs = _by_name.get(saga.definition_id)
    if specs is None:
        specs = _by_name[saga.definition_id] = specs_by_name(spec_of(saga)["steps"])
    found = specs.get(step.name)
    if found is None and step.within_id is None:
        # A row whose name is not its document's (data written by hand): its place says.
        return spec_of(saga)["steps"][step.index]
    return found if found is not None else specs[step.name]


def specs_by_name(steps, into=None):
    """{name: spec} of these steps and every step inside their branches."""
    into = {} if into is None else into
    for spec in steps:
        into[spec["name"]] = spec
        kind = kinds.get(spec["type"])
        for _suffix, _branch, inner in kind.nested(spec) if kind else ():
            specs_by_name(inner, into)
    return into


def kind_of(step):
    kind = kinds.get(step.kind)
    if kind is None:
        raise LookupError(f"step kind {step.kind!r} is not registered in this process")
    return kind


def step_timeout(spec):
    """The lease of a claim of this step, in seconds."""
    if "timeout" in spec:
        return parse_duration(spec["timeout"])
    return settings.SAGAS_DEFAULT_STEP_TIMEOUT


def backoff_delay(attempts_made, backoff, ceiling):
    """Exponential backoff with jitter: about backoff·2ⁿ, at most `ceiling`."""
    base = min(ceiling, backoff * 2 ** max(attempts_made - 1, 0))
    return base * random.uniform(0.5, 1.0)


def next_retry_at(spec, made, now, *, key="retry"):
    """When the next attempt is due after `made` attempts, or None when retries ran out.

    `key` names the policy: "retry" (the step) or "compensation_retry" (its undo).
    """
    max_attempts, backoff, ceiling = retry_policy(spec, key)
    if made >= max_attempts:
        return None
    return now + timedelta(seconds=backoff_delay(made, backoff, ceiling))
