"""The saga list's filters (until the API's SagaFilter in sagas/filters.py serves both)."""

import uuid
from datetime import timedelta

import django_filters
from django import forms
from django.db.models import Q
from django.utils import timezone

from sagas.models import Saga
from sagas.states import SagaState

SINCE = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
}


class SagaFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        method="filter_search",
        label="Search",
        widget=forms.TextInput(attrs={"placeholder": "saga id, correlation id or idempotency key"}),
    )
    state = django_filters.ChoiceFilter(choices=SagaState.choices, empty_label="any state")
    workflow = django_filters.CharFilter(label="Workflow")
    needs_attention = django_filters.BooleanFilter(
        label="Needs attention",
        widget=forms.Select(choices=[("", "either"), ("true", "yes"), ("false", "no")]),
    )
    since = django_filters.ChoiceFilter(
        label="Started",
        method="filter_since",
        choices=[
            ("15m", "last 15 minutes"),
            ("1h", "last hour"),
            ("24h", "last 24 hours"),
            ("7d", "last 7 days"),
        ],
        empty_label="any time",
    )

    class Meta:
        model = Saga
        fields = ["q", "state", "workflow", "needs_attention", "since"]

    def filter_search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        match = Q(correlation_id=value) | Q(idempotency_key=value)
        try:
            match |= Q(id=uuid.UUID(value))
        except ValueError:
            pass
        return queryset.filter(match)

    def filter_since(self, queryset, name, value):
        return queryset.filter(created_at__gte=timezone.now() - SINCE[value])
