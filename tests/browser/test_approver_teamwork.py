"""In a real Chromium: fill an approval form and see the next step use the value, decide on
behalf of an away colleague, see a claim."""

import pytest
from playwright.sync_api import expect

from approvals.models import ApprovalRequest, Decision
from sagas.engine import start_saga
from tests.approvals.test_forms import form_workflow

from .conftest import PASSWORD, screenshot


@pytest.fixture
def more_users(users, django_user_model):
    from django.contrib.auth.models import Group

    managers = Group.objects.get(name="managers")
    made = {}
    for name, groups in [("erin", []), ("dan", []), ("morgan", [managers])]:
        user = django_user_model.objects.create_user(name, f"{name}@example.com", PASSWORD)
        user.groups.add(*groups)
        made[name] = user
    return {**users, **made}


def test_a_form_value_feeds_the_next_step(open_page, users, publish, settle):
    publish(form_workflow())
    saga, _ = start_saga(workflow="with_form", input={"order_id": "5"}, user=users["olivia"])
    settle()
    request = ApprovalRequest.objects.get(saga=saga)
    page = open_page("alex")
    page.goto("/approvals/")
    # Approving a request with a form opens the form.
    page.locator(f"#approval-{request.pk}").get_by_role("link", name="Approve").click()
    form = page.locator(f"#approval-form-{request.pk}")
    expect(form).to_be_visible()
    form.get_by_label("Approved amount").fill("-3")
    form.get_by_label("Cost centre").select_option("ops")
    page.get_by_role("button", name="Approve").click()
    # The browser refuses below the minimum before the server is asked (which refuses it too:
    # tests/approvals/test_teamwork_pages.py).
    assert form.get_by_label("Approved amount").evaluate("e => !e.validity.valid")
    assert not Decision.objects.exists()
    form.get_by_label("Approved amount").fill("750")
    form.get_by_label("Ship by").fill("2026-12-24")
    screenshot(page, "approval-form")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator(".notice-success, [role=status]").first).to_contain_text("approved")
    assert Decision.objects.get().data["approved_amount"] == 750
    settle()
    operator = open_page("olivia")
    operator.goto(f"/sagas/{saga.pk}/")
    big = operator.locator('tr[data-step="big"]')
    expect(big).to_have_attribute("data-status", "completed")
    expect(big).to_contain_text('"amount": 750')


def test_deciding_on_behalf_of_an_away_colleague(open_page, more_users, publish, settle):
    publish(
        {
            "name": "named_approval",
            "steps": [
                {"name": "reserve", "type": "action", "action": "test.ok"},
                {
                    "name": "approval",
                    "type": "approval",
                    "approvers": {"users": ["erin"]},
                    "title": "Order {{ input.order_id }}",
                },
            ],
        }
    )
    erin = open_page("erin")
    erin.goto("/me/away/")
    erin.get_by_label("Away from").fill("2020-01-01")
    erin.get_by_label("Delegate").fill("dan")
    erin.get_by_label("Note").fill("parental leave")
    erin.get_by_role("button", name="Save").click()
    expect(erin.locator("[data-away-active]")).to_contain_text("dan")

    saga, _ = start_saga(
        workflow="named_approval", input={"order_id": "77"}, user=more_users["olivia"]
    )
    settle()
    request = ApprovalRequest.objects.get(saga=saga)
    page = open_page("dan")
    page.goto("/approvals/")
    item = page.locator(f"#approval-{request.pk}")
    expect(item.locator("[data-on-behalf]")).to_contain_text("On behalf of erin")
    item.get_by_label("Comment").fill("for Erin, as agreed")
    item.get_by_role("button", name="Approve").click()
    expect(item).to_contain_text("You approved this request.")
    decision = Decision.objects.get()
    assert (decision.user.username, decision.on_behalf_of.username) == ("dan", "erin")
    page.goto(f"/approvals/{request.pk}/")
    expect(page.locator(".decisions")).to_contain_text("dan on behalf of erin")
    screenshot(page, "approval-on-behalf")


def test_a_claim_is_seen_by_the_other_approvers(open_page, more_users, start):
    saga = start("approved_order", {"order_id": "88"})
    request = ApprovalRequest.objects.get(saga=saga)
    alex = open_page("alex")
    alex.goto(f"/approvals/{request.pk}/")
    alex.get_by_role("button", name="Claim it").click()
    expect(alex.locator("[data-claim]")).to_contain_text("Claimed by alex")
    morgan = open_page("morgan")
    morgan.goto("/approvals/")
    item = morgan.locator(f"#approval-{request.pk}")
    expect(item.locator("[data-claim]")).to_contain_text("Claimed by alex since")
    screenshot(morgan, "approval-claimed")
    # Advisory: morgan still may decide.
    expect(item.get_by_role("button", name="Approve")).to_be_visible()
