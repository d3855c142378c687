"""Admin: secrets are written here and never shown again; the list says which are set."""

from django import forms
from django.contrib import admin
from django.utils import timezone

from .models import Secret
from .store import ENV_PREFIX, environment_names


class SecretForm(forms.ModelForm):
    """The value is a write-only field: empty on every page, empty on save keeps the old one."""

    new_value = forms.CharField(
        label="Value",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only: it is never shown again. Leave empty to keep the stored value.",
    )

    class Meta:
        model = Secret
        fields = ["name"]

    def clean_new_value(self):
        value = self.cleaned_data["new_value"]
        if not value and not self.instance.pk:
            raise forms.ValidationError("A new secret needs a value.")
        if "\x00" in value:
            raise forms.ValidationError("NUL characters cannot be stored.")
        return value

    def save(self, commit=True):
        if self.cleaned_data.get("new_value"):
            self.instance.value = self.cleaned_data["new_value"]
            self.instance.updated_at = timezone.now()
        return super().save(commit)


@admin.register(Secret)
class SecretAdmin(admin.ModelAdmin):
    form = SecretForm
    list_display = ["name", "state", "also_in_environment", "updated_at", "updated_by"]
    search_fields = ["name"]  # never the value
    change_list_template = "admin/secrets/secret/change_list.html"

    @admin.display(description="value")
    def state(self, obj):
        return "set" if obj.value else "not set"

    @admin.display(description=f"also {ENV_PREFIX}<NAME>", boolean=True)
    def also_in_environment(self, obj):
        return obj.name in environment_names()

    def get_fields(self, request, obj=None):
        if obj is not None and not self.has_change_permission(request, obj):
            return ["name", "state", "updated_at", "updated_by"]  # view only: never the value
        return ["name", "new_value"]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and not self.has_change_permission(request, obj):
            return ["name", "state", "updated_at", "updated_by"]
        # A document refers to a secret by its name: renaming would break it silently.
        return ["name"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        if form.cleaned_data.get("new_value"):
            obj.updated_by = request.user
        super().save_model(request, obj, form, change)

    def changelist_view(self, request, extra_context=None):
        extra = {"environment_names": sorted(environment_names()), "env_prefix": ENV_PREFIX}
        return super().changelist_view(request, {**extra, **(extra_context or {})})
