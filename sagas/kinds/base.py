"""What a step kind is: the hooks the engine calls on a step of that kind."""

from dataclasses import dataclass


@dataclass(frozen=True)
class TimedOut:
    """A waiting step's answer to its deadline: the engine fails the step and compensates."""

    error: str
    cause: dict


@dataclass(frozen=True)
class Completed:
    """A waiting step's answer to its deadline: the step completes (a sleep ends)."""

    result: object = None


class StepRefused(Exception):
    """`enter` cannot start the step (a sleep's `until` is no time): the step fails."""

    def __init__(self, error, *, cause):
        super().__init__(error)
        self.error = error
        self.cause = cause


class StepKind:
    """What the engine needs to know about one type of step.

    Automatic kinds (`automatic = True`) run in a worker: `execute` and
    `compensate` are called outside any transaction. Waiting kinds park the
    saga: `enter`, `on_deadline` and `on_abandon` run inside the transition's
    transaction with the saga locked; `tx` (a sagas.engine.Transition) carries
    the saga, its steps, the time and the actor, and appends events.
    """

    name = ""
    automatic = True
    keys = frozenset()  # definition keys this kind accepts beyond the common ones
    # Keys under which `{{ secrets.NAME }}` is resolved at the call (README, Secrets);
    # anywhere else in a document it is refused at publish.
    secret_keys = frozenset()
    description = ""
    # How a dumped document (sagas/authoring/transfer.py) orders this kind's
    # keys, and the keys inside those of them that hold a mapping; keys not
    # listed follow, sorted.
    key_order = ()
    nested_key_order = {}
    # True when the deadline is the moment the step goes on (a sleep), not a
    # limit on people or services: passing it refuses no later act.
    deadline_is_timer = False
    # True for a kind whose step runs branches of steps (sagas/kinds/parallel.py):
    # the engine opens them when the step starts (sagas/engine/branches.py).
    opens_branches = False
    # True for a kind whose step runs a child saga (sagas/kinds/saga.py,
    # started and undone by sagas/engine/children.py).
    starts_child = False

    def validate(self, step, path, errors, context):
        """Add an error per problem of this step's own keys."""

    def execute(self, ctx, spec):
        raise NotImplementedError

    def has_compensation(self, spec):
        return False

    def compensate(self, ctx, spec):
        raise NotImplementedError

    def enter(self, tx, step, spec):
        """Start waiting; return the deadline (or None)."""
        return None

    def on_deadline(self, tx, step, spec):
        """The deadline passed; by default the step times out and the saga compensates.

        Return a TimedOut for the engine to fail the step with, a Completed for
        it to complete the step, or None when the kind has dealt with the
        deadline itself (an approval escalates).
        """
        return TimedOut(
            error=f"timed out: nothing arrived by {step.deadline:%Y-%m-%d %H:%M:%S} UTC",
            cause={"reason": "timeout", "step": step.name},
        )

    def on_abandon(self, tx, step):
        """The saga stopped waiting for this step (cancelled or skipped)."""

    def nested(self, step):
        """(path suffix, branch key, steps) of each list of steps inside this step's document."""
        return []

    def uses(self, spec):
        """Names this step refers to (actions), for the catalogue."""
        return []
