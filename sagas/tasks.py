"""django-q2 entry points; each carries only ids and finds the truth in the rows."""

from . import engine, sweeper


def run_step(step_id, fence, saga_id=None):
    engine.run_step(step_id, fence, saga_id)


def sweeper_tick(chain):
    return sweeper.sweeper_tick(chain)


def keep_sweeper_alive():
    return sweeper.keep_sweeper_alive()
