"""Admin: admins register webhook subscriptions and read the delivery log."""

from django import forms
from django.contrib import admin

from . import registry, services
from .models import Delivery, Subscription


class SubscriptionForm(forms.ModelForm):
    # A callable: the types are registered by the apps' ready(), after this module is imported.
    event_types = forms.MultipleChoiceField(
        choices=registry.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = Subscription
        fields = ["url", "secret", "event_types", "headers", "description", "active"]
        widgets = {"secret": forms.PasswordInput(render_value=True)}
        help_texts = {
            "secret": "Receivers check X-Sagaflow-Signature: sha256=HMAC-SHA256(secret, body).",
            "headers": 'Extra headers as JSON, e.g. {"Authorization": "Bearer {{ secrets.HOOK_TOKEN }}"}; '
            "values may use only {{ secrets.NAME }} (set in Secrets), resolved at each send.",
        }


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    form = SubscriptionForm
    list_display = ["url", "event_list", "active", "created_at"]
    list_filter = ["active"]
    search_fields = ["url", "description"]

    @admin.display(description="events")
    def event_list(self, obj):
        return ", ".join(obj.event_types or [])


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "event_type",
        "subscription",
        "status",
        "attempts",
        "last_status_code",
        "last_error_short",
        "delivered_at",
    ]
    list_filter = ["status", "event_type"]
    search_fields = ["id", "subscription__url", "last_error"]
    list_select_related = ["subscription"]
    date_hierarchy = "created_at"
    actions = ["deliver_again"]
    readonly_fields = [
        "id",
        "subscription",
        "event_type",
        "payload",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "next_attempt_at",
        "locked_until",
        "created_at",
        "delivered_at",
    ]

    def has_add_permission(self, request):
        return False  # deliveries come from events, never by hand

    @admin.display(description="last error")
    def last_error_short(self, obj):
        return obj.last_error[:80]

    @admin.action(description="Deliver again (a fresh round of attempts)")
    def deliver_again(self, request, queryset):
        count = services.redeliver(list(queryset))
        self.message_user(request, f"{count} deliveries queued again.")
