"""Fixtures for workflow authoring: an author who may publish, a staff viewer who may not."""

import pytest
from django.contrib.auth.models import Permission

SIMPLE = """\
name: simple
description: Two steps, the first undone by test.undo.
steps:
  - name: first
    type: action
    action: test.ok
    compensation: test.undo
  - name: second
    type: action
    action: test.ok
"""


def _perms(*codenames):
    return Permission.objects.filter(content_type__app_label="sagas", codename__in=codenames)


@pytest.fixture
def author(django_user_model):
    """Staff with the permission to publish and archive workflows."""
    user = django_user_model.objects.create_user("author", "author@example.com", "pw-author")
    user.is_staff = True
    user.save()
    user.user_permissions.add(
        *_perms("add_workflowdefinition", "view_workflowdefinition", "view_workflowaudit")
    )
    return user


@pytest.fixture
def viewer(django_user_model):
    """Staff who may look at workflows but not publish them."""
    user = django_user_model.objects.create_user("viewer", "viewer@example.com", "pw-viewer")
    user.is_staff = True
    user.save()
    user.user_permissions.add(*_perms("view_workflowdefinition"))
    return user


@pytest.fixture
def author_client(client, author):
    client.force_login(author)
    return client


@pytest.fixture
def simple(publish):
    return publish(SIMPLE)
