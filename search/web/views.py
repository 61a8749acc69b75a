"""The search page: text, an image, "more like this", or a box on a photo; saved and recent searches;
the near-duplicates page."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from gallery.selectors import albums_owned_by
from imgsearch.params import param_id, param_int, param_text
from search import history
from search.duplicates import duplicate_groups, pixel_checks_waiting
from search.errors import SearchError, SearchUnavailable
from search.models import RecentSearch, SavedSearch
from search.queries import ImageQuery
from search.query import MAX_PAGE
from search.vision.identity import current_model
from search.web.forms import SearchForm

# Parameters that make the search page run a search (without any, it shows the form and recent searches).
SEARCH_PARAMETERS = ("q", "similar", "region", "box", "saved", "recent")


@login_required
def search_page(request: HttpRequest) -> HttpResponse:
    params = request.POST if request.method == "POST" else request.GET
    bound = request.method == "POST" or any(key in request.GET for key in SEARCH_PARAMETERS)
    form = SearchForm(params, request.FILES or None, user=request.user) if bound else SearchForm(user=request.user)
    context = {"form": form, "results": None, "error": None, "description": ""}
    status = 200
    if not bound:
        context["recent_searches"] = RecentSearch.objects.filter(owner=request.user)[:10]
    if bound and form.is_valid():
        page = param_int(request.GET.get("page"), name="page", minimum=1, maximum=MAX_PAGE) or 1
        try:
            # Opening a saved search, or a recent search by an uploaded photo (its vector was kept).
            saved = _own(SavedSearch, request.user, request, "saved", "No such saved search.")
            recent = _own(RecentSearch, request.user, request, "recent", "No such recent search.")
            stored = history.stored_query(saved or recent) if (saved or recent) else None
            upload = request.FILES.get("image")
            uploaded = ImageQuery(data=upload.read(), name=upload.name) if upload else None
            search_request = form.search_request(uploaded=uploaded, stored=stored)
            context["description"] = search_request.query.describe()
            context["save_name"] = history.offered_name(context["description"])
            results = search_request.run(user=request.user, page=max(1, page))
            context["results"] = results
            context["query_preview"] = search_request.query.preview(request.user)
            context["my_albums"] = albums_owned_by(request.user).order_by("name")  # for the selection bar
            if saved is not None:
                context["saved"] = saved
                context["new_ids"] = history.new_image_ids(results, saved.last_viewed_at)
                if results.page == 1:
                    history.saved_viewed(saved)
            elif results.page == 1:
                context["recent"] = history.recent_record(
                    user=request.user,
                    params=search_request.to_params(),
                    description=context["description"],
                    photo_vector=results.photo_vector,
                    model=current_model()[0] if results.photo_vector is not None else "",
                )
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


def _own(model, user, request: HttpRequest, name: str, missing: str):
    """The person's own record of `model` that the parameter `name` names, None when none is asked for;
    SearchError for another's or none; BadParameter for a value that is no id."""
    pk = param_id(request.GET.get(name), name=name)
    if pk is None:
        return None
    record = model.objects.filter(owner=user, pk=pk).first()
    if record is None:
        raise SearchError(missing)
    return record


@login_required
@require_POST
def saved_create(request: HttpRequest) -> HttpResponse:
    """Save one of the person's recent searches (the page just shown) under a name."""
    recent = RecentSearch.objects.filter(
        owner=request.user, pk=param_id(request.POST.get("recent"), name="recent")
    ).first()
    if recent is None:
        messages.error(request, "That search is no longer in your recent searches; run it again, then save it.")
        return redirect("search:saved_list")
    try:
        saved = history.saved_create(
            user=request.user, recent=recent, name=param_text(request.POST.get("name"), name="name")
        )
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
    return render(
        request,
        "search/duplicates.html",
        {
            "groups": duplicate_groups(request.user),
            "waiting": pixel_checks_waiting(request.user),
            "my_albums": albums_owned_by(request.user).order_by("name"),
        },
    )
