"""The sagas app's tables, one job per module; every model and public helper is re-exported here.

workflows  WorkflowDefinition, WorkflowAudit: the documents and who published them
sagas      Saga, SagaStep, SagaEvent, one_line: a saga, its steps and its history
counters   SagaStateCount, SagaMinuteCount: counts the transitions keep for the pages
heartbeat  SweeperHeartbeat: the sweeper chain that is alive
inbound    InboundEvent: events other services deliver, kept for a later wait
bulk       BulkOperation, BulkOutcome: one operator action on a whole filter
search     SagaSearchValue: a saga's business search values

Import from `sagas.models`, not from a module of it: the split is this package's own business.
"""

from .bulk import BulkOperation, BulkOutcome
from .counters import SagaMinuteCount, SagaStateCount
from .heartbeat import SweeperHeartbeat
from .inbound import InboundEvent
from .sagas import (
    ONE_LINE,
    LiveStepManager,
    Saga,
    SagaEvent,
    SagaEventQuerySet,
    SagaStep,
    one_line,
)
from .search import SagaSearchValue
from .workflows import WorkflowAudit, WorkflowAuditQuerySet, WorkflowDefinition

__all__ = [
    "ONE_LINE",
    "BulkOperation",
    "BulkOutcome",
    "InboundEvent",
    "LiveStepManager",
    "Saga",
    "SagaEvent",
    "SagaEventQuerySet",
    "SagaMinuteCount",
    "SagaSearchValue",
    "SagaStateCount",
    "SagaStep",
    "SweeperHeartbeat",
    "WorkflowAudit",
    "WorkflowAuditQuerySet",
    "WorkflowDefinition",
    "one_line",
]
