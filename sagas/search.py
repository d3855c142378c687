"""Business search fields: a workflow's `search:` (validated at publish), stored at start, filtered.

A workflow names up to MAX_KEYS values of its input worth finding a saga by
(`search: {customer: input.customer_id, amount: input.amount}`). start_saga
writes them as SagaSearchValue rows (sagas/models/search.py), one per key, with the
saga's created_at copied so that the (key, value, created_at, saga) indexes
hand sagas out newest first. The saga list, the API and the inbox filter by
them with `?customer=ACME`, `?amount__gte=1000`, `?amount__lte=5000`; a
parameter that no workflow declares is a 400 that says which keys exist.
"""

import math
import re

from django.db.models import Exists, OuterRef, Q

from .models import SagaSearchValue, WorkflowDefinition

MAX_KEYS = 5
KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
PATH_RE = re.compile(r"^input(\.[A-Za-z0-9_-]{1,100}){1,8}$")
# Longer text is kept to its start: a search value is an identifier or a name,
# and an index entry must stay small.
MAX_TEXT = 200
RANGE_SUFFIXES = ("__gte", "__lte")


class SearchError(ValueError):
    """Search parameters this server cannot answer; `errors` maps each parameter to its messages."""

    def __init__(self, errors):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()))


# --- the document ----------------------------------------------------------------


def check_search(search, errors, *, path="search"):
    """Validate a document's `search:` mapping into `errors` (sagas.definitions.Errors)."""
    if not isinstance(search, dict):
        errors.add(
            path,
            "must be a mapping of search keys to input paths, like customer: input.customer_id",
        )
        return
    if len(search) > MAX_KEYS:
        errors.add(path, f"has {len(search)} keys; a workflow has at most {MAX_KEYS} search fields")
    for key, value in search.items():
        where = f"{path}.{key}"
        if not isinstance(key, str) or not KEY_RE.match(key):
            errors.add(
                where,
                "a search key is lower-case letters, digits and _ (starting with a letter), "
                "at most 40 characters",
            )
        elif key in RESERVED or key.endswith(RANGE_SUFFIXES):
            errors.add(where, f"{key!r} is taken by the list's own filters; choose another name")
        if not isinstance(value, str) or not PATH_RE.match(value):
            errors.add(where, "must be a path into the input, like input.customer_id")


# --- at start ---------------------------------------------------------------------


def lookup_input(data, path):
    value = data
    for part in path.split(".")[1:]:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def values_for(spec, data):
    """The search values of a saga started with `data` under `spec`: [(key, text, number)].

    Strings are kept as text, numbers as numbers; anything else (absent, null,
    true/false, lists, objects) is not searchable and is left out.
    """
    rows = []
    for key, path in (spec.get("search") or {}).items():
        value = lookup_input(data, path)
        if isinstance(value, bool):
            continue
        if isinstance(value, str) and value.strip():
            rows.append((key, value.strip()[:MAX_TEXT], None))
        elif isinstance(value, (int, float)) and math.isfinite(value):
            rows.append((key, None, float(value)))
    return rows


def store_values(saga, spec):
    """Write the saga's search values (in start_saga's transaction)."""
    SagaSearchValue.objects.bulk_create(
        [
            SagaSearchValue(
                saga=saga, key=key, text=text, number=number, created_at=saga.created_at
            )
            for key, text, number in values_for(spec, saga.input)
        ]
    )


# --- filtering ----------------------------------------------------------------------

# Parameters of the lists that are not filters of the FilterSet: never search keys.
# The filters' own names are listed too, so that no search key can shadow one.
RESERVED = frozenset(
    {
        "cursor",
        "page_size",
        "after",
        "format",
        "tab",
        "search",
        "state",
        "workflow",
        "needs_attention",
        "correlation_id",
        "created_after",
        "created_before",
        "status",
        "decidable",
    }
)


def declared_keys(workflow=None):
    """The search keys declared by any version of any workflow (or of `workflow`), sorted."""
    definitions = WorkflowDefinition.objects.all()
    if workflow:
        definitions = definitions.filter(name=workflow)
    keys = set()
    for search in definitions.values_list("spec__search", flat=True):
        if isinstance(search, dict):
            keys.update(search)
    return sorted(keys)


