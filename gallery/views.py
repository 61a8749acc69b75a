"""Server-rendered gallery pages. Thin: querysets come from selectors, changes from services."""

from datetime import UTC, datetime, timedelta
from itertools import groupby
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import TooManyFilesSent
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from gallery import album_views, albums, media, places, selectors, services, tags, tokens, work_queue
from gallery.formats import ACCEPT_ATTRIBUTE
from gallery.forms import ImageFilterForm, SignupForm, TokenForm
from gallery.http import posted_ids, redirect_back
from gallery.jobs import jobs_summary, recent_failures
from gallery.models import Image, Region
from gallery.viewer import viewer_context
from imgsearch.params import BadParameter, param_ids
from imgsearch.proxies import client_address

PAGE_SIZE = 24
# Explore shows this many places and things (tags), those with most photos first.
EXPLORE_PLACES = 8
EXPLORE_THINGS = 16


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("gallery:my_images")
    return render(request, "home.html")


def signup(request: HttpRequest) -> HttpResponse:
    if not settings.ALLOW_SIGNUP:
        return render(request, "registration/signup_closed.html", status=403)
    if request.user.is_authenticated:
        return redirect("gallery:my_images")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and not _signup_allowed_from(request):
        return render(request, "registration/signup.html", {"form": form, "error": signup_rate_message()}, status=429)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome, {user.username}! Upload a few photos to get started.")
        return redirect("gallery:upload")
    return render(request, "registration/signup.html", {"form": form})


def password_reset_done(request: HttpRequest) -> HttpResponse:
    """After "Forgot your password?": where the link went. Without a mail server (EMAIL_HOST unset)
    the console backend writes it to the log, and "we've emailed you" would be untrue."""
    backend = settings.EMAIL_BACKEND
    sends_no_mail = backend.endswith("console.EmailBackend") or (
        backend.endswith("smtp.EmailBackend") and not settings.EMAIL_HOST
    )
    return render(request, "registration/password_reset_done.html", {"sends_no_mail": sends_no_mail})


def signup_rate_message() -> str:
    return f"Too many new accounts from your address; try again in an hour (at most {settings.SIGNUP_RATE_PER_HOUR} an hour)."


def _signup_allowed_from(request: HttpRequest) -> bool:
    """At most SIGNUP_RATE_PER_HOUR sign-up attempts an hour from one address (counted in the cache)."""
    key = f"signup:{client_address(request)}"
    cache.add(key, 0, timeout=3600)
    return cache.incr(key) <= settings.SIGNUP_RATE_PER_HOUR


def _month_cursor(month: str | None) -> selectors.Cursor | None:
    """The cursor that starts a timeline at the newest photo of `month` ('2024-05'), or None."""
    try:
        year, number = (int(part) for part in (month or "").split("-"))
        if not 1 <= number <= 12:
            return None
        start_of_next = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)  # a camera's wall clock
    except ValueError:
        return None
    return selectors.Cursor(start_of_next, 0)


