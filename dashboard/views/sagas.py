"""The saga pages: the list with its filters and bulk actions, one saga, and operator actions."""

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from approvals import services as approvals
from sagas import engine
from sagas.filters import SagaFilter, is_operator, visible_sagas
from sagas.models import Saga, WorkflowDefinition
from sagas.states import SagaState, StepStatus

from .. import selectors
from ..forms import BulkActionForm, ReasonForm
from .common import (
    HtmxHttpRequest,
    operators_only,
    poll_seconds,
    problem,
    signed_in,
    wants_fragment,
)

# --- the saga list ---------------------------------------------------------------


@require_GET
@vary_on_headers("HX-Request")
@signed_in
def saga_list(request: HtmxHttpRequest) -> HttpResponse:
    """All sagas for operators; for others, those they started or are asked to approve."""
    filters = SagaFilter(request.GET or None, queryset=visible_sagas(request.user))
    if filters.is_bound and not filters.is_valid():
        page = selectors.SagaPage([], None)
    else:
        try:
            chosen = getattr(filters.form, "cleaned_data", {})
            held = next((f for f in ("workflow", "state") if chosen.get(f)), None)
            page = selectors.saga_page(
                filters.qs,
                cursor=request.GET.get("after") or None,
                size=settings.DASHBOARD_PAGE_SIZE,
                held=held,
            )
        except selectors.BadCursor as exc:
            return problem(request, str(exc), status=400)
    # Empty fields of the filter form are left out of the links and the address bar.
    query = QueryDict(mutable=True)
    for key, values in request.GET.lists():
        if key != "after" and any(values):
            query.setlist(key, [v for v in values if v])
    here = (
        _with(query, after=request.GET["after"]) if request.GET.get("after") else query.urlencode()
    )
    context = {
        "here": f"{request.path}?{here}" if here else request.path,
        "filters": filters,
        "page": page,
        "query": query.urlencode(),
        "next_query": _with(query, after=page.next_cursor) if page.next_cursor else "",
        "is_first_page": not request.GET.get("after"),
        "operator": is_operator(request.user),
        "ranges": _ranges(query),
        "poll_seconds": poll_seconds(),
        "workflow_names": WorkflowDefinition.objects.order_by("name")
        .values_list("name", flat=True)
        .distinct(),
    }
    if not wants_fragment(request):
        return render(request, "dashboard/saga_list.html", context)
    response = render(request, "dashboard/saga_list.html#table", context)
    if request.htmx.trigger != "saga-table":  # a filter or a page link, not a poll
        response["HX-Push-Url"] = context["here"]
    return response


RANGES = [
    ("last 15 min", timedelta(minutes=15)),
    ("last hour", timedelta(hours=1)),
    ("last 24 h", timedelta(days=1)),
]


def _ranges(query):
    """Links that set the start of the time range to a moment ago, keeping the other filters."""
    now = timezone.localtime().replace(microsecond=0)
    links = []
    for label, ago in RANGES:
        q = query.copy()
        q.pop("created_before", None)
        q["created_after"] = (now - ago).strftime("%Y-%m-%dT%H:%M")
        links.append((label, q.urlencode()))
    return links


def _with(query, **values):
    query = query.copy()
    for key, value in values.items():
        query[key] = value
    return query.urlencode()


@require_POST
@operators_only
def saga_bulk(request: HtmxHttpRequest) -> HttpResponse:
    """Retry or cancel the selected sagas: first a confirmation, then a result per saga."""
    form = BulkActionForm(request.POST)
    context = {"form": form}
    if not form.is_valid():
        return _bulk_response(request, context, status=400)
    action = form.cleaned_data["action"]
    sagas = {
        s.pk: s for s in Saga.objects.filter(pk__in=form.saga_ids).only("id", "workflow", "state")
    }
    if not form.cleaned_data["confirm"]:
        context.update(
            confirming=True,
            action=action,
            chosen=[sagas.get(pk) or pk for pk in form.saga_ids],
        )
        return _bulk_response(request, context)
    results = []
    for pk in form.saga_ids:
        try:
            if action == "retry":
                saga = engine.retry_saga(pk, user=request.user)
                outcome = "retry queued"
            else:
                saga = engine.cancel_saga(pk, user=request.user, reason=form.cleaned_data["reason"])
                outcome = "cancelled; compensating"
            results.append({"id": pk, "ok": True, "message": outcome, "state": saga.state})
        except engine.SagaError as exc:
            results.append(
                {
                    "id": pk,
                    "ok": False,
                    "message": exc.message,
                    "state": getattr(sagas.get(pk), "state", ""),
                }
            )
    context.update(
        results=results,
        action=action,
        succeeded=sum(1 for r in results if r["ok"]),
        failed=sum(1 for r in results if not r["ok"]),
    )
    response = _bulk_response(request, context)
    response["HX-Trigger"] = "sagas-changed"  # the table refreshes to show the new states
    return response


def _bulk_response(request, context, status=200):
    if request.htmx:
        return render(request, "dashboard/saga_bulk.html#bulk", context, status=status)
    return render(request, "dashboard/saga_bulk.html", context, status=status)


# --- one saga --------------------------------------------------------------------


def _saga_or_problem(request, saga_id):
    """The saga with its history if this user may see it, else a response saying why not."""
    saga = selectors.saga_with_history(saga_id)
    if saga is None:
        return None, problem(request, f"There is no saga {saga_id}.", status=404)
    if not is_operator(request.user) and not _may_view(request.user, saga):
        return None, problem(
            request,
            "You may see a saga when you are an operator or are asked to approve one of its steps.",
            status=403,
        )
    return saga, None


