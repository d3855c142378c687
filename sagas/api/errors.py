"""One JSON shape for every API error: {"error": code, "detail": sentence, "fields": {path: [msgs]}}."""

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from sagas.definitions import DefinitionError
from sagas.engine import SagaError

from .serializers import ErrorSerializer

CODES = {
    400: "invalid",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    429: "throttled",
}


ERROR_TEXT = {
    400: "Invalid input: `fields` names each problem by path.",
    401: "No credentials, or wrong ones.",
    403: "The caller's role does not allow this; nothing was changed.",
    404: "No such object, or the caller may not see it.",
    409: "The object's state does not allow this; nothing was changed.",
}


def error_responses(*codes):
    """The OpenAPI responses of these error statuses, for `extend_schema(responses=...)`."""
    return {code: OpenApiResponse(ErrorSerializer, description=ERROR_TEXT[code]) for code in codes}


def error_body(code, detail, fields=None):
    return {"error": code, "detail": str(detail), "fields": fields or {}}


def flatten(errors, prefix=""):
    """DRF's nested error structure → {"input.amount": ["…"], "steps[0].name": ["…"]}."""
    flat = {}
    if isinstance(errors, dict):
        for key, value in errors.items():
            if key == "non_field_errors":
                path = prefix or "(body)"
            elif prefix:
                path = f"{prefix}[{key}]" if isinstance(key, int) else f"{prefix}.{key}"
            else:
                path = str(key)
            for sub, msgs in flatten(value, path).items():
                flat.setdefault(sub, []).extend(msgs)
    elif isinstance(errors, list):
        if all(not isinstance(item, (dict, list)) for item in errors):
            flat.setdefault(prefix or "(body)", []).extend(str(item) for item in errors)
        else:
            for i, item in enumerate(errors):
                if item:
                    for sub, msgs in flatten(item, f"{prefix}[{i}]").items():
                        flat.setdefault(sub, []).extend(msgs)
    else:
        flat.setdefault(prefix or "(body)", []).append(str(errors))
    return flat


def _summary(fields):
    paths = list(fields)
    if not paths:
        return "the request is not valid"
    first = paths[0]
    more = f" (and {len(paths) - 1} more)" if len(paths) > 1 else ""
    return f"{first}: {fields[first][0]}{more}"


def exception_handler(exc, context):
    """DRF's handler for our shape; also maps the engine's refusals and definition errors."""
    headers = {}
    if isinstance(exc, SagaError):
        set_rollback()
        fields = {
            k: list(v) if isinstance(v, (list, tuple)) else [str(v)] for k, v in exc.fields.items()
        }
        return Response(error_body(exc.code, exc.message, fields), status=exc.status)
    if isinstance(exc, DefinitionError):
        set_rollback()
        count = sum(len(m) for m in exc.errors.values())
        detail = f"the workflow document has {count} problem{'s' if count != 1 else ''}"
        return Response(error_body("invalid", detail, exc.errors), status=400)
    if isinstance(exc, RequestDataTooBig):
        # Django refuses to read a body over DATA_UPLOAD_MAX_MEMORY_SIZE; say so
        # in our shape instead of its HTML 400 page.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        detail = f"the request body is larger than the {limit} bytes allowed"
        return Response(error_body("too_large", detail), status=413)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a bug: let it surface as a 500 and be logged
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))
    set_rollback()
    code = CODES.get(exc.status_code, "error")
    if isinstance(exc, exceptions.ValidationError):
        fields = flatten(exc.detail)
        return Response(
            error_body("invalid", _summary(fields), fields),
            status=status.HTTP_400_BAD_REQUEST,
            headers=headers,
        )
    detail = exc.detail
    if isinstance(detail, (list, dict)):
        fields = flatten(detail)
        detail = _summary(fields)
    else:
        fields = {}
    return Response(error_body(code, detail, fields), status=exc.status_code, headers=headers)


@csrf_exempt  # a 404 changes nothing; without this a POST would get CSRF's HTML 403
def not_found(request, *args, **kwargs):
    """JSON 404 for any path under /api/ that names no endpoint."""
    return JsonResponse(error_body("not_found", f"no API endpoint at {request.path}"), status=404)
