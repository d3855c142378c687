"""The Events page (operators): events other services delivered, what they matched or until
when they are kept, and discarding a kept one (sagas.engine.discard_event)."""

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers

from sagas import engine
from sagas.filters import InboundEventFilter
from sagas.models import InboundEvent

from .forms import ReasonForm
from .views import HtmxHttpRequest, operators_only, poll_seconds, problem, wants_fragment

# The page shows the newest deliveries that match the filters.
SHOWN = 100


def _list_context(request, query):
    filters = InboundEventFilter(
        query or None, queryset=InboundEvent.objects.select_related("actor", "discarded_by")
    )
    valid = not filters.is_bound or filters.is_valid()  # unbound: no filter, every event
    events = list(filters.qs.order_by("-received_at", "-id")[:SHOWN]) if valid else []
    return {"filters": filters, "events": events, "shown": SHOWN, "poll_seconds": poll_seconds()}


@require_GET
@vary_on_headers("HX-Request")
@operators_only
def event_list(request: HtmxHttpRequest) -> HttpResponse:
    context = {**_list_context(request, request.GET), "here": request.get_full_path()}
    template = "dashboard/events.html#table" if wants_fragment(request) else "dashboard/events.html"
    return render(request, template, context, status=400 if context["filters"].errors else 200)


@require_http_methods(["GET", "POST"])
@operators_only
def event_discard(request: HtmxHttpRequest, event_id: int) -> HttpResponse:
    """Confirm (GET) and then do (POST) the discard of a kept event, with a reason."""
    event = InboundEvent.objects.filter(pk=event_id).first()
    if event is None:
        return problem(request, f"There is no event {event_id}.", status=404)
    form = ReasonForm(request.POST or None)
    form.fields["reason"].help_text = "Recorded on the event with your name."
    context = {"event": event, "form": form, "post_url": request.path}
    if request.method == "GET":
        return _panel(request, context)
    if not form.is_valid():
        return _panel(request, context, status=400)
    try:
        engine.discard_event(event.pk, user=request.user, reason=form.cleaned_data["reason"])
    except engine.SagaError as exc:
        if exc.fields:
            for field, errors in exc.fields.items():
                form.add_error(field if field in form.fields else None, errors)
            return _panel(request, context, status=exc.status)
        return problem(request, exc.message, status=exc.status)
    outcome = (
        f"Event {event.pk} ({event.type}, {event.correlation_id}) discarded: no wait will take it."
    )
    if not request.htmx:
        messages.success(request, outcome)
        return redirect("event_list")
    response = render(request, "dashboard/events.html#outcome", {"outcome": outcome})
    response["HX-Trigger"] = "events-changed"  # the table refreshes itself
    return response


def _panel(request, context, status=200):
    if wants_fragment(request):
        response = render(request, "dashboard/events.html#panel", context, status=status)
    else:  # the whole page, with the panel open on it
        page = {**_list_context(request, None), "here": reverse("event_list"), **context}
        response = render(request, "dashboard/events.html", page, status=status)
    if request.htmx and status >= 400:
        response["HX-Retarget"] = "#event-panel"
        response["HX-Reswap"] = "innerHTML"
    return response
