"""Django admin of approvals: requests and decisions (read-only), and who approval steps name.

The user and group pages list the approval steps that name them, and deleting
one that a published workflow names is refused (README: Workflow authoring).
"""

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.utils.html import format_html, format_html_join

from .models import ApprovalRequest, Away, Decision
from .references import workflows_naming


class ReadOnlyAdmin(admin.ModelAdmin):
    # The rules (four-eyes, policies, the saga's transition) live in services;
    # editing rows here would bypass them.
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class DecisionInline(admin.TabularInline):
    model = Decision
    fields = ["user", "on_behalf_of", "decision", "comment", "data", "at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(ReadOnlyAdmin):
    list_display = ["title", "status", "policy", "due_at", "escalated", "saga", "created_at"]
    list_filter = ["status", "policy", "escalated"]
    search_fields = ["title", "saga__id", "saga__correlation_id"]
    raw_id_fields = ["saga", "step"]
    filter_horizontal = ["users", "groups"]
    inlines = [DecisionInline]


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = ["request", "user", "decision", "at"]
    list_filter = ["decision"]
    search_fields = ["user__username", "request__title", "comment"]
    raw_id_fields = ["request", "user"]


@admin.register(Away)
class AwayAdmin(admin.ModelAdmin):
    """Admins mark a user away for them (a user does it on /me/away/ or the API)."""

    list_display = ["user", "starts_at", "ends_at", "delegate", "note", "updated_by"]
    search_fields = ["user__username", "delegate__username"]
    raw_id_fields = ["user", "delegate"]
    fields = ["user", "starts_at", "ends_at", "delegate", "note"]

    def save_model(self, request, obj, form, change):
        # The rules (no self-delegation, a start before the end) are the service's.
        from .away import set_away

        set_away(
            user=obj.user,
            by=request.user,
            starts_at=obj.starts_at,
            ends_at=obj.ends_at,
            delegate=obj.delegate,
            note=obj.note,
        )


# --- users and groups that approval steps name ------------------------------------------


def _refuse_deleting_named(objs, found_for, perms_needed, protected):
    """Add every published workflow that names one of `objs` to the admin's "protected" list."""
    protected = list(protected)
    for obj in objs:
        for reference in found_for(obj):
            protected.append(f"{obj} is named by {reference}")
    return perms_needed, protected


def _references_html(references):
    if not references:
        return "No workflow's approval step names it."
    return format_html(
        "<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((str(r),) for r in references))
    )


admin.site.unregister(Group)


@admin.register(Group)
class WorkflowAwareGroupAdmin(GroupAdmin):
    """Shows which approval steps name the group, and refuses deleting one that is named."""

    change_form_template = "approvals/admin/group_change_form.html"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        context = dict(extra_context or {})
        if obj is not None:
            context["workflow_references"] = workflows_naming(group=obj.name, published_only=False)
        return super().change_view(request, object_id, form_url, context)

    def get_deleted_objects(self, objs, request):
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed, protected = _refuse_deleting_named(
            objs, lambda g: workflows_naming(group=g.name), perms_needed, protected
        )
        return deleted, model_count, perms_needed, protected


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class WorkflowAwareUserAdmin(UserAdmin):
    """Shows which approval steps name the user, and refuses deleting one that is named."""

    readonly_fields = (*UserAdmin.readonly_fields, "named_in_workflows")
    fieldsets = (*UserAdmin.fieldsets, ("Workflows", {"fields": ("named_in_workflows",)}))

    @admin.display(description="approval steps naming this user")
    def named_in_workflows(self, obj):
        return _references_html(workflows_naming(username=obj.get_username(), published_only=False))

    def get_deleted_objects(self, objs, request):
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed, protected = _refuse_deleting_named(
            objs,
            lambda u: workflows_naming(username=u.get_username()),
            perms_needed,
            protected,
        )
        return deleted, model_count, perms_needed, protected