def parse_terms(params, *, ignore=()):
    """The search terms in query `params` (a QueryDict): [(key, op, text, number)].

    Raises SearchError naming each parameter that is not a filter, a key no
    workflow declares, or a bound that is not a number. `ignore` are the
    parameters the caller's FilterSet and pagination read themselves.
    """
    candidates = [name for name in params if name not in ignore and name not in RESERVED]
    if not candidates:
        return []
    known = set(declared_keys())
    terms, errors = [], {}
    for name in candidates:
        raw = params.get(name)
        if raw in (None, ""):
            continue  # an empty field of the form: no filter
        key, op = name, "eq"
        for suffix in RANGE_SUFFIXES:
            if name.endswith(suffix):
                key, op = name[: -len(suffix)], suffix[2:]
        if key not in known:
            listed = ", ".join(sorted(known)) or "none (no workflow declares search fields)"
            errors[name] = [f"unknown filter {name!r}; the search fields are: {listed}"]
            continue
        text = raw.strip()
        if len(text) > MAX_TEXT:
            errors[name] = [f"{name} is at most {MAX_TEXT} characters"]
            continue
        if "\x00" in text:  # PostgreSQL cannot compare text holding NUL: a 400, not a 500
            errors[name] = [f"{name} holds a NUL character"]
            continue
        number = _number(text)
        if op != "eq" and number is None:
            errors[name] = [f"{name} must be a number, like {key}__{op}=1000"]
            continue
        terms.append((key, op, text, number))
    if errors:
        raise SearchError(errors)
    return terms


def _number(text):
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def term_condition(term, saga_ref="pk"):
    """An EXISTS over SagaSearchValue for one term, correlated to the saga at `saga_ref`.

    Equality matches the text, or the number when the text reads as one
    (`?amount=1000` finds an amount of 1000.0); each side uses its partial index.
    """
    key, op, text, number = term
    values = SagaSearchValue.objects.filter(saga_id=OuterRef(saga_ref), key=key)
    if op == "eq":
        match = Q(text=text)
        if number is not None:
            match |= Q(number=number)
        values = values.filter(match)
    else:
        values = values.filter(**{f"number__{op}": number})
    return Exists(values)


def filter_by_terms(queryset, terms, saga_ref="pk"):
    for term in terms:
        queryset = queryset.filter(term_condition(term, saga_ref))
    return queryset


def values_of(saga_ids):
    """{saga id: {key: value}} for the list's columns, in one query."""
    found = {}
    for saga_id, key, text, number in SagaSearchValue.objects.filter(
        saga_id__in=saga_ids
    ).values_list("saga_id", "key", "text", "number"):
        value = text if text is not None else number
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        found.setdefault(saga_id, {})[key] = value
    return found


def fields_of(workflow):
    """The search fields of `workflow`'s newest version: [(key, "number" | "text")], by key.

    A key is a number when the input_schema says its path holds a number or an
    integer; the list then offers a range (from, to) instead of one value.
    """
    definition = WorkflowDefinition.objects.filter(name=workflow).order_by("-version").first()
    return [] if definition is None else _fields(definition.spec)


def declared_fields():
    """The search fields of every workflow's newest version, by key (the inbox's form):
    a number where every workflow declaring the key says it is one."""
    kinds, seen = {}, set()
    for name, spec in WorkflowDefinition.objects.order_by("name", "-version").values_list(
        "name", "spec"
    ):
        if name in seen:
            continue
        seen.add(name)
        for key, kind in _fields(spec):
            kinds[key] = kind if kinds.get(key, kind) == kind else "text"
    return sorted(kinds.items())


def _fields(spec):
    schema = spec.get("input_schema") or {}
    fields = []
    # By name: the document's order is not kept (a JSONB column orders its keys).
    for key, path in sorted((spec.get("search") or {}).items()):
        node = schema
        for part in path.split(".")[1:]:
            node = (node.get("properties") or {}).get(part, {}) if isinstance(node, dict) else {}
        kind = node.get("type") if isinstance(node, dict) else None
        fields.append((key, "number" if kind in ("number", "integer") else "text"))
    return fields
