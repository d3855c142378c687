"""The engine's sync runner: runs queued engine tasks in this process, for tests and scripts.

It takes the ORM broker's due rows one by one, exactly as a worker would, so
what is tested is the real enqueue path; only the process differs.
"""

from django.utils import module_loading, timezone
from django_q.conf import Conf
from django_q.models import OrmQ

from .sweeper import TICK_TASK, sweep


def run_queued(*, limit=10_000, include_sweeper=False):
    """Run due queued tasks until none is left; returns how many ran."""
    ran = 0
    while ran < limit:
        row = OrmQ.objects.using(Conf.ORM).filter(lock__lte=timezone.now()).order_by("id").first()
        if row is None:
            return ran
        task = row.task
        row.delete()
        if task["func"] == TICK_TASK and not include_sweeper:
            continue
        func = task["func"]
        if isinstance(func, str):
            func = module_loading.import_string(func)
        func(*task["args"], **task.get("kwargs", {}))
        ran += 1
    raise RuntimeError(f"still busy after {limit} tasks: is something re-queueing forever?")


def settle(*, rounds=50):
    """Sweep and run until nothing is due: deadlines and retries due *now* are handled."""
    total = 0
    for _ in range(rounds):
        done = sweep() + run_queued()
        total += done
        if not done:
            return total
    return total
