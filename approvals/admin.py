"""Django admin: approval requests and decisions, read-only (decisions go through services)."""

from django.contrib import admin

from .models import ApprovalRequest, Decision


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
    fields = ["user", "decision", "comment", "at"]
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
