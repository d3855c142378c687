"""Who may do what: every page, fragment and API endpoint × every role × own/foreign object.

"own" is the initiator's saga (and its approval request); "foreign" is an
operator's. Each cell is run in a transaction that is rolled back, so every
cell sees the same world; a refused cell must leave every saga and approval
table exactly as it was. Statuses are those of the README (Dashboard, REST
API): a saga or request one may not see is a 404, pages and API alike, an act
one may not do on one they see is a 403, anonymous pages send to the login
(302; htmx: 204 with HX-Redirect), anonymous API calls get 401.
"""

from django.db import transaction
from django.test import Client
from rest_framework.authtoken.models import Token

from .conftest import table_counts

ROLES = ["anonymous", "approver", "ineligible", "initiator", "operator", "admin"]
SEEN = {"approver", "operator", "admin"}  # see both sagas (the approver is asked about both)

# name: (method, path template, data, kind); {saga} and {request} are own or foreign objects
REQUESTS = {
    "overview": ("get", "/", None, "page"),
    "overview_fragment": ("get", "/", None, "fragment"),
    "saga_list": ("get", "/sagas/", None, "page"),
    "saga_list_fragment": ("get", "/sagas/", None, "fragment"),
    "saga_detail": ("get", "/sagas/{saga}/", None, "page"),
    "saga_detail_fragment": ("get", "/sagas/{saga}/", None, "fragment"),
    "cancel_panel": ("get", "/sagas/{saga}/cancel/", None, "fragment"),
    "cancel": ("post", "/sagas/{saga}/cancel/", {"reason": "matrix"}, "page"),
    "skip": ("post", "/sagas/{saga}/steps/approval/skip/", {"reason": "matrix"}, "fragment"),
    "retry": ("post", "/sagas/{saga}/steps/reserve/retry/", {}, "fragment"),
    "bulk_cancel": (
        "post",
        "/sagas/bulk/",
        {"action": "cancel", "saga": ["{saga}"], "reason": "matrix", "confirm": "True"},
        "page",
    ),
    "inbox": ("get", "/approvals/", None, "page"),
    "inbox_fragment": ("get", "/approvals/", None, "fragment"),
    "approval_page": ("get", "/approvals/{request}/", None, "page"),
    "decide_form": ("post", "/approvals/{request}/", {"decision": "approve"}, "fragment"),
    "workflows": ("get", "/workflows/", None, "page"),
    "start_form": ("get", "/workflows/guarded/start/", None, "page"),
    "start": ("post", "/workflows/guarded/start/", {"input": "{}"}, "page"),
    "api_sagas": ("get", "/api/v1/sagas/", None, "api"),
    "api_saga": ("get", "/api/v1/sagas/{saga}/", None, "api"),
    "api_events": ("get", "/api/v1/sagas/{saga}/events/", None, "api"),
    "api_cancel": ("post", "/api/v1/sagas/{saga}/cancel/", {"reason": "matrix"}, "api"),
    "api_skip": ("post", "/api/v1/sagas/{saga}/steps/approval/skip/", {"reason": "m"}, "api"),
    "api_retry": ("post", "/api/v1/sagas/{saga}/retry/", {}, "api"),
    "api_start": ("post", "/api/v1/sagas/", {"workflow": "guarded", "input": {}}, "api"),
    "api_approvals": ("get", "/api/v1/approvals/", None, "api"),
    "api_approval": ("get", "/api/v1/approvals/{request}/", None, "api"),
    "api_decide": ("post", "/api/v1/approvals/{request}/decide/", {"decision": "approve"}, "api"),
    "api_events_in": ("post", "/api/v1/events/", {"type": "t", "correlation_id": "c"}, "api"),
    "api_workflows": ("get", "/api/v1/workflows/", None, "api"),
    "api_publish": (
        "post",
        "/api/v1/workflows/",
        {"name": "new_wf", "steps": [{"name": "a", "type": "action", "action": "test.ok"}]},
        "api",
    ),
}

OK = {"page": 200, "fragment": 200, "api": 200}
ANON = {"page": 302, "fragment": 204, "api": 401}


