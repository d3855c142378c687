"""Keyset pagination: newest first by (created_at, id); the cursor is the last row's key."""

import base64
import binascii
import datetime
import json

from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils.dateparse import parse_datetime
from rest_framework import exceptions
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param


def strict_page_size(paginator, request):
    """The requested page size, the default when absent; anything else is a 400, not ignored."""
    raw = request.query_params.get(paginator.page_size_query_param)
    if raw in (None, ""):
        return paginator.page_size
    try:
        size = int(raw)
    except ValueError:
        size = 0
    if not 1 <= size <= paginator.max_page_size:
        raise exceptions.ValidationError(
            {
                paginator.page_size_query_param: [
                    f"a whole number from 1 to {paginator.max_page_size}"
                ]
            }
        )
    return size


class KeysetPagination(BasePagination):
    """Pages of `page_size` rows ordered by -created_at, -id; `next` is null on the last page.

    A cursor encodes the (created_at, id) of the last row shown, so a page is
    one index range scan however deep, and rows inserted meanwhile never shift it.
    """

    cursor_query_param = "cursor"
    page_size_query_param = "page_size"
    page_size = 50
    max_page_size = 200

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        size = self._page_size(request)
        after = self._decode(request.query_params.get(self.cursor_query_param), queryset.model)
        queryset = queryset.order_by("-created_at", "-id")
        if after is not None:
            at, pk = after
            queryset = queryset.filter(Q(created_at__lt=at) | Q(created_at=at, id__lt=pk))
        rows = list(queryset[: size + 1])
        self.has_next = len(rows) > size
        rows = rows[:size]
        self.last = rows[-1] if rows else None
        return rows

    def _page_size(self, request):
        return strict_page_size(self, request)

    def _decode(self, cursor, model):
        if cursor in (None, ""):
            return None
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            at, pk = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
            when = parse_datetime(at)
            if when is None or when.tzinfo is None or not isinstance(pk, str):
                raise ValueError(at)
            return when.astimezone(datetime.UTC), model._meta.pk.to_python(pk)
        except (
            ValueError,
            TypeError,
            OverflowError,
            binascii.Error,
            UnicodeError,
            ValidationError,
        ):
            raise exceptions.ValidationError(
                {self.cursor_query_param: ["not a cursor this API returned"]}
            ) from None

    def _encode(self, row):
        raw = json.dumps([row.created_at.isoformat(), str(row.pk)]).encode()
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    def get_next_link(self):
        if not self.has_next or self.last is None:
            return None
        url = self.request.build_absolute_uri()
        return replace_query_param(url, self.cursor_query_param, self._encode(self.last))

    def get_paginated_response(self, data):
        return Response({"next": self.get_next_link(), "results": data})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["next", "results"],
            "properties": {
                "next": {"type": "string", "format": "uri", "nullable": True},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "The `next` link's cursor: where the previous page ended.",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"Rows per page, 1 to {self.max_page_size} (default {self.page_size}).",
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_page_size},
            },
        ]
