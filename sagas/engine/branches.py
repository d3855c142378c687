"""Parallel steps: their branches as step rows, which branch may start, and what they produced.

A saga's steps are rows in one linear `index` order. A row inside a parallel
step names the enclosing row (`within`) and its `branch`: the branch's name,
or for a `for_each` the element's index. A *group* — (within id, branch), or
(None, "") for the saga's own steps — runs in index order, like a saga without
branches; the parallel step waits until every one of its groups has finished.
Named branches get their rows with the saga; a for_each gets one set of rows
per element when its step starts (its list is known only then).

Moving forward through groups is sagas/engine/flow.py; undoing them, branches
concurrently, is sagas/engine/compensation.py.
"""

from django.conf import settings

from sagas.definitions import lookup
from sagas.kinds.base import StepRefused
from sagas.models import SagaStep
from sagas.states import StepStatus

from . import store
from .specs import kind_of, step_spec

TOP = (None, "")
FINISHED = (StepStatus.COMPLETED, StepStatus.SKIPPED)


def group_of(step):
    return (step.within_id, step.branch)


def rows_for(saga, specs, *, start, within=None, branch="", item=None):
    """Create the rows of a list of steps (and of the named branches inside them), in order.

    Returns the created rows; their indexes follow on from `start`.
    """
    rows = SagaStep.objects.bulk_create(
        [
            SagaStep(
                saga=saga,
                index=start + i,
                name=spec["name"],
                kind=spec["type"],
                within=within,
                branch=branch,
                item=item,
            )
            for i, spec in enumerate(specs)
        ]
    )
    created = list(rows)
    for row, spec in zip(rows, specs, strict=True):
        if isinstance(spec.get("branches"), dict):
            for name, inner in spec["branches"].items():
                created += rows_for(
                    saga,
                    inner,
                    start=start + len(created),
                    within=row,
                    branch=name,
                    item=item,
                )
    return created


def open_for_each(tx, step, spec, scope):
    """Create one branch per element of the step's list; StepRefused when there is no such list."""
    if "for_each" not in spec:
        return
    elements = lookup(scope, spec["for_each"])
    if not isinstance(elements, list):
        got = "nothing" if elements is None else f"a {type(elements).__name__}"
        raise StepRefused(
            f"for_each {spec['for_each']} is not a list (it is {got})",
            cause={"reason": "for_each_not_a_list", "step": step.name},
        )
    if len(elements) > settings.SAGAS_MAX_BRANCHES:
        raise StepRefused(
            f"for_each {spec['for_each']} has {len(elements)} elements; "
            f"at most {settings.SAGAS_MAX_BRANCHES} branches are allowed (SAGAS_MAX_BRANCHES)",
            cause={"reason": "too_many_branches", "step": step.name},
        )
    # After every row, also those a rewind retired (they keep their indexes).
    start = max(tx.steps[-1].index + 1, store.next_step_index(tx.saga.pk))
    for i, element in enumerate(elements):
        rows = rows_for(
            tx.saga,
            spec["steps"],
            start=start,
            within=step,
            branch=str(i),
            item={"value": element, "index": i},
        )
        start += len(rows)
        tx.steps.extend(rows)


