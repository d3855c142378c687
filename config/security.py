"""Project-wide access guards: login attempt limits (django-axes) and a log of refused requests."""

import logging

from axes.backends import AxesStandaloneBackend

log = logging.getLogger("sagaflow.security")


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
    """Logs every refused request (401, 403, and axes' 429 lockout) with who asked for what."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code in (401, 403, 429):
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
