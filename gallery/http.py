"""Small helpers the gallery's form views share."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme

from imgsearch.params import param_ids


def posted_ids(request: HttpRequest) -> list[int]:
    """The image ids a form posted (checkboxes named image_ids); BadParameter for anything else."""
    return param_ids(request.POST.getlist("image_ids"), name="image_ids")


def redirect_back(request: HttpRequest, fallback: str) -> HttpResponse:
    """Back where the form was (`next`: a grid, the viewer) if that is on this site, else `fallback`."""
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return redirect(target)
    return redirect(fallback)
