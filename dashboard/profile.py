"""The profile page (/profile/): the person's own settings, one section each.

The time zone section is here; other sections (being away, issue 17) join
the same page. The browser reports its zone once, on the first page after
sign-in (static/js/sagaflow.js), until the person chooses one here.
"""

from django.contrib import messages
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from approvals import profiles
from sagas import engine

from .views import HtmxHttpRequest, signed_in


@require_http_methods(["GET", "POST"])
@signed_in
def profile(request: HtmxHttpRequest) -> HttpResponse:
    chosen = profiles.time_zone_name(request.user)
    error, status = "", 200
    if request.method == "POST":
        wanted = request.POST.get("time_zone", "")
        try:
            profiles.set_time_zone(user=request.user, name=wanted)
        except engine.InvalidInput as exc:
            error, status, chosen = exc.fields["time_zone"][0], 400, wanted
        else:
            messages.success(request, f"Dates are now shown in {wanted}.")
            return redirect("profile")
    context = {
        "chosen": chosen,
        "zones": sorted(profiles.known_zones()),
        "server_zone": timezone.get_default_timezone_name(),
        "error": error,
        "now": timezone.now(),
    }
    return render(request, "dashboard/profile.html", context, status=status)


@require_POST
@signed_in
def browser_time_zone(request: HtmxHttpRequest) -> HttpResponse:
    """The browser's zone, sent once after sign-in: taken only while none is chosen."""
    try:
        changed = profiles.set_time_zone(
            user=request.user, name=request.POST.get("time_zone", ""), only_if_unset=True
        )
    except engine.InvalidInput as exc:
        return JsonResponse({"error": exc.message}, status=400)
    return JsonResponse({"time_zone": profiles.time_zone_name(request.user), "changed": changed})
