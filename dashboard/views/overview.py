"""The overview: counts, what needs attention, recent failures, and my approvals."""

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from approvals import services as approvals
from sagas.filters import is_operator

from .. import selectors
from .common import HtmxHttpRequest, poll_seconds, signed_in, wants_fragment


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
    waiting = list(selectors.with_overdue(approvals.approvals_for(user)[:10]))
    return {"approvals": waiting}