def _may_view(user, saga):
    """Approvers (and whoever decided or started it) see the sagas they are asked about."""
    return any(approvals.can_view(request, user) for request in saga.approval_requests)


def _detail_context(request, saga, **extra):
    steps = saga.step_list
    operator = is_operator(request.user)
    for step in steps:
        step.actions = _step_actions(saga, step) if operator else []
    return {
        "saga": saga,
        "steps": steps,
        "progress": selectors.progress(saga, steps),
        "operator": operator,
        "can_cancel": operator and saga.state in (SagaState.STARTED, SagaState.PENDING),
        "poll_seconds": poll_seconds(),
        "live": not saga.is_finished,
        "approvals": saga.approval_requests,
        **extra,
    }


def _step_actions(saga, step):
    """Which buttons to offer on a step; the engine still decides when one is pressed."""
    if saga.state == SagaState.PENDING and step.status == StepStatus.FAILED:
        return ["retry", "skip"]
    if saga.state == SagaState.PENDING and step.status == StepStatus.WAITING:
        return ["skip"]
    if (
        saga.state == SagaState.COMPENSATING
        and step.status == StepStatus.COMPENSATING
        and step.lease_expires_at is None
        and step.next_attempt_at is None
    ):
        return ["retry-compensation", "skip-compensation"]
    return []


@require_GET
@vary_on_headers("HX-Request")
@signed_in
def saga_detail(request: HtmxHttpRequest, saga_id) -> HttpResponse:
    saga, refused = _saga_or_problem(request, saga_id)
    if refused:
        return refused
    context = _detail_context(request, saga)
    template = (
        "dashboard/saga_detail.html#live"
        if wants_fragment(request)
        else "dashboard/saga_detail.html"
    )
    return render(request, template, context)


ACTIONS = {
    "retry": {
        "title": "Retry step",
        "verb": "Retry",
        "explain": "The step runs again with a fresh round of attempts; the saga carries on from there.",
        "reason": False,
    },
    "retry-compensation": {
        "title": "Retry compensation",
        "verb": "Retry compensation",
        "explain": "The step's compensation runs again with a fresh round of attempts.",
        "reason": False,
    },
    "skip": {
        "title": "Skip step",
        "verb": "Skip",
        "explain": "The step is passed over as if done and the saga carries on with the next one. Make sure its effect is handled by hand.",
        "reason": True,
    },
    "skip-compensation": {
        "title": "Skip compensation",
        "verb": "Skip compensation",
        "explain": "The compensation is given up (you repaired it by hand) and the saga carries on undoing the steps before it.",
        "reason": True,
    },
    "cancel": {
        "title": "Cancel saga",
        "verb": "Cancel saga",
        "explain": "The saga stops and the compensations of its completed steps run, last first.",
        "reason": True,
    },
}


@require_http_methods(["GET", "POST"])
@operators_only
def saga_action(
    request: HtmxHttpRequest, saga_id, action: str, step_name: str = ""
) -> HttpResponse:
    """Confirm (GET) and then do (POST) one operator action on a saga."""
    spec = ACTIONS[action]
    saga, refused = _saga_or_problem(request, saga_id)
    if refused:
        return refused
    step = None
    if step_name:
        step = next((s for s in saga.step_list if s.name == step_name), None)
        if step is None:
            return problem(request, f"Saga {saga.pk} has no step {step_name!r}.", status=404)
    form = ReasonForm(request.POST or None) if spec["reason"] else None
    context = {
        "saga": saga,
        "step": step,
        "action": action,
        "spec": spec,
        "form": form,
        "plan": engine.compensation_plan(saga) if action == "cancel" else None,
        "post_url": request.path,
    }
    if request.method == "GET":
        return _panel(request, context)
    if form is not None and not form.is_valid():
        return _panel(request, context, status=400)
    reason = form.cleaned_data["reason"] if form else None
    try:
        outcome = _do(action, saga, step, reason, request.user)
    except engine.SagaError as exc:
        if exc.fields and form is not None:
            for field, errors in exc.fields.items():
                form.add_error(field if field in form.fields else None, errors)
            return _panel(request, context, status=exc.status)
        return problem(request, exc.message, status=exc.status)
    if not request.htmx:
        messages.success(request, outcome)
        return redirect("saga_detail", saga_id=saga.pk)
    saga = selectors.saga_with_history(saga.pk)
    live = render(
        request, "dashboard/saga_detail.html#live", _detail_context(request, saga)
    ).content
    done = render(request, "dashboard/saga_detail.html#outcome", {"outcome": outcome}).content
    return HttpResponse(live + done)


def _panel(request, context, status=200):
    template = (
        "dashboard/saga_action.html#panel"
        if wants_fragment(request)
        else "dashboard/saga_action.html"
    )
    response = render(request, template, context, status=status)
    if request.htmx and status >= 400:
        response["HX-Retarget"] = "#action-panel"
        response["HX-Reswap"] = "innerHTML"
    return response


def _do(action, saga, step, reason, user):
    if action == "cancel":
        plan = engine.compensation_plan(saga)
        engine.cancel_saga(saga.pk, user=user, reason=reason)
        undo = ", ".join(s.name for s in plan) or "none"
        return f"Saga cancelled. Compensations that run, in order: {undo}."
    if action in ("retry", "retry-compensation"):
        engine.retry_saga(saga.pk, user=user, step_name=step.name if step else None)
        what = "compensation of " if action == "retry-compensation" else ""
        return f"Retry of {what}{step.name if step else 'the saga'} queued."
    engine.skip_step(saga.pk, step.name, user=user, reason=reason)
    what = "Compensation of " if action == "skip-compensation" else "Step "
    return f"{what}{step.name} skipped."
