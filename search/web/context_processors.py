from django.core.cache import cache

from search.history import recent_suggestions
from search.vision.registry import weights_missing

# How long pages may show a stale answer to "are the weights in place?" (a file check, cached).
WEIGHTS_CHECK_SECONDS = 60


def models(request) -> dict:
    """For staff: what the configured models lack and how to fix it (paths, commands)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_staff:
        return {}
    return {
        "weights_missing": list(cache.get_or_set("weights_missing", weights_missing, WEIGHTS_CHECK_SECONDS).values())
    }


def suggestions(request) -> dict:
    """The words of the person's recent searches, offered by the header search box."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"recent_suggestions": recent_suggestions(user)}
