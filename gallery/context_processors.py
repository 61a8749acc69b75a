from django.conf import settings

from gallery.work_queue import workers_alive


def site(request) -> dict:
    context = {
        "allow_signup": settings.ALLOW_SIGNUP,
        "map_tile_url": settings.MAP_TILE_URL,
        "map_attribution": settings.MAP_ATTRIBUTION,
    }
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        # Staff learn at a glance why uploads are not moving.
        context["no_worker"] = not workers_alive()
    return context
