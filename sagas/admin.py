"""The Django admin of sagas: records to read (operators act in the dashboard and the API).

The workflow admin is sagas/authoring/admin.py.
"""

from django.contrib import admin

from .models import Saga, SagaEvent, SagaStep


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class SagaStepInline(ReadOnlyInline):
    model = SagaStep
    fields = (
        "index",
        "name",
        "kind",
        "status",
        "attempt",
        "compensation_attempt",
        "executed_at",
        "compensated_at",
        "deadline",
        "error",
    )
    readonly_fields = fields


class SagaEventInline(ReadOnlyInline):
    model = SagaEvent
    fields = ("at", "kind", "step", "actor", "actor_label", "details")
    readonly_fields = fields


@admin.register(Saga)
class SagaAdmin(admin.ModelAdmin):
    """The operators' tools live in the dashboard; here sagas are records to read."""

    list_display = ("id", "workflow", "state", "current_step", "needs_attention", "created_at")
    list_filter = ("state", "needs_attention", "workflow")
    search_fields = ("=id", "correlation_id", "idempotency_key")
    date_hierarchy = "created_at"
    inlines = [SagaStepInline, SagaEventInline]
    readonly_fields = [f.name for f in Saga._meta.fields]
    list_select_related = ("definition",)
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
