"""Forms of the dashboard: reasons for operator actions, bulk actions, the start form,
and the approver's: comments, reassigning, being away."""

import json
import uuid

from django import forms
from django.utils import timezone

from sagas import documents

BULK_LIMIT = 100


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Recorded in the saga's timeline with your name.",
    )


class BulkActionForm(forms.Form):
    action = forms.ChoiceField(choices=[("retry", "Retry"), ("cancel", "Cancel")])
    reason = forms.CharField(
        max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, data=None, **kwargs):
        super().__init__(data, **kwargs)
        self.saga_ids = []
        if data is not None:
            for value in data.getlist("saga"):
                try:
                    pk = uuid.UUID(value)
                except ValueError:
                    self.saga_errors = f"{value!r} is not a saga id"
                    continue
                if pk not in self.saga_ids:  # a saga chosen twice is acted on once
                    self.saga_ids.append(pk)

    def clean(self):
        cleaned = super().clean()
        if getattr(self, "saga_errors", None):
            raise forms.ValidationError(self.saga_errors)
        if not self.saga_ids:
            raise forms.ValidationError("Select at least one saga.")
        if len(self.saga_ids) > BULK_LIMIT:
            raise forms.ValidationError(f"Select at most {BULK_LIMIT} sagas at a time.")
        if (
            cleaned.get("action") == "cancel"
            and cleaned.get("confirm")
            and not (cleaned.get("reason") or "").strip()
        ):
            self.add_error("reason", "A reason is required to cancel.")
        return cleaned


def _example(schema):
    """A starting point for the input, from the workflow's input_schema."""
    if not isinstance(schema, dict):
        return {}
    example = {}
    properties = schema.get("properties") or {}
    for name in schema.get("required") or []:
        kind = (properties.get(name) or {}).get("type")
        example[name] = {
            "string": "",
            "number": 0,
            "integer": 0,
            "boolean": False,
            "array": [],
            "object": {},
        }.get(kind, "")
    return example


class StartSagaForm(forms.Form):
    input = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "class": "mono"}),
        help_text="A JSON object, checked against the workflow's input schema.",
    )
    correlation_id = forms.CharField(
        max_length=200,
        required=False,
        help_text="Events from other services find the saga by this.",
    )
    idempotency_key = forms.CharField(
        max_length=200,
        required=False,
        help_text="Starting again with the same key returns the same saga instead of a second one.",
    )

    def __init__(self, *args, schema=None, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("input", json.dumps(_example(schema), indent=2))
        self.input_errors = {}

    def clean_input(self):
        text = self.cleaned_data["input"]
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None
        except RecursionError:
            raise forms.ValidationError("Not valid JSON: it is nested too deeply.") from None
        if not isinstance(value, dict):
            raise forms.ValidationError('The input must be a JSON object, like {"order_id": "42"}.')
        try:
            documents.check_depth(value, root="input")
        except documents.DocumentLimit as exc:
            raise forms.ValidationError(f"{exc.where}: {exc.message}.") from None
        return value

    def add_input_errors(self, fields):
        """Errors by path inside the input (from the workflow's input_schema)."""
        self.input_errors = fields
        self.add_error("input", "The input does not match the workflow's input schema (see below).")


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    comment = forms.CharField(
        max_length=4000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required when you reject.",
    )


class CommentForm(forms.Form):
    text = forms.CharField(max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))


def _names(value):
    return [name.strip() for name in (value or "").replace(";", ",").split(",") if name.strip()]


class ReassignForm(forms.Form):
    to_users = forms.CharField(
        required=False, help_text="User names, separated by commas.", label="To users"
    )
    to_groups = forms.CharField(
        required=False, help_text="Group names, separated by commas.", label="To groups"
    )
    reason = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Recorded in the saga's timeline with your name.",
    )

    def clean_to_users(self):
        return _names(self.cleaned_data["to_users"])

    def clean_to_groups(self):
        return _names(self.cleaned_data["to_groups"])


class AwayForm(forms.Form):
    starts_on = forms.DateField(label="Away from", widget=forms.DateInput(attrs={"type": "date"}))
    ends_on = forms.DateField(
        label="Until (the last day away)",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Leave empty while you do not know.",
    )
    delegate = forms.CharField(
        required=False,
        max_length=150,
        label="Delegate",
        help_text="The user name of a colleague who may decide requests that name you.",
    )
    note = forms.CharField(required=False, max_length=500, label="Note")

    def __init__(self, data=None, *, setting=None, **kwargs):
        super().__init__(data, **kwargs)
        if setting is not None and data is None:
            last = setting.ends_at and timezone.localtime(setting.ends_at)
            self.initial = {
                "starts_on": timezone.localtime(setting.starts_at).date(),
                "ends_on": last and (last.date().fromordinal(last.date().toordinal() - 1)),
                "delegate": setting.delegate.get_username() if setting.delegate else "",
                "note": setting.note,
            }

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("starts_on"), cleaned.get("ends_on")
        if start and end and end < start:
            self.add_error("ends_on", "The last day cannot be before the first.")
        return cleaned
