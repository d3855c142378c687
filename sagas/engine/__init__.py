"""The saga engine: start, run and compensate steps, and what operators do; one concern per module.

- errors.py       what the engine refuses (SagaError and its kinds)
- specs.py        what it reads from a saga's pinned workflow document
- transition.py   one transaction: Transition, locked_saga, the engine's signals
- store.py        the only SQL: load and lock a saga, write a transition, counters
- claims.py       a claim (a step a worker owns under a lease) and how one is made
- compensation.py turning back: compensations last-first, retried, never skipped silently
- flow.py         moving forward: the next step, results, retries, waits, events, deadlines
- leases.py       expired leases, and never two executions of one step at a time
- worker.py       the task: claim, execute, record, take the next queued run, hand back
- eager.py        a caller that starts or decides runs the next steps itself (opt-in)
- inbound.py      events from other services: delivered, kept for a later wait, discarded
- operators.py    start, cancel, retry, skip, pause, resume, and which are allowed now
- rewind.py       rewind a running saga to a completed step; run a finished one again

Dependencies point down this list (errors and specs first, operators last);
nothing outside this package imports its modules' private names: what other
code uses is re-exported here.
"""

from .claims import Claim
from .compensation import compensation_plan, rewound, start_compensation
from .eager import budget as eager_budget
from .eager import run as run_eagerly
from .errors import (
    Conflict,
    Expired,
    Forbidden,
    IdempotencyConflict,
    InvalidInput,
    NotFound,
    SagaError,
)
from .flow import (
    child_finished,
    complete_waiting_step,
    fail_waiting_step,
    fire_passed_deadlines,
    on_deadline,
    resend_lost_child_ends,
    step_scope,
)
from .inbound import Delivery, deliver_event, discard_event
from .leases import exclusive_execution, expire_lease, release_execution_lock, release_lease
from .operators import (
    CANCEL,
    PAUSE,
    RERUN,
    RESUME,
    RETRY,
    RETRY_COMPENSATION,
    REWIND,
    SKIP,
    SKIP_COMPENSATION,
    AllowedActions,
    allowed_actions,
    cancel_saga,
    pause_saga,
    published_definition,
    resume_saga,
    retry_saga,
    rewinding,
    skip_step,
    start_saga,
)
from .rewind import rerun_saga, rewind_plan, rewind_saga
from .specs import forget_definitions, kind_of, spec_of, step_spec
from .store import add_minute_counts, add_state_counts
from .transition import (
    RUN_STEP_TASK,
    Transition,
    acting_via,
    locked_saga,
    saga_finished,
    saga_needs_attention,
    transition_saved,
)
from .worker import (
    Outcome,
    claim_in_hand,
    claim_queued,
    execute,
    hand_back,
    record,
    record_all,
    request_stop,
    run_step,
    stop_requested,
    take_queued,
    take_queued_many,
    warm_up,
)

__all__ = [
    "CANCEL",
    "PAUSE",
    "RESUME",
    "RETRY",
    "RERUN",
    "RETRY_COMPENSATION",
    "REWIND",
    "RUN_STEP_TASK",
    "SKIP",
    "SKIP_COMPENSATION",
    "AllowedActions",
    "Claim",
    "Conflict",
    "Delivery",
    "Expired",
    "Forbidden",
    "IdempotencyConflict",
    "InvalidInput",
    "NotFound",
    "Outcome",
    "SagaError",
    "Transition",
    "acting_via",
    "add_minute_counts",
    "add_state_counts",
    "allowed_actions",
    "cancel_saga",
    "child_finished",
    "claim_in_hand",
    "claim_queued",
    "compensation_plan",
    "complete_waiting_step",
    "deliver_event",
    "discard_event",
    "eager_budget",
    "exclusive_execution",
    "execute",
    "expire_lease",
    "fail_waiting_step",
    "fire_passed_deadlines",
    "forget_definitions",
    "hand_back",
    "kind_of",
    "locked_saga",
    "on_deadline",
    "pause_saga",
    "published_definition",
    "record",
    "record_all",
    "release_execution_lock",
    "release_lease",
    "request_stop",
    "resume_saga",
    "rerun_saga",
    "resend_lost_child_ends",
    "retry_saga",
    "rewind_plan",
    "rewound",
    "rewind_saga",
    "rewinding",
    "run_eagerly",
    "run_step",
    "saga_finished",
    "saga_needs_attention",
    "skip_step",
    "spec_of",
    "start_compensation",
    "start_saga",
    "step_scope",
    "step_spec",
    "stop_requested",
    "take_queued",
    "take_queued_many",
    "warm_up",
    "transition_saved",
]