def _image_list(request: HttpRequest, queryset, *, title: str, mine: bool) -> HttpResponse:
    """A timeline: photos grouped by the day they were taken, newest first, PAGE_SIZE at a time.

    `?before=<cursor>` continues below a page; `?month=2024-05` jumps to a month; `?partial=1` answers
    with the next page's groups alone, which timeline.js appends without reloading the page.
    """
    form = ImageFilterForm(request.GET or None)
    queryset_unfiltered = queryset
    filtered = False
    if form.is_valid():
        if form.cleaned_data["status"]:
            queryset = queryset.filter(status=form.cleaned_data["status"])
        if form.cleaned_data["visibility"]:
            queryset = queryset.filter(is_public=form.cleaned_data["visibility"] == "public")
        if form.cleaned_data["tag"]:
            queryset = tags.images_tagged(queryset, form.cleaned_data["tag"])
        if form.cleaned_data["place"]:
            queryset = places.images_at(queryset, form.cleaned_data["place"], request.user)
        filtered = any(form.cleaned_data[name] for name in ("status", "visibility", "tag", "place"))
    before = selectors.Cursor.parse(request.GET.get("before")) or _month_cursor(request.GET.get("month"))
    page = selectors.timeline_page(
        selectors.images_with_region_counts(queryset.select_related("owner")),
        before=before,
        size=PAGE_SIZE,
    )
    days = [(day, list(group)) for day, group in groupby(page.images, key=lambda image: image.shot_local.date())]
    query = request.GET.copy()
    for key in ("before", "month", "partial", "page"):
        query.pop(key, None)
    next_url = f"?{query.urlencode()}&before={page.next}".replace("?&", "?") if page.next else ""
    context = {"days": days, "next_url": next_url, "mine": mine}
    if request.GET.get("partial"):
        return render(request, "gallery/_timeline_page.html", context)
    own_jobs = jobs_summary(selectors.images_owned_by(request.user)) if mine else None
    months = selectors.timeline_months(queryset)
    # "On this day" tops one's own timeline, not a filtered list or a jump into the past.
    show_memories = mine and not filtered and before is None and request.resolver_match.url_name == "my_images"
    memories = selectors.on_this_day(queryset, timezone.localdate(), months=months) if show_memories else []
    return render(
        request,
        "gallery/image_list.html",
        {
            **context,
            "title": title,
            "form": form,
            "filtered": filtered,
            "tag_labels": tags.labels_in(queryset_unfiltered),
            "kept_filters": [
                (key, request.GET[key]) for key in ("status", "visibility", "place") if request.GET.get(key)
            ],
            "place": form.cleaned_data["place"] if form.is_valid() else "",
            "jumped": before is not None,
            "top_url": f"?{query.urlencode()}",
            "month_url": f"?{query.urlencode()}&month=".replace("?&", "?"),
            "months": months,
            "memories": memories,
            "my_albums": selectors.albums_owned_by(request.user).order_by("name"),
            # Your own photos: how many in each status (while any is not ready), how far along, how
            # long the rest takes.
            "counts": own_jobs.counts
            if own_jobs and own_jobs.counts["ready"] < sum(own_jobs.counts.values())
            else None,
            "own_jobs": own_jobs,
        },
    )


@login_required
def my_images(request: HttpRequest) -> HttpResponse:
    mine = selectors.images_owned_by(request.user).filter(archived_at__isnull=True)
    return _image_list(request, mine, title="My images", mine=True)


@login_required
def archived_images(request: HttpRequest) -> HttpResponse:
    """Photos their owner put away: off the timelines, still found by search."""
    archived = selectors.images_owned_by(request.user).filter(archived_at__isnull=False)
    return _image_list(request, archived, title="Archive", mine=True)


@login_required
def public_images(request: HttpRequest) -> HttpResponse:
    queryset = selectors.images_visible_to(request.user).filter(is_public=True, archived_at__isnull=True)
    return _image_list(request, queryset, title="Public images", mine=False)


@login_required
def favourite_images(request: HttpRequest) -> HttpResponse:
    return _image_list(request, selectors.images_favoured_by(request.user), title="Favourites", mine=False)


@login_required
def explore(request: HttpRequest) -> HttpResponse:
    """Ways into one's own photos besides their dates: the places with most photos, and the things
    most photos show (their tags), each opening the timeline filtered to it."""
    mine = selectors.images_owned_by(request.user).filter(archived_at__isnull=True)
    top_places = sorted(places.places_of(mine), key=lambda group: (-group.count, str(group.place)))
    return render(
        request,
        "gallery/explore.html",
        {
            "top_places": top_places[:EXPLORE_PLACES],
            "more_places": len(top_places) > EXPLORE_PLACES,
            "things": tags.label_groups(mine, limit=EXPLORE_THINGS),
        },
    )


@login_required
def places_page(request: HttpRequest) -> HttpResponse:
    """One's photos by where they were taken: countries, and in each the towns, with counts and the
    newest photo taken there; each opens one's timeline at that place."""
    groups = places.places_of(selectors.images_owned_by(request.user).filter(archived_at__isnull=True))
    countries = [(country, list(group)) for country, group in groupby(groups, key=lambda g: g.place.country)]
    unnamed = (
        selectors.images_owned_by(request.user)
        .filter(archived_at__isnull=True, status=Image.Status.READY, latitude__isnull=False, place_city="")
        .count()
    )
    timeline = reverse("gallery:my_images")
    markers = [
        {
            "lat": group.latitude,
            "lon": group.longitude,
            "name": str(group.place),
            "count": group.count,
            "url": f"{timeline}?{urlencode({'place': str(group.place)})}",
        }
        for group in groups
    ]
    return render(request, "gallery/places.html", {"countries": countries, "unnamed": unnamed, "markers": markers})


