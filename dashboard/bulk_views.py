"""Bulk actions on every saga a filter matches: a preview, a confirmation, then a live progress page.

The work itself is sagas.bulk's (a django-q2 task, each saga in its own
transaction); these views only ask, show and report. Which actions are
offered is the bulk registry's (sagas/bulk/registry.py), so an action
registered there (pause, resume) appears here without an edit.
"""

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from sagas import bulk, engine
from sagas.filters import SagaFilter
from sagas.models import BulkOperation, BulkOutcome

from .views import HtmxHttpRequest, operators_only, problem, wants_fragment

OUTCOMES_PAGE = 100
# The progress page refreshes faster than the other pages: it is watched while it moves.
PROGRESS_POLL_SECONDS = 1


def filter_items(data):
    """The saga list's filter parameters in `data` (a QueryDict), the last value of each.

    The form sends the filters twice when they changed since the page was
    drawn (its hidden copies, then the live filter form): the last one counts.
    """
    items = []
    for key in SagaFilter.base_filters:
        values = data.getlist(key)
        if values and values[-1]:
            items.append((key, values[-1]))
    return items


@require_POST
@operators_only
def bulk_all(request: HtmxHttpRequest) -> HttpResponse:
    """Preview (count and a sample) of an action on all the filter matches; with confirm, start it."""
    action = request.POST.get("action", "")
    items = filter_items(request.POST)
    reason = request.POST.get("reason", "")
    context = {"filter_items": items, "reason": reason}
    try:
        preview = bulk.preview_bulk(user=request.user, action=action, filter=dict(items))
        context.update(preview=preview, action=preview["action"])
        if request.POST.get("confirm") == "true":
            operation = bulk.create_bulk(
                user=request.user, action=action, filter=dict(items), reason=reason
            )
            if request.htmx:
                url = resolve_url("bulk_detail", operation.pk)
                return HttpResponse(headers={"HX-Redirect": url})
            return redirect("bulk_detail", bulk_id=operation.pk)
    except engine.SagaError as exc:
        if "preview" not in context:
            return problem(request, exc.message, status=exc.status)
        context.update(error=exc.message, fields=exc.fields or {})
        return _render(request, "dashboard/bulk.html#preview", context, status=exc.status)
    return _render(request, "dashboard/bulk.html#preview", context)


def _render(request, template, context, status=200):
    if not request.htmx:
        template = template.split("#")[0]
    response = render(request, template, context, status=status)
    if request.htmx and status >= 400:
        response["HX-Retarget"] = "#bulk-panel"
        response["HX-Reswap"] = "innerHTML"
    return response


@require_GET
@vary_on_headers("HX-Request")
@operators_only
def bulk_detail(request: HtmxHttpRequest, bulk_id: int) -> HttpResponse:
    """An operation's progress (live while it runs) and its outcome per saga."""
    operation = BulkOperation.objects.select_related("actor").filter(pk=bulk_id).first()
    if operation is None:
        return problem(request, f"There is no bulk operation {bulk_id}.", status=404)
    which = request.GET.get("outcome") or ""
    if which and which not in BulkOutcome.Status.values:
        return problem(request, "Show outcomes that are queued, done or refused.", status=400)
    after = request.GET.get("after") or None
    if after is not None and not (after.isdigit() and len(after) <= 18):
        return problem(request, "Not a page of this list.", status=400)
    rows = bulk.outcomes_page(operation, status=which, after=after, size=OUTCOMES_PAGE + 1)
    context = {
        "operation": operation,
        "action": bulk.get_action(operation.action),
        "outcomes": rows[:OUTCOMES_PAGE],
        "next_after": rows[OUTCOMES_PAGE - 1].pk if len(rows) > OUTCOMES_PAGE else None,
        "which": which,
        "after": after or "",
        "live": operation.status == BulkOperation.Status.RUNNING,
        "poll_seconds": PROGRESS_POLL_SECONDS,
        "page_poll_seconds": settings.DASHBOARD_POLL_SECONDS,
    }
    template = "dashboard/bulk.html#live" if wants_fragment(request) else "dashboard/bulk.html"
    return render(request, template, context)
