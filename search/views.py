"""The search page: text, an image, "more like this", or a box on a photo."""
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from gallery.selectors import albums_owned_by
from search.forms import SearchForm
from search.query import (
    BoxQuery,
    ComposedQuery,
    ImageQuery,
    Query,
    RegionQuery,
    SearchError,
    SearchUnavailable,
    SimilarQuery,
    Term,
    TextQuery,
    query_from,
    search,
)


# The photo searched with is shown above the results, this many pixels on its longest side.
QUERY_PREVIEW_PX = 240


def _query_preview(query: Query | ComposedQuery, data: bytes | None, user) -> dict:
    """What the results page shows of the query: the source photo (with the searched region boxed),
    or for an uploaded photo, a small copy inline (uploads are never stored)."""
    from gallery.models import Region
    from gallery.selectors import images_visible_to

    if isinstance(query, ComposedQuery):
        photos = [term.query for term in query.positive if not isinstance(term.query, TextQuery)]
        return _query_preview(photos[0], data, user) if photos else {}
    if isinstance(query, ImageQuery) and data:
        return {"data_uri": _thumbnail_data_uri(data)}
    if isinstance(query, SimilarQuery):
        return {"image": images_visible_to(user).filter(pk=query.image_id).first()}
    if isinstance(query, BoxQuery):
        return {"image": images_visible_to(user).filter(pk=query.image_id).first(),
                "box": [int(round(float(v))) for v in query.box]}
    if isinstance(query, RegionQuery):
        region = Region.objects.filter(pk=query.region_id, image__in=images_visible_to(user)).select_related("image").first()
        return {"image": region.image, "box": region.box} if region else {}
    return {}


def _thumbnail_data_uri(data: bytes) -> str:
    import base64
    import io

    from PIL import Image as PILImage
    from PIL import ImageOps

    from gallery.imaging import to_rgb

    with PILImage.open(io.BytesIO(data)) as picture:
        picture.seek(0)
        rgb = to_rgb(ImageOps.exif_transpose(picture))
    rgb.thumbnail((QUERY_PREVIEW_PX, QUERY_PREVIEW_PX))
    buffer = io.BytesIO()
    rgb.save(buffer, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _describe(query: Query | ComposedQuery, files) -> str:
    """What was searched for, in words for the results heading."""
    if isinstance(query, ComposedQuery):
        found = " + ".join(_describe_term(term, files) for term in query.positive)
        return " − ".join([found] + [_describe_term(term, files) for term in query.negative])
    return _describe_term(Term(query), files)


def _describe_term(term: Term, files) -> str:
    query = term.query
    if isinstance(query, ImageQuery):
        words = f"photos like “{files['image'].name}”"
    elif isinstance(query, SimilarQuery):
        words = "more like this photo"
    elif isinstance(query, RegionQuery):
        words = "this object"
    elif isinstance(query, BoxQuery):
        words = "the region you drew"
    else:
        words = f"“{query.text}”"
    return words if term.weight == 1 else f"{words} (weight {term.weight:g})"


@login_required
def search_page(request: HttpRequest) -> HttpResponse:
    bound = request.method == "POST" or any(key in request.GET for key in ("q", "similar", "region", "box"))
    form = (SearchForm(request.POST if request.method == "POST" else request.GET, request.FILES or None, user=request.user)
            if bound else SearchForm(user=request.user))
    context = {"form": form, "results": None, "error": None, "description": ""}
    status = 200
    if bound and form.is_valid():
        data = form.cleaned_data
        try:
            page = int(request.GET.get("page", "1"))
        except ValueError:
            page = 1
        try:
            photos = [request.FILES.get("image"), data.get("similar"), data.get("box_image"), data.get("region")]
            if not data.get("q") and not any(photos):
                raise SearchError("Type a few words, choose a photo, or use “more like this” on an image.")
            if sum(1 for thing in photos if thing) > 1 or (data.get("box") and not data.get("box_image")):
                raise SearchError("Search with one photo at a time: a photo, more like this, or a box on a photo.")
            uploaded = request.FILES["image"].read() if request.FILES.get("image") else None
            query = query_from(text=data.get("q"), image=uploaded, image_id=data.get("similar") or data.get("box_image"),
                               region_id=data.get("region"), box=data.get("box"),
                               image_weight=data.get("image_weight") or 1.0,
                               exclude_weight=data.get("exclude_weight") or 1.0)
            context["description"] = _describe(query, request.FILES)
            context["results"] = search(
                user=request.user, query=query, scope=data["scope"] or "all", kind=data["kind"] or "both",
                page=max(1, page), filters=form.filters(),
            )
            context["query_preview"] = _query_preview(query, uploaded, request.user)
            context["my_albums"] = albums_owned_by(request.user).order_by("name")  # for the selection bar
        except SearchUnavailable as error:
            context["error"] = str(error)
            context["error_fix"] = error.fix if request.user.is_staff else ""
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


@login_required
def duplicates_page(request: HttpRequest) -> HttpResponse:
    """The person's near-duplicate groups, side by side, all but the best of each selected to delete."""
    from search.duplicates import duplicate_groups

    return render(request, "search/duplicates.html", {"groups": duplicate_groups(request.user),
                                                      "my_albums": albums_owned_by(request.user).order_by("name")})
