"""The search page: text, an image, "more like this", or a box on a photo."""
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from search.forms import SearchForm
from search.query import (
    BoxQuery,
    ImageQuery,
    RegionQuery,
    SearchError,
    SearchUnavailable,
    SimilarQuery,
    TextQuery,
    search,
)


def _query_from(data: dict, files) -> tuple[object | None, str]:
    """The query the form describes and a short description of it, or (None, "") when empty."""
    if files.get("image"):
        return ImageQuery(data=files["image"].read()), f"photos like “{files['image'].name}”"
    if data.get("similar"):
        return SimilarQuery(image_id=data["similar"]), "more like this photo"
    if data.get("region"):
        return RegionQuery(region_id=data["region"]), "this object"
    if data.get("box_image") and data.get("box"):
        box = tuple(part.strip() for part in data["box"].split(","))
        return BoxQuery(image_id=data["box_image"], box=box), "the region you drew"
    if data.get("q"):
        return TextQuery(text=data["q"]), f"“{data['q']}”"
    return None, ""


@login_required
def search_page(request: HttpRequest) -> HttpResponse:
    bound = request.method == "POST" or any(key in request.GET for key in ("q", "similar", "region", "box"))
    form = SearchForm(request.POST if request.method == "POST" else request.GET, request.FILES or None) if bound else SearchForm()
    context = {"form": form, "results": None, "error": None, "description": ""}
    status = 200
    if bound and form.is_valid():
        query, description = _query_from(form.cleaned_data, request.FILES)
        context["description"] = description
        if query is None:
            context["error"] = "Type a few words, choose a photo, or use “more like this” on an image."
            status = 400
        else:
            try:
                page = int(request.GET.get("page", "1"))
            except ValueError:
                page = 1
            try:
                context["results"] = search(
                    user=request.user, query=query, scope=form.cleaned_data["scope"] or "all",
                    kind=form.cleaned_data["kind"] or "both", page=max(1, page),
                )
            except SearchUnavailable as error:
                context["error"] = str(error)
                status = 503
            except SearchError as error:
                context["error"] = str(error)
                status = 400
        # Uploaded query images are not kept, so only GET searches can link to their next page.
        params = request.GET.copy()
        params.pop("page", None)
        context["query_string"] = params.urlencode() if request.method == "GET" else ""
    elif bound:
        context["error"] = "Check the search form: " + "; ".join(
            f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()
        )
        status = 400
    return render(request, "search/search.html", context, status=status)