@login_required
def upload(request: HttpRequest) -> HttpResponse:
    outcomes = None
    error = None
    status = 200
    if request.method == "POST":
        try:
            uploads = request.FILES.getlist("files")
        except TooManyFilesSent:
            uploads, error, status = [], services.too_many_files_message(), 400
        if not uploads and error is None:
            error, status = "Choose one or more image files to upload.", 400
        if uploads:
            try:
                outcomes = services.images_create(owner=request.user, uploads=uploads)
            except services.StorageUnavailable as refused:
                error, status = str(refused), refused.status
            else:
                if all(outcome.outcome == "rejected" for outcome in outcomes):
                    status = 400
    return render(
        request,
        "gallery/upload.html",
        {
            "outcomes": outcomes,
            "error": error,
            "max_files": settings.MAX_FILES_PER_UPLOAD,
            "max_mb": settings.MAX_UPLOAD_BYTES // 1_048_576,
            "accept_photos": ACCEPT_ATTRIBUTE,
        },
        status=status,
    )


@login_required
def image_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A photo in the one viewer; newer/older come from the list it was opened from (static/js/listnav.js),
    and "back" is one's timeline (or the public one) until the list says otherwise."""
    image = get_object_or_404(selectors.images_visible_to(request.user).select_related("owner"), pk=pk)
    mine = image.owner_id == request.user.pk
    return render(
        request,
        "gallery/viewer.html",
        {
            **viewer_context(request, image),
            "list_nav": True,
            "back_url": reverse("gallery:my_images" if mine else "gallery:public_images"),
            "back_label": "Back to the list",
            "file_url": reverse("gallery:image_file", args=[image.pk]),
        },
    )


@login_required
@require_POST
def image_tag(request: HttpRequest, pk: int) -> HttpResponse:
    """The owner adds a tag (`add`) or says a tag is wrong (`remove`); their word wins over the model's."""
    image = _owned(request, pk)
    action, label = request.POST.get("action"), request.POST.get("label", "")
    try:
        if action == "add":
            messages.success(request, f"Tagged “{tags.tag_add(image=image, label=label)}”.")
        elif action == "remove":
            messages.success(
                request,
                f"Removed the tag “{tags.tag_remove(image=image, label=label)}”; "
                "it stays off when the photo is tagged again.",
            )
        else:
            messages.error(request, "Choose to add or remove a tag.")
    except tags.TagRejected as error:
        messages.error(request, str(error))
    return redirect("gallery:image_detail", pk=pk)


# At most this many ids in one status poll (a page shows PAGE_SIZE images).
MAX_STATUS_IDS = 200


@login_required
def image_statuses(request: HttpRequest) -> JsonResponse:
    """Status of the images `?ids=1,2,3` names (those the person may see): what pages poll to update
    their badges in place, instead of reloading themselves."""
    parts = [part for part in request.GET.get("ids", "").split(",") if part.strip()][:MAX_STATUS_IDS]
    ids = param_ids(parts, name="ids")
    images = selectors.images_with_region_counts(selectors.images_visible_to(request.user).filter(pk__in=ids))
    return JsonResponse(
        {
            "images": [
                {
                    "id": image.pk,
                    "status": image.status,
                    "objects_status": image.objects_status,
                    "final": image.is_final,
                    "error": image.error,
                    "regions": image.region_count,
                    "label": image.status_label,
                }
                for image in images
            ]
        }
    )


def _owned(request: HttpRequest, pk: int) -> Image:
    return get_object_or_404(selectors.images_owned_by(request.user), pk=pk)


@login_required
@require_POST
def image_visibility(request: HttpRequest, pk: int) -> HttpResponse:
    image = services.image_set_visibility(image=_owned(request, pk), is_public=request.POST.get("is_public") == "1")
    messages.success(request, "The image is now public." if image.is_public else "The image is now private.")
    return redirect("gallery:image_detail", pk=pk)


@login_required
@require_POST
def image_location(request: HttpRequest, pk: int) -> HttpResponse:
    image = services.image_set_location_sharing(
        image=_owned(request, pk), share_location=request.POST.get("share_location") == "1"
    )
    messages.success(
        request,
        "People who may see this photo now see where it was taken, and download it with its GPS."
        if image.share_location
        else "Where this photo was taken is yours alone again: others download it without GPS.",
    )
    return redirect("gallery:image_detail", pk=pk)


@login_required
def image_delete(request: HttpRequest, pk: int) -> HttpResponse:
    image = _owned(request, pk)
    if request.method == "POST":
        services.image_trash(image=image)
        messages.success(
            request, f"Moved “{image.original_name}” to the trash: restore it there within {settings.TRASH_DAYS} days."
        )
        return redirect("gallery:my_images")
    return render(request, "gallery/image_confirm_delete.html", {"image": image, "trash_days": settings.TRASH_DAYS})


