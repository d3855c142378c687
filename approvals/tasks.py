"""django-q2 tasks of approvals: e-mails to approvers, retried and recorded, never blocking."""

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from sagas import q2
from sagas.models import SagaEvent

from .away import principals_of
from .mailtext import email_texts
from .models import ApprovalRequest
from .profiles import time_zone_of

log = logging.getLogger("approvals.mail")

REASONS = ("requested", "reminder", "escalated", "reassigned")


def decision_url(request):
    """The stable link to the decision page of a request."""
    return f"{settings.SITE_URL.rstrip('/')}/approvals/{request.pk}/"


def message_for(request, reason, user):
    title, description = email_texts(request)  # the saga's input quoted, never a link
    context = {
        # A delegate hears for whom they may decide (approvals/away.py).
        "on_behalf_of": _stood_in_for(request, user),
        "request": request,
        "title": title,
        "description": description,
        "saga": request.saga,
        "user": user,
        "reason": reason,
        "url": decision_url(request),
    }
    # Dates in the recipient's zone (their profile), the server's when they chose none.
    with timezone.override(time_zone_of(user)):
        subject = render_to_string(f"approvals/email/{reason}_subject.txt", context)
        body = render_to_string(f"approvals/email/{reason}_body.txt", context)
    return EmailMessage(
        subject=" ".join(subject.split())[:200],
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[user.email],
    )


def _stood_in_for(request, user):
    """Names of the away approvers `user` stands in for on `request` ("" when none)."""
    if (
        request.users.filter(pk=user.pk).exists()
        or request.groups.filter(pk__in=user.groups.values("pk")).exists()
    ):
        return ""
    names = request.users.filter(pk__in=principals_of(user)).values_list("username", flat=True)
    return ", ".join(sorted(names))


def retry_delay(attempt):
    base = getattr(settings, "APPROVALS_MAIL_BACKOFF", 30.0)
    return min(base * 2 ** (attempt - 1), 3600.0)


def notify(request_id, reason, user_ids, attempt=1):
    """Send one e-mail per recipient; the ones that fail are retried later with backoff.

    A closed request sends nothing more. Each run appends a SagaEvent saying
    who was sent what and what failed, so the timeline shows the e-mails.
    """
    request = ApprovalRequest.objects.select_related("saga", "step").filter(pk=request_id).first()
    if request is None or not request.is_open or reason not in REASONS:
        return "nothing to send"
    users = list(get_user_model().objects.filter(pk__in=user_ids, is_active=True).order_by("pk"))
    sent, failed, errors, no_address = [], [], {}, []
    for user in users:
        if not user.email:
            no_address.append(user.get_username())
            continue
        try:
            message_for(request, reason, user).send()
            sent.append(user.get_username())
        except Exception as exc:  # any backend failure: retried, never raised into the worker
            log.warning("e-mail %s for approval %s to %s failed: %s", reason, request_id, user, exc)
            failed.append(user.pk)
            errors[user.get_username()] = f"{type(exc).__name__}: {exc}"[:500]
    max_attempts = getattr(settings, "APPROVALS_MAIL_ATTEMPTS", 5)
    with transaction.atomic():
        now = timezone.now()

        def record(kind, **details):
            SagaEvent.objects.create(
                saga=request.saga,
                step=request.step.name,
                kind=kind,
                actor_label="mailer",
                at=now,
                details={"request": request.pk, "reason": reason, "attempt": attempt, **details},
            )

        if sent or no_address:
            record("notification_sent", recipients=sent, without_address=no_address)
        if failed:
            if attempt < max_attempts:
                delay = retry_delay(attempt)
                q2.enqueue(
                    "approvals.tasks.notify", request.pk, reason, failed, attempt + 1, delay=delay
                )
                record(
                    "notification_failed",
                    errors=errors,
                    retry_at=(now + timedelta(seconds=delay)).isoformat(),
                )
            else:
                record("notification_failed", errors=errors, gave_up=True)
    return f"sent {len(sent)}, failed {len(failed)}"
