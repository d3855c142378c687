"""django-q2 entry points; each carries only ids and finds the truth in the rows.

This module stays at `sagas.tasks`, outside sagas/q2/, on purpose: a task is
stored by the dotted path of its function, in every queued broker row (a
signed package) and in the django-q2 Schedule row that migration 0002
created. Moving these functions would strand the rows queued before an
upgrade and need a data migration of the schedule; so their paths never
change, and this module holds nothing but the entry points. (The daily
schedule of migration 0004 names sagas.retention.prune_task_results, which
stays where it is for the same reason.)
"""

from sagas import bulk, engine
from sagas.q2 import sweeper


def run_step(step_id, fence, saga_id=None):
    engine.run_step(step_id, fence, saga_id)


def child_finished(child_id):
    engine.child_finished(child_id)


def sweeper_tick(chain):
    return sweeper.sweeper_tick(chain)


def keep_sweeper_alive():
    return sweeper.keep_sweeper_alive()


def run_bulk(operation_id, part=None, parts=1):
    return bulk.run_bulk(operation_id, part, parts)
