"""What every dashboard page shares: the refusal page, the sign-in and operator checks."""

from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render, resolve_url
from django_htmx.middleware import HtmxDetails

from sagas.filters import is_operator


class HtmxHttpRequest(HttpRequest):
    """A request that went through django-htmx's middleware."""

    htmx: HtmxDetails


TITLES = {400: "Not accepted", 403: "Not allowed", 404: "Not found", 409: "Not possible now"}


def problem(request: HtmxHttpRequest, message: str, *, status: int) -> HttpResponse:
    """Say why a request was refused; an HTMX request gets it in the page's problem area."""
    context = {"message": message, "status": status, "title": TITLES.get(status, "Error")}
    if request.htmx:
        response = render(request, "dashboard/problem.html#problem", context, status=status)
        response["HX-Retarget"] = "#problems"
        response["HX-Reswap"] = "innerHTML"
        return response
    return render(request, "dashboard/problem.html", context, status=status)


def wants_fragment(request: HtmxHttpRequest) -> bool:
    """An htmx swap wants the page's fragment; a history restore (Back button) wants the page."""
    return bool(request.htmx) and not request.htmx.history_restore_request


def signed_in(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            if request.htmx:
                # htmx would swap the login page into a fragment: send the browser there.
                login = f"{resolve_url(settings.LOGIN_URL)}?{urlencode({'next': request.htmx.current_url_abs_path or '/'})}"
                return HttpResponse(status=204, headers={"HX-Redirect": login})
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapper


def operators_only(view):
    @signed_in
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not is_operator(request.user):
            return problem(
                request,
                f"This is for operators. You are signed in as {request.user.get_username()}, "
                "who is not in the operators group; nothing was changed.",
                status=403,
            )
        return view(request, *args, **kwargs)

    return wrapper


def poll_seconds():
    return settings.DASHBOARD_POLL_SECONDS