@login_required
@require_POST
def image_retry(request: HttpRequest, pk: int) -> HttpResponse:
    image = _owned(request, pk)
    if image.on_its_way:
        messages.info(request, "It is already queued or being processed.")
    else:
        services.image_reprocess(image=image)
        messages.success(request, "Queued for processing again.")
    return redirect("gallery:image_detail", pk=pk)


BULK_ACTIONS = {
    "favourite": "Add to favourites",
    "unfavourite": "Remove from favourites",
    "add_to_album": "Add to album",
    "make_public": "Make public",
    "make_private": "Make private",
    "reprocess": "Process again",
    "archive": "Archive",
    "unarchive": "Unarchive",
    "delete": "Delete",
}
OWNER_ONLY_ACTIONS = {"make_public", "make_private", "reprocess", "archive", "unarchive", "delete"}


@login_required
@require_POST
def images_bulk(request: HttpRequest) -> HttpResponse:
    """One action on the photos selected in a grid. Changing visibility, reprocessing and deleting
    apply to your own photos only; favourites and albums to any you may see. Deleting asks first."""
    action = request.POST.get("action", "")
    ids = posted_ids(request)
    back = reverse("gallery:my_images")
    if action not in BULK_ACTIONS:
        messages.error(request, "Choose what to do with the selected photos.")
        return redirect_back(request, back)
    if not ids:
        messages.error(request, "Select one or more photos first.")
        return redirect_back(request, back)
    if action in {"favourite", "unfavourite"}:
        count = albums.favourites_set(user=request.user, image_ids=ids, on=action == "favourite")
        messages.success(
            request,
            f"{'Added' if action == 'favourite' else 'Removed'} {count} photo{pluralize(count)} "
            f"{'to' if action == 'favourite' else 'from'} your favourites.",
        )
        return redirect_back(request, back)
    if action == "add_to_album":
        return album_views.images_add_to_album(request)
    owned = selectors.images_owned_by(request.user).filter(pk__in=ids)
    skipped = len(ids) - owned.count()
    note = (
        f" {skipped} of them {'is' if skipped == 1 else 'are'} not yours and stayed as {'it was' if skipped == 1 else 'they were'}."
        if skipped
        else ""
    )
    if action == "delete":
        if request.POST.get("confirm") != "yes":
            return render(
                request,
                "gallery/images_confirm_delete.html",
                {
                    "images": owned.order_by("-shot_local", "-id"),
                    "trash_days": settings.TRASH_DAYS,
                    "skipped": skipped,
                    "next": request.POST.get("next", ""),
                },
            )
        count = services.images_trash(queryset=owned)
        messages.success(
            request,
            f"Moved {count} photo{pluralize(count)} to the trash: restore {'it' if count == 1 else 'them'} there "
            f"within {settings.TRASH_DAYS} days.{note}",
        )
        return redirect_back(request, back)
    if action in {"archive", "unarchive"}:
        count = services.images_set_archived(queryset=owned, archived=action == "archive")
        messages.success(
            request,
            f"Archived {count} photo{pluralize(count)}: off your timeline, still found by search.{note}"
            if action == "archive"
            else f"{count} photo{pluralize(count)} back on your timeline.{note}",
        )
        return redirect_back(request, back)
    if action in {"make_public", "make_private"}:
        count = services.images_set_visibility(queryset=owned, is_public=action == "make_public")
        messages.success(
            request, f"{count} photo{pluralize(count)} now {'public' if action == 'make_public' else 'private'}.{note}"
        )
    else:  # reprocess: those already on their way are left alone
        queued = [image for image in owned if not image.on_its_way]
        for image in queued:
            services.image_reprocess(image=image)
        messages.success(request, f"Queued {len(queued)} photo{pluralize(len(queued))} for processing again.{note}")
    return redirect_back(request, back)


@login_required
def account_tokens(request: HttpRequest) -> HttpResponse:
    """Your API tokens: make one (shown this once), see the ones that work, revoke them."""
    form = TokenForm(request.POST or None)
    new_token = None
    if request.method == "POST" and form.is_valid():
        try:
            new_token = tokens.token_create(
                user=request.user, name=form.cleaned_data["name"], days=form.cleaned_data["days"]
            )
            form = TokenForm()
        except tokens.TokenRefused as error:
            form.add_error(None, str(error))
    return render(
        request,
        "gallery/tokens.html",
        {
            "form": form,
            "tokens": tokens.tokens_of(request.user),
            "new_token": new_token,
        },
    )


