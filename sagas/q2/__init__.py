"""django-q2 in one place: the broker class, the sweeper chain, the graceful stop, the sync runner.

- broker.py: `SagaBroker` (Q_CLUSTER["broker_class"]) and enqueueing through it;
- wakeup.py: PostgreSQL LISTEN/NOTIFY that wakes the pushers when work is queued;
- sweeper.py: the one mechanism for time, a chain of short django-q2 tasks;
- shutdown.py: a qcluster that gets SIGTERM stops gracefully, in bounded time;
- startup.py: what each qcluster process connects at start, and the checks;
- runner.py: runs queued tasks in this process (tests, scripts).

The task entry points stay in sagas/tasks.py: their dotted paths are stored
in queued rows and schedules. The engine uses only the broker; everything
else here sits above the engine.
"""

from .broker import enqueue, enqueue_many, queue_depth, queued_tasks

__all__ = ["enqueue", "enqueue_many", "queue_depth", "queued_tasks"]
