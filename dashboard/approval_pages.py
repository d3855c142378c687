"""The approver's teamwork pages: forms on the decision page, claims, discussion, reassign, away.

The decision page itself is `approval` in dashboard/inbox.py; what an item shows beyond its
decisions (form fields, "on behalf of", the claim, the discussion) is put on
it here, once for the inbox and the page. Writes go through the approvals
services (approvals/claims.py, approvals/away.py, services.reassign).
"""

from datetime import datetime, time

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from approvals import away, claims
from approvals import services as approvals
from sagas import engine

from . import selectors
from .forms import AwayForm, CommentForm, ReassignForm
from .views import HtmxHttpRequest, operators_only, problem, signed_in


def _item(request, approval_id):
    try:
        item = approvals.get_visible_request(
            request.user, approval_id, queryset=selectors.approval_rows()
        )
    except engine.NotFound:
        return None, problem(
            request, f"There is no approval request {approval_id} that you may see.", status=404
        )
    return item, None


def _back(request, item, done):
    """After a claim, a release or a comment: the page again, saying what was done."""
    messages.success(request, done)
    return redirect("approval", approval_id=item.pk)


@require_POST
@signed_in
def approval_claim(request: HtmxHttpRequest, approval_id: int):
    item, refused = _item(request, approval_id)
    if refused:
        return refused
    try:
        if request.POST.get("release"):
            claims.release(request=item.pk, user=request.user)
            done = "The claim was released: any approver may take it."
        else:
            claims.claim(request=item.pk, user=request.user)
            done = "You claimed this request: the others are not reminded of it meanwhile."
    except engine.SagaError as exc:
        return problem(request, exc.message, status=exc.status)
    return _back(request, item, done)


@require_POST
@signed_in
def approval_comment(request: HtmxHttpRequest, approval_id: int):
    item, refused = _item(request, approval_id)
    if refused:
        return refused
    form = CommentForm(request.POST)
    if not form.is_valid():
        return problem(request, "Write something to comment.", status=400)
    try:
        claims.add_comment(request=item.pk, user=request.user, text=form.cleaned_data["text"])
    except engine.SagaError as exc:
        return problem(request, exc.message, status=exc.status)
    return _back(request, item, "Your comment was added to the discussion.")


@require_http_methods(["GET", "POST"])
@operators_only
def approval_reassign(request: HtmxHttpRequest, approval_id: int):
    """Operators hand a request to other approvers, with a reason (recorded; four-eyes bars them)."""
    item, refused = _item(request, approval_id)
    if refused:
        return refused
    form = ReassignForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                approvals.reassign(
                    request=item.pk,
                    to_users=form.cleaned_data["to_users"],
                    to_groups=form.cleaned_data["to_groups"],
                    by=request.user,
                    reason=form.cleaned_data["reason"],
                )
            except engine.SagaError as exc:
                status = exc.status
                form.add_error(None, exc.message)
                for field, errors in (exc.fields or {}).items():
                    name = field.split("[")[0]
                    if name in form.fields:
                        form.add_error(name, errors)
            else:
                messages.success(request, "Reassigned. The new approvers were told by e-mail.")
                return redirect("approval", approval_id=item.pk)
    context = {"item": item, "form": form}
    return render(request, "dashboard/approval_reassign.html", context, status=status)


@require_http_methods(["GET", "POST"])
@signed_in
def away_profile(request: HtmxHttpRequest):
    """The user's absence and delegate: while away, the delegate may decide in their place."""
    setting = away.away_of(request.user)
    form = AwayForm(request.POST or None, setting=setting)
    status = 200
    if request.method == "POST":
        if request.POST.get("clear"):
            away.clear_away(user=request.user, by=request.user)
            messages.success(request, "Welcome back: you are no longer marked away.")
            return redirect("away_profile")
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            try:
                away.set_away(
                    user=request.user,
                    by=request.user,
                    starts_at=_moment(data["starts_on"]),
                    ends_at=_moment(data["ends_on"], end=True) if data["ends_on"] else None,
                    delegate=data["delegate"],
                    note=data["note"],
                )
            except engine.SagaError as exc:
                form.add_error(None, exc.message)
                for field, errors in (exc.fields or {}).items():
                    target = {"starts_at": "starts_on", "ends_at": "ends_on"}.get(field, field)
                    if target in form.fields:
                        form.add_error(target, errors)
            else:
                messages.success(request, "Saved. Your delegate may decide in your place.")
                return redirect("away_profile")
    context = {
        "form": form,
        "setting": setting,
        "active": bool(setting and setting.is_active()),
        "standing_in_for": list(away.active().filter(delegate=request.user).select_related("user")),
    }
    return render(request, "dashboard/away.html", context, status=status)


def _moment(day, end=False):
    """A day as the start (00:00) or the end (the next 00:00) of it, in the current zone."""
    moment = datetime.combine(day, time.min)
    if end:
        moment = datetime.combine(day.fromordinal(day.toordinal() + 1), time.min)
    return timezone.make_aware(moment)
