"""Dashboard pages: what they share (roles, refusals, fragments), the overview, the saga list and a saga.

The other page areas have their own modules: dashboard/inbox.py (the inbox
and the decision page), approval_pages.py (claims, discussion, reassign,
away), workflow_pages.py, bulk_views.py, events.py, reports.py, profile.py.

HTMX requests get the page's fragment (`page.html#fragment`). Every view
checks the user's role on the server. Writes go through the engine's
services (sagas.engine) and the approvals services, which decide what is
allowed; a view only translates their answers into pages.
"""

from datetime import UTC, timedelta
from functools import wraps
from urllib.parse import parse_qs, urlencode, urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.middleware import HtmxDetails

from approvals import services as approvals
from sagas import bulk, engine
from sagas.access import get_visible_saga, is_operator, visible_sagas
from sagas.filters import SagaFilter
from sagas.models import Saga, WorkflowDefinition

from . import branches, selectors
from .forms import BulkActionForm, ReasonForm


class HtmxHttpRequest(HttpRequest):
    """A request that went through django-htmx's middleware."""

    htmx: HtmxDetails


TITLES = {400: "Not accepted", 403: "Not allowed", 404: "Not found", 409: "Not possible now"}


def problem(request: HtmxHttpRequest, message: str, *, status: int) -> HttpResponse:
    """Say why a request was refused; an HTMX request gets it in the page's problem area."""
    context = {"message": message, "status": status, "title": TITLES.get(status, "Error")}
    if request.htmx:
        response = render(request, "dashboard/problem.html#problem", context, status=status)
        response["HX-Retarget"] = "#problems"
        response["HX-Reswap"] = "innerHTML"
        return response
    return render(request, "dashboard/problem.html", context, status=status)


def wants_fragment(request: HtmxHttpRequest) -> bool:
    """An htmx swap wants the page's fragment; a history restore (Back button) wants the page."""
    return bool(request.htmx) and not request.htmx.history_restore_request


def signed_in(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            if request.htmx:
                # htmx would swap the login page into a fragment: send the browser there.
                login = f"{resolve_url(settings.LOGIN_URL)}?{urlencode({'next': request.htmx.current_url_abs_path or '/'})}"
                return HttpResponse(status=204, headers={"HX-Redirect": login})
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapper


def operators_only(view):
    @signed_in
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not is_operator(request.user):
            return problem(
                request,
                f"This is for operators. You are signed in as {request.user.get_username()}, "
                "who is not in the operators group; nothing was changed.",
                status=403,
            )
        return view(request, *args, **kwargs)

    return wrapper


def poll_seconds():
    return settings.DASHBOARD_POLL_SECONDS


# --- overview ------------------------------------------------------------------


@require_GET
@vary_on_headers("HX-Request")
@signed_in
def overview(request: HtmxHttpRequest) -> HttpResponse:
    operator = is_operator(request.user)
    context = {"poll_seconds": poll_seconds(), "operator": operator}
    if operator:
        context.update(
            counts=selectors.saga_counts(),
            attention=selectors.sagas_needing_attention(),
            failures=selectors.recent_failures(),
            minutes=selectors.activity_per_minute(),
        )
    context.update(_my_approvals(request.user))
    template = (
        "dashboard/overview.html#live" if wants_fragment(request) else "dashboard/overview.html"
    )
    return render(request, template, context)


def _my_approvals(user):
    # What waits for them is what they may decide: not a request four-eyes bars
    # them from through an act elsewhere in the saga's family (the inbox says why).
    return {"approvals": list(selectors.with_overdue(approvals.approvals_for(user)[:10]))}


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
            if held == "state" and chosen["state"] == SagaFilter.RUNNING:
                held = None  # several states: the order by state would not be by time
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
        "times": _filter_times(filters),
        "active_filters": sum(
            1
            for key in ("state", "workflow", "needs_attention", "created_after", "created_before")
            if query.get(key)
        )
        + len(getattr(filters.form, "search_terms", [])),
        "poll_seconds": poll_seconds(),
        # Bulk on the whole filter (dashboard/bulk_views.py): the registry's actions.
        "bulk_actions": bulk.actions(),
        "filter_items": [(k, query[k]) for k in SagaFilter.base_filters if query.get(k)],
        **selectors.search_columns(filters, page),
        "workflow_names": WorkflowDefinition.objects.order_by("name")
        .values_list("name", flat=True)
        .distinct(),
    }
    if not wants_fragment(request):
        return render(request, "dashboard/saga_list.html", context)
    response = render(request, "dashboard/saga_list.html#table", context)
    if request.htmx.trigger != "saga-table":  # a filter or a page link, not a poll
        response["HX-Push-Url"] = context["here"]
        if _workflow_changed(request):  # the form's search fields follow the chosen workflow
            fields = render(request, "dashboard/saga_list.html#search_fields", context)
            response.content += fields.content
    return response