class Groups:
    """A saga's rows by group, each in index order; built once per use from the live rows.

    Only which rows there are is fixed here; their statuses are read live,
    so one Groups serves a whole transition while no row is added or
    removed (`groups_of`).
    """

    def __init__(self, saga, steps):
        self.saga = saga
        self.rows = {}
        self.by_pk = {}
        self._branches = {}
        self._inner = {}
        for step in steps:
            self.rows.setdefault(group_of(step), []).append(step)
            self.by_pk[step.pk] = step

    def of(self, key):
        return self.rows.get(key, [])

    def branches(self, parallel):
        """The branch keys of a parallel step, in order (names in the document's, elements by index)."""
        keys = self._branches.get(parallel.pk)
        if keys is None:
            keys = [b for (within, b) in self.rows if within == parallel.pk]
            if keys and keys[0].isdigit():
                keys.sort(key=int)
            self._branches[parallel.pk] = keys
        return keys

    def inner(self, parallel):
        """The rows of every branch of a parallel step, (branch, row) each, in branch order."""
        pairs = self._inner.get(parallel.pk)
        if pairs is None:
            pairs = self._inner[parallel.pk] = [
                (b, s) for b in self.branches(parallel) for s in self.of((parallel.pk, b))
            ]
        return pairs

    def progress(self, parallel):
        """(started, unfinished): the sets of the parallel step's branches in each case.

        One pass over its rows, read live: a transition asks after every
        branch outcome it records, and a for_each may have a thousand branches
        (asking branch by branch made a saga's run quadratic: README
        "Performance", fan-out).
        """
        pairs = self.inner(parallel)
        started = {b for b, s in pairs if _started(s)}
        unfinished = {b for b, s in pairs if s.status not in FINISHED}
        return started, unfinished

    def all_finished(self, parallel):
        # From the last row: the branches started last are the likeliest to be unfinished.
        return all(s.status in FINISHED for _, s in reversed(self.inner(parallel)))

    def result(self, parallel):
        """{branch: {step: result}} for named branches; a list in element order for a for_each."""
        results = {
            b: {s.name: s.result for s in self.of((parallel.pk, b))}
            for b in self.branches(parallel)
        }
        if "for_each" in step_spec(self.saga, parallel):
            return list(results.values())
        return results

    def document_order(self, key=TOP):
        """The rows as the document lists them: a parallel step, then its branches' rows, in order."""
        rows = []
        for step in self.of(key):
            rows.append(step)
            if kind_of(step).opens_branches:
                for b in self.branches(step):
                    rows += self.document_order((step.pk, b))
        return rows

    def inside(self, parallel):
        """Every row inside a parallel step: its branches' rows, and theirs, at any depth."""
        rows = []
        for b in self.branches(parallel):
            for step in self.of((parallel.pk, b)):
                rows.append(step)
                if kind_of(step).opens_branches:
                    rows += self.inside(step)
        return rows

    def enclosing(self, step):
        """The parallel steps a row is inside, innermost first."""
        found = []
        while step.within_id is not None:
            step = self.by_pk[step.within_id]
            found.append(step)
        return found

    def at_and_after(self, step):
        """The rows at and after `step` in document position: what a rewind to it undoes and runs again.

        The rest of its own group from it on; for each parallel step it is in,
        the steps after that parallel step in the parallel step's group (up to
        the saga's own steps); and everything inside any parallel step among
        these, all branches. Not the other branches of a parallel step it is
        in: they come neither before nor after it (sagas/engine/rewind.py).
        """
        chosen = [s for s in self.of(group_of(step)) if s.index >= step.index]
        for parallel in self.enclosing(step):
            chosen += [s for s in self.of(group_of(parallel)) if s.index > parallel.index]
        for s in list(chosen):
            if kind_of(s).opens_branches:
                chosen += self.inside(s)
        return {s.pk for s in chosen}

    def element_path(self, step):
        """The for_each elements a row is inside, outermost first: (within id, index) each."""
        path = []
        while step.within_id is not None:
            if step.in_for_each:
                path.append((step.within_id, step.branch))
            step = self.by_pk[step.within_id]
        return tuple(reversed(path))


def groups_of(tx):
    """The transition's rows by group, built again only when rows were added or removed.

    A saga with a thousand branch rows is otherwise grouped anew for every
    claim and every outcome in it (README "Performance", fan-out).
    """
    steps = tx.steps
    key = (id(steps), len(steps), id(steps[-1]) if steps else None)
    cached = getattr(tx, "_groups", None)
    if cached is None or cached[0] != key:
        cached = tx._groups = (key, Groups(tx.saga, steps))
    return cached[1]


def row(tx, pk):
    """tx.step(pk=pk), without a pass over every row of a saga with many branch rows."""
    if len(tx.steps) > 64:
        found = groups_of(tx).by_pk.get(pk)
        if found is not None:
            return found
    return tx.step(pk=pk)


def _started(step):
    return step.status != StepStatus.PENDING or step.next_attempt_at is not None or step.attempt


def branches_to_start(tx, parallel, spec, groups):
    """The branches that may start now: not yet started, within max_concurrency.

    Without max_concurrency, all at once, unless SAGAS_BRANCH_WINDOW caps how
    many are started (queued) at a time: then a worker that finishes a branch
    claims the next branch's first step in the same commit, as it does for the
    next step of a sequential saga (README "Performance", fan-out).
    """
    limit = spec.get("max_concurrency") or settings.SAGAS_BRANCH_WINDOW or None
    started, unfinished = groups.progress(parallel)
    running = len(started & unfinished)
    chosen = []
    for b in groups.branches(parallel):
        if limit is not None and running + len(chosen) >= limit:
            break
        if b not in started and b in unfinished:
            chosen.append(b)
    return chosen


def visible_results(tx, step, groups=None):
    """Earlier results a step may read as `steps.NAME.result`.

    Rows inside a for_each element are visible only to that element's own
    steps (every element has its own `reserve_line`); the rest to everyone.
    """
    groups = groups or groups_of(tx)
    mine = groups.element_path(step)
    results = {}
    for s in tx.steps:
        if s.result is None or s.pk == step.pk:
            continue
        theirs = groups.element_path(s) if s.within_id is not None else ()
        if mine[: len(theirs)] == theirs:
            results[s.name] = s.result
    return results


def item_of(step):
    """(item, item_index) of a row inside a for_each, else (None, None)."""
    if step.item is None:
        return None, None
    return step.item.get("value"), step.item.get("index")


def idempotency_suffix(tx, step, groups=None):
    """Where a step is among for_each elements ("[2]", "[2][0]"): idempotency keys differ per element."""
    if step.item is None:
        return ""
    groups = groups or groups_of(tx)
    return "".join(f"[{branch}]" for _, branch in groups.element_path(step))


def is_parallel(step):
    return kind_of(step).opens_branches
