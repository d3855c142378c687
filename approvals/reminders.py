"""Reminders: a sweep of the engine's sweeper that reminds those who have not decided, once per due date.

Registered in approvals/apps.py; the e-mails go through services.notify, in
the transaction of the reminder's event.
"""

import logging

from django.contrib.auth import get_user_model

from sagas import engine

from .claims import active_claim
from .models import ApprovalRequest
from .selectors import undecided_approvers
from .services import notify

log = logging.getLogger("approvals")

Status = ApprovalRequest.Status


def send_due_reminders(now):
    """Remind those who have not decided, once per due date; returns how many requests."""
    due = list(
        ApprovalRequest.objects.filter(
            status=Status.PENDING, reminded_at__isnull=True, remind_at__lte=now
        )
        .order_by("remind_at")
        .values_list("pk", "saga_id")[:500]
    )
    sent = 0
    for pk, saga_id in due:
        try:
            sent += _remind(pk, saga_id)
        except Exception:  # one bad request must not stop the others' reminders
            log.exception("reminder of approval request %s failed", pk)
    return sent


def _remind(pk, saga_id):
    with engine.locked_saga(saga_id, actor_label="sweeper") as tx:
        request = ApprovalRequest.objects.get(pk=pk)
        if (
            request.status != Status.PENDING
            or request.reminded_at is not None
            or request.remind_at is None
            or request.remind_at > tx.now
        ):
            return 0
        request.saga = tx.saga
        request.reminded_at = tx.now
        request.save(update_fields=["reminded_at"])
        recipients = undecided_approvers(request)
        held = active_claim(request, tx.now)
        if held and held[0] in recipients:
            recipients = [held[0]]  # the others leave it to whoever claimed it
        User = get_user_model()
        tx.event(
            "approval_reminded",
            tx.step(pk=request.step_id),
            request=pk,
            due_at=request.due_at.isoformat() if request.due_at else None,
            recipients=sorted(
                User.objects.filter(pk__in=recipients).values_list("username", flat=True)
            ),
        )
        notify(request, "reminder", recipients)
    return 1