@login_required
@require_POST
def account_token_revoke(request: HttpRequest, key: str) -> HttpResponse:
    if tokens.token_revoke(user=request.user, key=key):
        messages.success(request, "Token revoked: scripts using it now get 401.")
    else:
        messages.info(request, "That token was already revoked or had expired.")
    return redirect("gallery:account_tokens")


@login_required
@require_POST
def account_tokens_revoke_all(request: HttpRequest) -> HttpResponse:
    count = tokens.tokens_revoke_all(user=request.user)
    messages.success(request, f"Revoked {count} token(s).")
    return redirect("gallery:account_tokens")


def _visible_or_404(request: HttpRequest, pk: int) -> Image:
    # Anonymous requests get the same 404 as strangers: the URL reveals nothing.
    image = selectors.images_visible_to(request.user).filter(pk=pk).first()
    if image is None:
        raise Http404("No such image.")
    return image


def image_file(request: HttpRequest, pk: int) -> HttpResponse:
    return media.original_response(
        _visible_or_404(request, pk),
        viewer=request.user,
        download="download" in request.GET,
        display=True,
        full="full" in request.GET,
    )


def image_thumbnail(request: HttpRequest, pk: int) -> HttpResponse:
    return media.thumbnail_response(_visible_or_404(request, pk))


def region_crop(request: HttpRequest, pk: int) -> HttpResponse:
    region = (
        Region.objects.filter(pk=pk, image__in=selectors.images_visible_to(request.user))
        .select_related("image")
        .first()
    )
    if region is None:
        raise Http404("No such region.")
    return media.region_crop_response(region.image, region.box)


def _trashed(request: HttpRequest):
    """The signed-in person's photos in the trash, most recently deleted first."""
    return Image.all_objects.filter(owner=request.user, trashed_at__isnull=False).order_by("-trashed_at", "-id")


@login_required
def trash(request: HttpRequest) -> HttpResponse:
    """Deleted photos, each until TRASH_DAYS after it was deleted: restore them, or delete them for
    good now (selected ones, or all). Deleting for good asks first."""
    trashed = _trashed(request)
    if request.method == "POST":
        action = request.POST.get("action", "")
        if action not in {"restore", "delete", "empty"}:
            raise BadParameter("Choose restore, delete or empty.")
        chosen = (
            trashed
            if action == "empty"
            else trashed.filter(pk__in=param_ids(request.POST.getlist("image_ids"), name="image_ids"))
        )
        if action == "restore":
            count = 0
            for image in chosen:
                try:
                    services.image_restore(image=image)
                except services.CannotRestore as refused:
                    messages.error(request, str(refused))
                    continue
                count += 1
            messages.success(request, f"Restored {count} photo{pluralize(count)}.")
            return redirect("gallery:trash")
        if request.POST.get("confirm") != "yes":
            return render(request, "gallery/trash_confirm.html", {"images": chosen, "action": action})
        count = services.images_delete(queryset=chosen)
        messages.success(request, f"Deleted {count} photo{pluralize(count)} for good.")
        return redirect("gallery:trash")
    images = list(trashed)
    for image in images:
        image.purged_on = (image.trashed_at + timedelta(days=settings.TRASH_DAYS)).date()
    return render(request, "gallery/trash.html", {"images": images, "trash_days": settings.TRASH_DAYS})


@login_required
def trash_thumbnail(request: HttpRequest, pk: int) -> HttpResponse:
    return media.thumbnail_response(get_object_or_404(_trashed(request), pk=pk))


@login_required
def jobs(request: HttpRequest) -> HttpResponse:
    """Staff: where processing stands for everyone (gallery.jobs), the latest failures with their
    sentences, and pause/resume. Nobody else learns the page exists."""
    if not request.user.is_staff:
        raise Http404("No such page.")
    if request.method == "POST":
        action = request.POST.get("action", "")
        if action == "pause":
            work_queue.processing_pause(by=request.user.get_username())
            messages.success(request, "Processing paused: photos being processed finish, the others wait.")
        elif action == "resume":
            requeued = work_queue.processing_resume().requeued
            messages.success(
                request, f"Processing resumed: {len(requeued)} waiting photo{pluralize(len(requeued))} queued again."
            )
        else:
            raise BadParameter("Choose pause or resume.")
        return redirect("gallery:jobs")
    failed = recent_failures()
    jobs = jobs_summary()
    stages = [("Searchable", jobs.searchable), ("Objects", jobs.objects)]
    return render(request, "gallery/jobs.html", {"jobs": jobs, "stages": stages, "failed": failed})
