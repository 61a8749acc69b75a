"""The search page: text, an image, "more like this", or a box on a photo."""
import numpy as np
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from gallery.selectors import albums_owned_by
from search import history
from search.forms import SearchForm
from search.vision.identity import current_model
from search.models import RecentSearch, SavedSearch, kept
from search.query import (
    BoxQuery,
    ComposedQuery,
    ImageQuery,
    Query,
    RegionQuery,
    SearchError,
    SearchUnavailable,
    SimilarQuery,
    TextQuery,
    describe,
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


@login_required
def search_page(request: HttpRequest) -> HttpResponse:
    params = request.POST if request.method == "POST" else request.GET
    bound = request.method == "POST" or any(key in request.GET for key in ("q", "similar", "region", "box", "saved", "recent"))
    form = SearchForm(params, request.FILES or None, user=request.user) if bound else SearchForm(user=request.user)
    context = {"form": form, "results": None, "error": None, "description": ""}
    status = 200
    if not bound:
        context["recent_searches"] = RecentSearch.objects.filter(owner=request.user)[:10]
    if bound and form.is_valid():
        try:
            page = int(request.GET.get("page", "1"))
        except ValueError:
            page = 1
        try:
            # Opening a saved search, or a recent search by an uploaded photo (its vector was kept).
            saved = _own(SavedSearch, request.user, request.GET.get("saved"), "No such saved search.")
            recent = _own(RecentSearch, request.user, request.GET.get("recent"), "No such recent search.")
            stored = history.stored_query(saved or recent) if (saved or recent) else None
            uploaded = request.FILES["image"].read() if request.FILES.get("image") else None
            query = form.query(uploaded=uploaded, stored=stored)
            context["description"] = describe(query, image_name=request.FILES["image"].name if uploaded else "")
            results = search(user=request.user, query=query, page=max(1, page), **form.search_options())
            context["results"] = results
            context["query_preview"] = _query_preview(query, uploaded, request.user)
            context["my_albums"] = albums_owned_by(request.user).order_by("name")  # for the selection bar
            if saved is not None:
                context["saved"] = saved
                context["new_ids"] = history.new_image_ids(results, saved.last_viewed_at)
                if results.page == 1:
                    history.saved_viewed(saved)
            elif results.page == 1:
                photo_vector, model = results.photo_vector, current_model()[0]
                if stored is not None:
                    photo_vector, model = np.frombuffer(stored.vector, dtype=np.float32), stored.model
                context["recent"] = history.recent_record(
                    user=request.user, params=kept(params), description=context["description"],
                    photo_vector=photo_vector, model=model if photo_vector is not None else "")
        except SearchUnavailable as error:
            context["error"] = str(error)
            context["error_fix"] = error.fix if request.user.is_staff else ""
            status = 503
        except SearchError as error:
            context["error"] = str(error)
            status = 400
        # Uploaded query images are not kept, so only GET searches can link to their next page.
        query_params = request.GET.copy()
        query_params.pop("page", None)
        context["query_string"] = query_params.urlencode() if request.method == "GET" else ""
    elif bound:
        context["error"] = "Check the search form: " + "; ".join(
            f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()
        )
        status = 400
    return render(request, "search/search.html", context, status=status)


def _own(model, user, pk: str | None, missing: str):
    """The person's own record `pk` of `model`, None when none is asked for; SearchError for another's."""
    if pk in (None, ""):
        return None
    record = model.objects.filter(owner=user, pk=int(pk) if str(pk).isdigit() else -1).first()
    if record is None:
        raise SearchError(missing)
    return record


@login_required
@require_POST
def saved_create(request: HttpRequest) -> HttpResponse:
    """Save one of the person's recent searches (the page just shown) under a name."""
    recent = RecentSearch.objects.filter(owner=request.user, pk=request.POST.get("recent") or -1).first()
    if recent is None:
        messages.error(request, "That search is no longer in your recent searches; run it again, then save it.")
        return redirect("search:saved_list")
    try:
        saved = history.saved_create(user=request.user, recent=recent, name=request.POST.get("name", ""))
    except SearchError as error:
        messages.error(request, str(error))
        return redirect(recent.get_absolute_url())
    messages.success(request, f"Saved “{saved.name}”. New matches will be marked when you open it from Saved searches.")
    return redirect("search:saved_list")


@login_required
def saved_list(request: HttpRequest) -> HttpResponse:
    return render(request, "search/saved.html", {"saved": history.saved_with_new_counts(request.user)})


@login_required
@require_POST
def saved_delete(request: HttpRequest, pk: int) -> HttpResponse:
    saved = get_object_or_404(SavedSearch, owner=request.user, pk=pk)
    saved.delete()
    messages.success(request, f"Deleted the saved search “{saved.name}”.")
    return redirect("search:saved_list")


@login_required
@require_POST
def recent_clear(request: HttpRequest) -> HttpResponse:
    count = history.recent_clear(user=request.user)
    messages.success(request, f"Cleared {count} recent search{'es' if count != 1 else ''}.")
    return redirect("search:search")


@login_required
def duplicates_page(request: HttpRequest) -> HttpResponse:
    """The person's near-duplicate groups, side by side, all but the best of each selected to delete."""
    from search.duplicates import duplicate_groups, pixel_checks_waiting

    return render(request, "search/duplicates.html", {"groups": duplicate_groups(request.user),
                                                      "waiting": pixel_checks_waiting(request.user),
                                                      "my_albums": albums_owned_by(request.user).order_by("name")})
