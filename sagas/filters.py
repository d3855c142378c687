"""The saga FilterSet shared by the API and the dashboard (who sees which sagas: sagas/access.py)."""

import datetime
import uuid

import django_filters
from django import forms
from django.db.models import Q
from django.db.models.functions import Reverse
from django.utils import timezone

from . import search as search_fields
from .models import InboundEvent, Saga
from .states import FINISHED_SAGA_STATES, SagaState


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


class SearchFieldsForm(forms.Form):
    """A filter form that also reads the workflows' search fields (`?customer=ACME`, `?amount__gte=1`).

    Every parameter that is no filter of the FilterSet and not one the lists
    read themselves (sagas.search.RESERVED) becomes a field of this form, so a
    key no workflow declares, or a bound that is not a number, is an error
    under its own name (a 400 in the API, a message over the dashboard's list).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.search_names = []
        self.search_terms = []
        if self.is_bound:
            for name in self.data:
                if name not in self.fields and name not in search_fields.RESERVED:
                    self.fields[name] = forms.CharField(required=False, max_length=200)
                    self.search_names.append(name)

    def clean(self):
        cleaned = super().clean()
        # Taken out of cleaned_data: the FilterSet filters by each name there.
        wanted = {name: cleaned.pop(name) for name in self.search_names if name in cleaned}
        try:
            self.search_terms = search_fields.parse_terms(wanted)
        except search_fields.SearchError as exc:
            for name, messages in exc.errors.items():
                # The text may quote what was typed, `%` included: as a parameter, so
                # that neither Django nor django-filter (`message % params`) formats it.
                for message in [messages] if isinstance(messages, str) else messages:
                    self.add_error(
                        name, forms.ValidationError("%(m)s", code="invalid", params={"m": message})
                    )
        return cleaned


class SagaFilter(django_filters.FilterSet):
    """Filters of the saga list; `search` finds a saga by whatever the dashboard shows of it.

    That is its id or the first characters of it (the 8 the pages show), its
    correlation id (whole, its start, or its last part: `1005` or "Order 1005"
    find `order-1005`) and its idempotency key. `state=running` is every saga that
    has not finished.
    """

    RUNNING = "running"
    # A person pastes the number they read ("Order 1005"); the correlation id
    # that carries it ends with it after one of these.
    TAIL_SEPARATORS = "-_:/.# "
    MIN_ID_PREFIX = 4  # hex digits: below that a prefix matches too many sagas to help
    MIN_TAIL = 3

    state = django_filters.ChoiceFilter(
        choices=[*SagaState.choices, (RUNNING, "running (not finished)")], method="filter_state"
    )
    workflow = django_filters.CharFilter(max_length=100)
    needs_attention = StrictBooleanFilter()
    paused = StrictBooleanFilter()
    correlation_id = django_filters.CharFilter(max_length=200)
    search = django_filters.CharFilter(method="filter_search", max_length=200, label="Search")
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")
    # Child sagas (a `saga` step's) are listed with their parent's page, not on
    # their own, unless asked: include_children=true.
    include_children = StrictBooleanFilter(method="filter_children", label="Include child sagas")

    class Meta:
        model = Saga
        fields = [
            "state",
            "workflow",
            "needs_attention",
            "paused",
            "correlation_id",
            "search",
            "created_after",
            "created_before",
            "include_children",
        ]
        form = SearchFieldsForm

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        return search_fields.filter_by_terms(queryset, self.form.search_terms)

    @property
    def qs(self):
        queryset = super().qs
        if self.is_bound and self.form.is_valid() and self.form.cleaned_data["include_children"]:
            return queryset
        return queryset.filter(parent__isnull=True)

    def filter_children(self, queryset, name, value):
        return queryset  # applied in qs: hiding them is the default, not a filter value

    def filter_state(self, queryset, name, value):
        if value == self.RUNNING:
            # `IN` the unfinished states: the state index finds the few running
            # sagas without reading the many finished ones.
            return queryset.filter(
                state__in=[s for s in SagaState.values if s not in FINISHED_SAGA_STATES]
            )
        return queryset.filter(state=value)

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
        found = (
            Q(correlation_id=value) | Q(idempotency_key=value) | Q(correlation_id__startswith=value)
        )
        return queryset.alias(correlation_tail=Reverse("correlation_id")).filter(
            found | self._id_prefix(value) | self._correlation_tail(value)
        )

    @classmethod
    def _id_prefix(cls, value):
        """The sagas whose id starts with `value`: a range of the primary key, read by its index."""
        digits = value.replace("-", "").lower()
        if not (cls.MIN_ID_PREFIX <= len(digits) < 32) or set(digits) - set("0123456789abcdef"):
            return Q(pk__in=[])
        low = uuid.UUID(digits.ljust(32, "0"))
        high = uuid.UUID(digits.ljust(32, "f"))
        return Q(pk__gte=low, pk__lte=high)

    @classmethod
    def _correlation_tail(cls, value):
        """Correlation ids that end with `value` after a separator: `1005` finds `order-1005`.

        Of a text of several words (a title pasted whole, "Order 1005") the
        last word counts, and a leading "#" is dropped. On PostgreSQL the
        reversed correlation id has an index (migration sagas.0013), so
        `reverse(correlation_id) LIKE '5001%'` is a range scan and the
        separator check filters its few rows.
        """
        tail = value.split()[-1].lstrip(cls.TAIL_SEPARATORS)
        if len(tail) < cls.MIN_TAIL:
            return Q(pk__in=[])
        after_separator = Q()
        for separator in cls.TAIL_SEPARATORS:
            after_separator |= Q(correlation_id__endswith=separator + tail)
        return Q(correlation_tail__startswith=tail[::-1]) & after_separator


class InboundEventFilter(django_filters.FilterSet):
    """Filters of the Events page: the event type, the correlation id (whole or its start),
    and what became of it."""

    STATUSES = [
        ("kept", "kept (waiting for a wait)"),
        ("matched", "matched"),
        ("consumed", "taken by a wait later"),
        ("discarded", "discarded"),
        ("expired", "expired"),
    ]

    type = django_filters.CharFilter(max_length=200)
    correlation_id = django_filters.CharFilter(max_length=200, method="filter_correlation")
    status = django_filters.ChoiceFilter(choices=STATUSES, method="filter_status")

    class Meta:
        model = InboundEvent
        fields = ["type", "correlation_id", "status"]

    def filter_correlation(self, queryset, name, value):
        value = value.strip()
        return queryset.filter(correlation_id__startswith=value) if value else queryset

    def filter_status(self, queryset, name, value):
        now = timezone.now()
        open_ = Q(consumed_at__isnull=True, discarded_at__isnull=True, matched=0)
        return queryset.filter(
            {
                "kept": open_ & Q(keep_until__gt=now),
                "expired": open_ & Q(keep_until__lte=now),
                "matched": Q(matched__gt=0),
                "consumed": Q(consumed_at__isnull=False),
                "discarded": Q(discarded_at__isnull=False),
            }[value]
        )
