"""Pages in the signed-in person's time zone (their profile's; the server's until they choose).

The API is left alone: it answers ISO 8601 with the offset of the server's
zone whoever asks (README, API), so a client never parses a per-person zone.
"""

from django.utils import timezone

from approvals.profiles import time_zone_name, zone_named


class UserTimeZoneMiddleware:
    API_PREFIX = "/api/"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.time_zone_name = ""
        zone = None
        if not request.path.startswith(self.API_PREFIX):
            request.time_zone_name = time_zone_name(getattr(request, "user", None))
            zone = zone_named(request.time_zone_name)
        if zone is not None:
            timezone.activate(zone)
        else:
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