def _workflow_changed(request):
    """Did this request choose another workflow than the page it came from shows?"""
    shown = parse_qs(urlsplit(request.htmx.current_url or "").query).get("workflow", [""])[0]
    return shown != request.GET.get("workflow", "")


RANGES = [
    ("last 15 min", timedelta(minutes=15)),
    ("last hour", timedelta(hours=1)),
    ("last 24 h", timedelta(days=1)),
]


def _ranges(query):
    """Links that set the start of the time range to a moment ago, keeping the other filters.

    Without JavaScript they are these links (in UTC, the server's zone, with its
    offset); sagaflow.js fills the form's field in the browser's zone instead.
    """
    now = timezone.now().replace(second=0, microsecond=0)
    links = []
    for label, ago in RANGES:
        q = query.copy()
        q.pop("created_before", None)
        q["created_after"] = (now - ago).isoformat(timespec="minutes")
        links.append((label, int(ago.total_seconds() // 60), q.urlencode()))
    return links


def _filter_times(filters):
    """The start/until fields: the value to show (UTC, as the server reads a time
    without an offset) and the exact moment, which sagaflow.js shows in the browser's zone."""
    cleaned = getattr(filters.form, "cleaned_data", None) or {}
    times = {}
    for name in ("created_after", "created_before"):
        moment = cleaned.get(name)
        if moment:
            utc = moment.astimezone(UTC)
            times[name] = {"field": utc.strftime("%Y-%m-%dT%H:%M"), "moment": utc.isoformat()}
        else:
            raw = filters.form[name].value() if filters.is_bound else ""
            times[name] = {"field": (raw or "")[:16], "moment": ""}
    return times


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


def _visible_saga(request, saga_id):
    """The saga with its history if this user may see it; NotFound for another's as for none."""
    saga = get_visible_saga(request.user, saga_id, queryset=selectors.saga_detail_rows())
    return selectors.with_history(saga)


def _saga_or_problem(request, saga_id):
    """The saga with its history, or a 404 that does not tell whether it exists."""
    try:
        return _visible_saga(request, saga_id), None
    except engine.NotFound:
        return None, problem(request, f"There is no saga {saga_id} that you may see.", status=404)


def _detail_view(request):
    """How the person reads the saga page: ?timeline=branch, ?elements=N (shown per for_each).

    After an action (a POST) the page they came from says, so that the fresh
    fragment keeps their choice instead of falling back to the defaults.
    """
    params = request.GET
    if request.method != "GET" and request.htmx and request.htmx.current_url:
        params = QueryDict(urlsplit(request.htmx.current_url).query)
    timeline = "branch" if params.get("timeline") == "branch" else "time"
    try:
        elements = int(params.get("elements", branches.ELEMENTS_SHOWN))
    except ValueError:
        elements = branches.ELEMENTS_SHOWN
    # In steps of the first page, and never more than a for_each may have.
    step = branches.ELEMENTS_SHOWN
    elements = min(max(step, elements - elements % step), settings.SAGAS_MAX_BRANCHES)
    return timeline, elements


def _detail_url(saga, timeline, elements):
    query = {}
    if timeline != "time":
        query["timeline"] = timeline
    if elements != branches.ELEMENTS_SHOWN:
        query["elements"] = elements
    url = reverse("saga_detail", args=[saga.pk])
    return f"{url}?{urlencode(query)}" if query else url


def _detail_context(request, saga, **extra):
    steps = saga.step_list
    timeline, elements = _detail_view(request)
    operator = is_operator(request.user)
    # The buttons are the actions the engine would take now; it decides again on a press.
    allowed = engine.allowed_actions(saga, steps)
    for step in steps:
        step.actions = allowed.on(step) if operator else ()
    for_each = branches.for_each_elements(steps, shown=elements)
    return {
        "saga": saga,
        "steps": steps,
        # The elements the expansion shows, and only those: the page stays small however many.
        "table_rows": branches.step_table(steps, for_each),
        "progress": selectors.progress(saga, steps),
        "operator": operator,
        # Results are the services' own data: for operators and whoever started the saga.
        "show_results": operator or saga.started_by_id == request.user.pk,
        "can_cancel": operator and engine.CANCEL in allowed.saga,
        "can_pause": operator and engine.PAUSE in allowed.saga,
        "can_resume": operator and engine.RESUME in allowed.saga,
        "can_rerun": operator and engine.RERUN in allowed.saga,
        "reruns": list(
            visible_sagas(request.user, Saga.objects.filter(rerun_of=saga.pk)).order_by(
                "created_at"
            )
        ),
        "poll_seconds": poll_seconds(),
        "live": not saga.is_finished,
        "approvals": saga.approval_requests,
        # The page polls, and is switched, at the address that keeps the reader's choices.
        "live_url": _detail_url(saga, timeline, elements),
        "timeline_mode": timeline,
        # One timeline is the default (failure and compensation across branches,
        # in order); a saga with branches can also be read branch by branch.
        "timeline_modes": [
            ("time", "By time", _detail_url(saga, "time", elements)),
            ("branch", "By branch", _detail_url(saga, "branch", elements)),
        ]
        if any(step.within_id for step in steps)
        else [],
        "timeline_groups": (
            branches.timeline_by_branch(saga, steps, saga.timeline, shown=elements)
            if timeline == "branch"
            else None
        ),
        "for_each": for_each,
        "more_elements_url": _detail_url(saga, timeline, elements + branches.ELEMENTS_SHOWN),
        "all_elements_url": _detail_url(saga, timeline, settings.SAGAS_MAX_BRANCHES),
        "elements_expanded": elements > branches.ELEMENTS_SHOWN,
        # A `saga` step's box in the diagram opens its child saga.
        "child_links": {
            child.step_name: reverse("saga_detail", args=[child.pk]) for child in saga.children_list
        },
        **extra,
    }


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
    "pause": {
        "title": "Pause saga",
        "verb": "Pause saga",
        "explain": "Nothing new of this saga runs until you resume it: a step already running finishes, decisions and events are still recorded, and deadlines that pass meanwhile are acted on at the resume.",
        "reason": True,
    },
    "resume": {
        "title": "Resume saga",
        "verb": "Resume saga",
        "explain": "The saga carries on where it stood: deadlines that passed while it was paused are acted on first, in order, then what was held runs.",
        "reason": False,
    },
    "rewind": {
        "title": "Rewind to step",
        "verb": "Rewind",
        "explain": "The completed steps from this one on are undone, last first; then the saga runs forward again from this step, with fresh attempts. Approvals from here on are asked anew; the old decisions stay in the history.",
        "reason": True,
    },
    "rerun": {
        "title": "Run again",
        "verb": "Run again",
        "explain": "A new saga starts with this saga's input and correlation id, linked to this one.",
        "reason": False,
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
        step = next((s for s in saga.step_list if s.key == step_name), None)
        if step is None:
            return problem(request, f"Saga {saga.pk} has no step {step_name!r}.", status=404)
    form = ReasonForm(request.POST or None) if spec["reason"] else None
    context = {
        "saga": saga,
        "step": step,
        "action": action,
        "spec": spec,
        "form": form,
        "plan": selectors.cancel_plan(saga) if action == "cancel" else None,
        "post_url": request.path,
    }
    if action == "rewind":
        try:  # the dry run: what would be undone, and what runs again
            rewind = engine.rewind_saga(saga.pk, step.key, dry_run=True)
        except engine.SagaError as exc:
            return problem(request, exc.message, status=exc.status)
        context.update(plan=selectors.rewind_undo(saga, rewind), rewind=rewind)
    if action == "rerun":
        try:
            context["latest"] = engine.published_definition(saga.workflow)
        except engine.SagaError:
            context["latest"] = None  # archived: only its own version, if still published
    if request.method == "GET":
        return _panel(request, context)
    if form is not None and not form.is_valid():
        return _panel(request, context, status=400)
    reason = form.cleaned_data["reason"] if form else None
    if action == "rerun":
        reason = request.POST.get("version") == "latest"  # the operator's choice of version
    try:
        outcome = _do(action, saga, step, reason, request.user)
    except engine.SagaError as exc:
        if exc.fields and form is not None:
            for field, errors in exc.fields.items():
                form.add_error(field if field in form.fields else None, errors)
            return _panel(request, context, status=exc.status)
        return problem(request, exc.message, status=exc.status)
    if action == "rerun":  # the new saga's page
        messages.success(request, f"Started again as saga {outcome.pk}.")
        if request.htmx:
            return HttpResponse(headers={"HX-Redirect": resolve_url("saga_detail", outcome.pk)})
        return redirect("saga_detail", saga_id=outcome.pk)
    if not request.htmx:
        messages.success(request, outcome)
        return redirect("saga_detail", saga_id=saga.pk)
    saga = _visible_saga(request, saga.pk)
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


def _planned_name(undo):
    return f"{undo.step.saga.workflow}.{undo.step.name}" if undo.depth else undo.step.name


def _do(action, saga, step, reason, user):
    if action == "rewind":
        plan = engine.rewind_saga(
            saga.pk, step.key, user=user, reason=reason, actor_label="dashboard"
        )
        undo = ", ".join(plan["compensations"]) or "none"
        return f"Rewinding to {step.name}. Compensations that run, in order: {undo}; then {step.name} runs again."
    if action == "rerun":
        return engine.rerun_saga(saga.pk, user=user, latest=reason, actor_label="dashboard")
    if action == "cancel":
        plan = selectors.cancel_plan(saga)
        engine.cancel_saga(saga.pk, user=user, reason=reason)
        # A child saga's steps by workflow and name: "onboard, vendor.create_vendor, reserve".
        undo = ", ".join(_planned_name(u) for u in plan) or "none"
        return f"Saga cancelled. Compensations that run, in order: {undo}."
    if action == "pause":
        engine.pause_saga(saga.pk, user=user, reason=reason)
        return "Saga paused: nothing new runs until it is resumed."
    if action == "resume":
        engine.resume_saga(saga.pk, user=user)
        return "Saga resumed."
    if action in ("retry", "retry-compensation"):
        engine.retry_saga(saga.pk, user=user, step_name=step.key if step else None)
        what = "compensation of " if action == "retry-compensation" else ""
        return f"Retry of {what}{step.name if step else 'the saga'} queued."
    engine.skip_step(saga.pk, step.key, user=user, reason=reason)
    what = "Compensation of " if action == "skip-compensation" else "Step "
    return f"{what}{step.name} skipped."
