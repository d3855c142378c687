"""The approver's pages: the inbox and the decision page that approval e-mails link to."""

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers

from approvals import services as approvals
from approvals.models import ApprovalRequest
from sagas import engine
from sagas.filters import is_operator

from .. import selectors
from ..forms import DecisionForm
from .common import HtmxHttpRequest, poll_seconds, problem, signed_in, wants_fragment

TABS = {"waiting": "Waiting for me", "decided": "Decided by me", "all": "All"}


@require_GET
@vary_on_headers("HX-Request")
@signed_in
def inbox(request: HtmxHttpRequest) -> HttpResponse:
    operator = is_operator(request.user)
    tab = request.GET.get("tab", "waiting")
    if tab not in TABS or (tab == "all" and not operator):
        return problem(
            request,
            "Only operators see all approvals; your own are under the other tabs.",
            status=403,
        )
    context = {
        "tab": tab,
        "tabs": [(k, v) for k, v in TABS.items() if k != "all" or operator],
        "operator": operator,
        "poll_seconds": poll_seconds(),
    }
    if tab == "decided":
        context["decisions"] = list(approvals.decisions_by(request.user)[:100])
    else:
        mine = approvals.approvals_for(request.user)
        # A page an approver works through, not every request at once: rendering
        # a decision form per row is what costs time, not finding the rows.
        size = settings.DASHBOARD_INBOX_SIZE
        if tab == "waiting":
            items = selectors.approval_items(mine, limit=size + 1)
            decidable = {item.pk for item in items}
        else:
            items = selectors.approval_items(
                ApprovalRequest.objects.all(), limit=size + 1, newest_first=True
            )
            decidable = set(
                mine.filter(pk__in=[item.pk for item in items]).values_list("pk", flat=True)
            )
        context["more"] = len(items) > size
        items = items[:size]
        for item in items:
            item.decidable = item.pk in decidable
        context["items"] = items
    template = "dashboard/inbox.html#list" if wants_fragment(request) else "dashboard/inbox.html"
    return render(request, template, context)


def _approval_or_problem(request, approval_id):
    item = selectors.approval_item(approval_id)
    if item is None:
        return None, problem(request, f"There is no approval request {approval_id}.", status=404)
    if not approvals.can_view(item, request.user):
        return None, problem(
            request,
            "You are not an approver of this request, so you may not see or decide it.",
            status=403,
        )
    return item, None


@require_http_methods(["GET", "POST"])
@signed_in
def approval(request: HtmxHttpRequest, approval_id: int) -> HttpResponse:
    """The decision page (linked from the e-mail); POST records a decision, also from the inbox."""
    item, refused = _approval_or_problem(request, approval_id)
    if refused:
        return refused
    form = DecisionForm(request.POST or None)
    error, status = "", 200
    if request.method == "POST":
        if not form.is_valid():
            error, status = "Choose approve or reject.", 400
        else:
            try:
                approvals.decide(
                    request=item.pk,
                    user=request.user,
                    decision=form.cleaned_data["decision"],
                    comment=form.cleaned_data["comment"],
                )
            except engine.SagaError as exc:
                error, status = exc.message, exc.status
                for field, messages_ in (exc.fields or {}).items():
                    if field in form.fields:
                        form.add_error(field, messages_)
            else:
                verb = "approved" if form.cleaned_data["decision"] == "approve" else "rejected"
                if not request.htmx:
                    messages.success(request, f"You {verb} “{item.title}”.")
                    return redirect("approval", approval_id=item.pk)
                item = selectors.approval_item(item.pk)
                form = DecisionForm()
                error = ""
                item.just_decided = verb
    item.decidable = item.is_open and approvals.is_eligible(item, request.user)
    item.refusal = (
        "" if item.decidable or not item.is_open else approvals.refusal(item, request.user)
    )
    context = {
        "item": item,
        "form": form,
        "error": error,
        "full": not request.htmx or request.POST.get("full") == "1",
    }
    if request.htmx:
        response = render(request, "dashboard/approval.html#item", context, status=status)
        if status == 200:
            response["HX-Trigger"] = "approvals-changed"
        return response
    return render(request, "dashboard/approval.html", context, status=status)
