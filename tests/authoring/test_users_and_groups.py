"""Users and groups in the admin: where approval steps name them, and no deleting a named one."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from sagas.models import WorkflowDefinition


def approval_workflow(name, *, version=1, status="published", groups=(), users=(), escalate=()):
    # Stored as it would be published: the approvals app reads the documents as
    # they are (approvals.references.workflows_naming), not through validation.
    return WorkflowDefinition.objects.create(
        name=name,
        version=version,
        status=status,
        spec={
            "name": name,
            "steps": [
                {"name": "reserve", "type": "action", "action": "test.ok"},
                {
                    "name": "manager_approval",
                    "type": "approval",
                    "approvers": {"groups": list(groups), "users": list(users)},
                    "escalate_to": {"groups": list(escalate), "users": []},
                },
            ],
        },
    )


@pytest.fixture
def managers(db):
    return Group.objects.create(name="managers")


@pytest.fixture
def directors(db):
    return Group.objects.create(name="directors")


def test_the_group_page_lists_the_approval_steps_that_name_it(admin_client, managers, directors):
    approval_workflow("orders", groups=["managers"], escalate=["directors"])
    approval_workflow("refunds", groups=["directors"])
    page = admin_client.get(reverse("admin:auth_group_change", args=[managers.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "orders v1 (published) · step manager_approval (approvers)" in html
    assert "refunds" not in html
    page = admin_client.get(reverse("admin:auth_group_change", args=[directors.pk]))
    html = page.content.decode()
    assert "orders v1 (published) · step manager_approval (escalate_to)" in html
    assert "refunds v1 (published) · step manager_approval (approvers)" in html


def test_a_group_no_workflow_names_says_so(admin_client, managers):
    page = admin_client.get(reverse("admin:auth_group_change", args=[managers.pk]))
    assert b"No workflow's approval step names it." in page.content


def test_deleting_a_group_a_published_workflow_names_is_refused_with_where(admin_client, managers):
    approval_workflow("orders", groups=["managers"])
    url = reverse("admin:auth_group_delete", args=[managers.pk])
    page = admin_client.get(url)
    assert b"managers is named by workflow orders v1, step manager_approval (approvers)" in (
        page.content
    )
    admin_client.post(url, {"post": "yes"})
    assert Group.objects.filter(pk=managers.pk).exists()


def test_bulk_deleting_groups_is_refused_too(admin_client, managers):
    approval_workflow("orders", escalate=["managers"])
    response = admin_client.post(
        reverse("admin:auth_group_changelist"),
        {"action": "delete_selected", "_selected_action": [managers.pk], "post": "yes"},
    )
    assert b"step manager_approval (escalate_to)" in response.content
    assert Group.objects.filter(pk=managers.pk).exists()


def test_a_group_named_only_by_archived_versions_may_be_deleted(admin_client, managers):
    approval_workflow("orders", groups=["managers"], status="archived")
    admin_client.post(reverse("admin:auth_group_delete", args=[managers.pk]), {"post": "yes"})
    assert not Group.objects.filter(pk=managers.pk).exists()


def test_deleting_a_named_user_is_refused_and_the_user_page_says_where(
    admin_client, django_user_model
):
    carol = django_user_model.objects.create_user("carol", password="pw")
    approval_workflow("orders", users=["carol"])
    page = admin_client.get(reverse("admin:auth_user_change", args=[carol.pk]))
    assert b"workflow orders v1, step manager_approval (approvers)" in page.content
    url = reverse("admin:auth_user_delete", args=[carol.pk])
    page = admin_client.get(url)
    assert b"carol is named by workflow orders v1, step manager_approval" in page.content
    admin_client.post(url, {"post": "yes"})
    assert django_user_model.objects.filter(pk=carol.pk).exists()


def test_an_unnamed_user_may_be_deleted(admin_client, django_user_model):
    dave = django_user_model.objects.create_user("dave", password="pw")
    approval_workflow("orders", users=["carol"])
    admin_client.post(reverse("admin:auth_user_delete", args=[dave.pk]), {"post": "yes"})
    assert not django_user_model.objects.filter(pk=dave.pk).exists()


def test_a_group_in_a_validated_approval_workflow_cannot_be_deleted(
    admin_client, publish, managers
):
    publish(
        {
            "name": "expenses",
            "steps": [
                {"name": "approve", "type": "approval", "approvers": {"groups": ["managers"]}}
            ],
        }
    )
    page = admin_client.post(
        reverse("admin:auth_group_delete", args=[managers.pk]), {"post": "yes"}
    )
    assert b"managers is named by workflow expenses v1, step approve (approvers)" in page.content
    assert Group.objects.filter(pk=managers.pk).exists()
