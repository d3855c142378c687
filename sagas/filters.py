"""The saga FilterSet shared by the API and the dashboard (who sees which sagas: sagas/access.py)."""

import datetime
import uuid

import django_filters
from django import forms
from django.db.models import Q
from django.utils import timezone

from .models import Saga
from .states import SagaState


class StrictBooleanField(forms.NullBooleanField):
    """true/false (1/0, on/off) or absent; anything else is an error, not "no filter"."""

    # NullBooleanSelect would read an unknown value as "unknown" (no filter).
    widget = forms.TextInput

    def to_python(self, value):
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text in {"true", "1", "on"}:
            return True
        if text in {"false", "0", "off"}:
            return False
        raise forms.ValidationError("must be true or false", code="invalid")

    def validate(self, value):
        pass


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class UtcDateTimeField(django_filters.fields.IsoDateTimeField):
    """An ISO 8601 moment, turned into UTC: PostgreSQL refuses offsets beyond ±15:59."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        if timezone.is_naive(value):
            value = timezone.make_aware(value, datetime.UTC)
        try:
            return value.astimezone(datetime.UTC)
        except (OverflowError, ValueError):
            raise forms.ValidationError("out of range", code="invalid") from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


class SagaFilter(django_filters.FilterSet):
    """Filters of the saga list; `search` finds a saga by id, correlation id or idempotency key."""

    state = django_filters.ChoiceFilter(choices=SagaState.choices)
    workflow = django_filters.CharFilter(max_length=100)
    needs_attention = StrictBooleanFilter()
    correlation_id = django_filters.CharFilter(max_length=200)
    search = django_filters.CharFilter(method="filter_search", max_length=200, label="Search")
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Saga
        fields = [
            "state",
            "workflow",
            "needs_attention",
            "correlation_id",
            "search",
            "created_after",
            "created_before",
        ]

    def filter_search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        try:
            return queryset.filter(pk=uuid.UUID(value))
        except ValueError:
            pass
        # Exact matches use the partial indexes; a prefix of the correlation id
        # helps a person who pasted only its start.
        return queryset.filter(
            Q(correlation_id=value) | Q(idempotency_key=value) | Q(correlation_id__startswith=value)
        )