def expected(name, role, whose):
    """The specified status of one cell."""
    method, path, _, kind = REQUESTS[name]
    if role == "anonymous":
        return ANON[kind]
    sees = role in SEEN or (role == "initiator" and whose == "own")
    operator = role in ("operator", "admin")
    per_object = "{saga}" in path or "{request}" in path or "{saga}" in str(REQUESTS[name][2])
    if name in (
        "overview",
        "overview_fragment",
        "saga_list",
        "saga_list_fragment",
        "inbox",
        "inbox_fragment",
        "workflows",
        "api_sagas",
        "api_approvals",
        "api_workflows",
    ):
        return 200  # everyone signed in; the lists show only what they may see
    if name in ("saga_detail", "saga_detail_fragment", "api_saga", "api_events"):
        return 200 if sees else 404  # neither the pages nor the API tell what exists
    if name in ("cancel_panel", "cancel", "skip", "retry", "bulk_cancel"):
        if not operator:
            return 403  # operators only: the dashboard refuses before looking at the saga
        return {"cancel": 302, "retry": 409, "bulk_cancel": 200}.get(name, 200)
    if name in ("start_form", "start"):
        return (200 if name == "start_form" else 302) if operator else 403
    if name in ("api_cancel", "api_skip", "api_retry"):
        if not sees:
            return 404
        if not operator:
            return 403
        return 409 if name == "api_retry" else 200
    if name == "api_start":
        return 201 if operator or role == "initiator" else 403
    if name == "api_events_in":
        return 202 if operator else 403
    if name == "api_publish":
        return 201 if role == "admin" else 403
    if name in ("approval_page", "api_approval"):
        # approvers asked, operators, and the initiator of the saga it holds up
        if role in ("approver", "operator", "admin") or (role == "initiator" and whose == "own"):
            return 200
        return 404
    if name in ("decide_form", "api_decide"):
        # only those asked; the initiator never (four-eyes): 403 with the reason to
        # those who see the request, 404 to those who cannot (as for its page)
        if role == "approver":
            return 200
        if expected("api_approval", role, whose) == 404:
            return 404
        return 403
    raise AssertionError(f"no rule for {name}, per object: {per_object}")


def run_cell(world, name, role, whose):
    method, path, data, kind = REQUESTS[name]
    saga = world.own if whose == "own" else world.foreign
    request = world.own_request if whose == "own" else world.foreign_request
    fill = lambda s: s.replace("{saga}", str(saga.pk)).replace("{request}", str(request.pk))  # noqa: E731
    path = fill(path)
    if isinstance(data, dict):
        data = {
            k: [fill(x) if isinstance(x, str) else x for x in v] if isinstance(v, list) else v
            for k, v in data.items()
        }
    client = Client()
    user = world.users[role]
    headers = {}
    if user is not None:
        if kind == "api":
            token, _ = Token.objects.get_or_create(user=user)
            headers["HTTP_AUTHORIZATION"] = f"Token {token.key}"
        else:
            client.force_login(user)
    if kind == "fragment":
        headers["HTTP_HX_REQUEST"] = "true"
    with transaction.atomic():
        before = table_counts()
        if method == "get":
            response = client.get(path, **headers)
        elif kind == "api":
            response = client.post(path, data, content_type="application/json", **headers)
        else:
            response = client.post(path, data, **headers)
        after = table_counts()
        transaction.set_rollback(True)
    return response, before, after


def test_the_whole_access_matrix(world):
    mismatches, changed_on_denial, cells = [], [], 0
    for name in REQUESTS:
        per_object = "{" in REQUESTS[name][1] or "{saga}" in str(REQUESTS[name][2])
        for role in ROLES:
            for whose in ("own", "foreign") if per_object else ("own",):
                cells += 1
                response, before, after = run_cell(world, name, role, whose)
                want = expected(name, role, whose)
                if response.status_code != want:
                    mismatches.append(f"{name} {role} {whose}: {response.status_code} != {want}")
                if response.status_code >= 400 and before != after:
                    changed_on_denial.append(f"{name} {role} {whose}")
    assert cells > 250
    assert mismatches == [], "\n".join(mismatches)
    assert changed_on_denial == []
