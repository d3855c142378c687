"""Project-wide access guards: login attempt limits (django-axes) and a log of refused requests."""

import logging

from axes.backends import AxesStandaloneBackend

log = logging.getLogger("sagaflow.security")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE")


class LoginAttemptsBackend(AxesStandaloneBackend):
    """django-axes' lockout check for every sign-in that comes with a request.

    The login page, the admin's login and DRF's basic auth pass the request,
    so they are limited. A call without one never comes from the network
    (a management command, the test client's `login()`): nothing to limit.
    """

    def authenticate(self, request=None, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class DeniedRequestLogMiddleware:
    """Logs every refused request with who asked for what.

    Refused: 401, 403, axes' 429 lockout, and a 404 answering a write (the API
    answers 404 for what the caller may not see, so that a refusal does not
    tell them it exists; as an attempt to change something it is still logged).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        status = response.status_code
        if status in (401, 403, 429) or (status == 404 and request.method not in SAFE_METHODS):
            user = getattr(request, "user", None)
            who = user.get_username() if getattr(user, "is_authenticated", False) else "anonymous"
            log.warning(
                "access denied: %s %s %s for %s from %s",
                response.status_code,
                request.method,
                request.get_full_path()[:300],
                who,
                request.META.get("REMOTE_ADDR", "?"),
                extra={"status": response.status_code, "user": who, "path": request.path},
            )
        return response
