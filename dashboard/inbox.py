"""The approver's pages: the inbox (waiting, decided, all) and the decision page.

Claims, discussion, reassign and away are in dashboard/approval_pages.py;
decisions go through the approvals services, which apply every rule.
"""

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers

from approvals import formschema
from approvals import services as approvals
from approvals.models import ApprovalRequest
from sagas import engine
from sagas import search as search_fields
from sagas.access import is_operator

from . import selectors
from .forms import DecisionForm
from .views import HtmxHttpRequest, poll_seconds, problem, signed_in, wants_fragment

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
    try:  # the workflows' search fields: ?customer=ACME, ?amount__gte=1000
        terms = search_fields.parse_terms(request.GET)
    except search_fields.SearchError as exc:
        return problem(request, f"The filters are not valid: {exc}", status=400)
    context["terms"] = [(key, op, text) for key, op, text, _ in terms]
    context["search_fields"] = selectors.inbox_search_fields(request.GET)
    if tab == "decided":
        context["decisions"] = list(approvals.decisions_by(request.user)[:100])
    else:

        def searched(queryset):
            return search_fields.filter_by_terms(queryset, terms, saga_ref="saga_id")

        standing = approvals.standing_of(request.user)  # for the rows and for what each says
        decidable_rows, barred_in_family = approvals.decidable_and_barred(request.user, standing)
        mine = searched(decidable_rows)
        # A page an approver works through, not every request at once: rendering
        # a decision form per row is what costs time, not finding the rows.
        size = settings.DASHBOARD_INBOX_SIZE
        if tab == "waiting":
            items = selectors.approval_items(mine, limit=size + 1)
            decidable = {item.pk for item in items}
            context["more"] = len(items) > size
            items = items[:size]
            context["shown"] = len(items)
            # Requests naming them that four-eyes bars through an act elsewhere
            # in the saga's family stay listed, after what they may decide (so
            # they never take its place on the page), marked with the reason.
            barred_rows = selectors.approval_items(searched(barred_in_family), limit=size)
            items += barred_rows
        else:
            items = selectors.approval_items(
                searched(ApprovalRequest.objects.all()), limit=size + 1, newest_first=True
            )
            context["more"] = len(items) > size
            items = items[:size]
            context["shown"] = len(items)
            ids = [item.pk for item in items]
            decidable = set(mine.filter(pk__in=ids).values_list("pk", flat=True))
            barred_ids = set(barred_in_family.filter(pk__in=ids).values_list("pk", flat=True))
            barred_rows = [item for item in items if item.pk in barred_ids]
        barred = approvals.family_refusals(request.user, barred_rows)
        for item in items:
            item.refusal = barred.get(item.pk, "")
            item.decidable = item.pk in decidable
        context["decidable_count"] = sum(1 for item in items if item.decidable)
        context["barred_count"] = len(barred)
        context["items"] = selectors.annotate(items, request.user, standing=standing)
    template = "dashboard/inbox.html#list" if wants_fragment(request) else "dashboard/inbox.html"
    return render(request, template, context)


def _approval_or_problem(request, approval_id):
    """The request if this user may see it, else a 404 that does not tell whether it exists.

    Someone who sees it but may not decide it is told why on the page (a 403 on POST).
    """
    try:
        item = approvals.get_visible_request(
            request.user, approval_id, queryset=selectors.approval_rows()
        )
    except engine.NotFound:
        return None, problem(
            request, f"There is no approval request {approval_id} that you may see.", status=404
        )
    return next(selectors.with_overdue([item])), None


@require_http_methods(["GET", "POST"])
@signed_in
def approval(request: HtmxHttpRequest, approval_id: int) -> HttpResponse:
    """The decision page (linked from the e-mail); POST records a decision, also from the inbox."""
    item, refused = _approval_or_problem(request, approval_id)
    if refused:
        return refused
    form = DecisionForm(request.POST or None)
    error, status = "", 200
    spec_form = selectors.form_of(item)
    values, field_errors = {}, {}
    if request.method == "POST":
        values = formschema.from_post(spec_form, request.POST)
        if not form.is_valid():
            error, status = "Choose approve or reject.", 400
        else:
            try:
                approvals.decide(
                    request=item,  # its saga is known: decide locks it without a read first
                    user=request.user,
                    decision=form.cleaned_data["decision"],
                    comment=form.cleaned_data["comment"],
                    data=values if spec_form else None,
                )
            except engine.SagaError as exc:
                error, status = exc.message, exc.status
                for field, messages_ in (exc.fields or {}).items():
                    if field in form.fields:
                        form.add_error(field, messages_)
                    elif field.startswith("data."):
                        field_errors[field] = messages_
            else:
                verb = "approved" if form.cleaned_data["decision"] == "approve" else "rejected"
                if not request.htmx:
                    messages.success(request, f"You {verb} “{item.title}”.")
                    return redirect("approval", approval_id=item.pk)
                item = selectors.approval_item(item.pk)
                form = DecisionForm()
                error, values = "", {}
                item.just_decided = verb
    # Each approver decides once: after your decision a request that stays open
    # (quorum, all) says what you decided and who else still may, not Approve/Reject.
    item.my_decision = next(
        (d for d in item.decisions.all() if request.user.pk in (d.user_id, d.on_behalf_of_id)),
        None,
    )
    on_behalf_of, refusal = (
        (None, "") if not item.is_open else approvals.capacity(item, request.user)
    )
    item.decidable = item.is_open and item.my_decision is None and not refusal
    item.refusal = "" if item.decidable or not item.is_open or item.my_decision else refusal
    if item.my_decision and item.is_open:
        item.others, item.others_more = selectors.still_to_decide(item)
    selectors.annotate([item], request.user, values=values, errors=field_errors)
    # The rules' own answer (approvals.selectors.capacity), not the inbox's quick reading.
    item.on_behalf_of = on_behalf_of.get_username() if on_behalf_of else ""
    item.full_page = not request.htmx or request.POST.get("full") == "1"
    if item.full_page:
        item.discussion = list(item.comments.select_related("user").order_by("at", "id"))
    item.may_reassign = item.is_open and is_operator(request.user)
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
