"""Albums, share links and favourites on the web.

Who reaches what: an album's owner and the people it is shared with open /albums/<id>/...; anyone
with an active link opens /s/<token>/...; each sees selectors.album_images(album) and nothing else.
Photos are served through the album's own URLs (the gallery's media URLs stay scoped to the viewer's
own and public photos), and others get originals without GPS unless the photo's owner shares it.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from gallery import albums, media, selectors
from gallery.http import posted_ids, redirect_back
from gallery.models import Album, Image, ShareLink
from gallery.viewer import viewer_context
from imgsearch.params import param_id, param_int, param_text

LINK_CHOICES = [
    (str(days or ""), f"{days} day{'s' if days > 1 else ''}" if days else "until I revoke it")
    for days in albums.LINK_LIFETIME_DAYS
]


# --- Albums ---------------------------------------------------------------------------------------


@login_required
def album_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            album = albums.album_create(owner=request.user, name=param_text(request.POST.get("name"), name="name"))
        except albums.AlbumRefused as error:
            messages.error(request, str(error))
            return redirect("gallery:album_list")
        return redirect("gallery:album_detail", pk=album.pk)
    visible = selectors.albums_visible_to(request.user).select_related("owner", "cover")
    return render(
        request,
        "gallery/album_list.html",
        {
            "mine": [(album, _cover(album)) for album in visible if album.owner_id == request.user.pk],
            "shared": [(album, _cover(album)) for album in visible if album.owner_id != request.user.pk],
        },
    )


def _cover(album: Album) -> Image | None:
    shown = selectors.album_images(album)
    return shown.filter(pk=album.cover_id).first() if album.cover_id else shown.order_by("-shot_local", "-id").first()


def _album(request: HttpRequest, pk: int) -> Album:
    return get_object_or_404(selectors.albums_visible_to(request.user).select_related("owner"), pk=pk)


def _own_album(request: HttpRequest, pk: int) -> Album:
    return get_object_or_404(selectors.albums_owned_by(request.user), pk=pk)


@login_required
def album_detail(request: HttpRequest, pk: int) -> HttpResponse:
    album = _album(request, pk)
    is_owner = album.owner_id == request.user.pk
    context = {
        "album": album,
        "is_owner": is_owner,
        "images": selectors.album_images(album).order_by("-shot_local", "-id"),
        "photo_url": reverse("gallery:album_photo", args=[album.pk, 0]),
    }
    if is_owner:
        now = timezone.now()
        context.update(
            members=album.shared_with.order_by("username"),
            link_choices=LINK_CHOICES,
            links=[
                (
                    link,
                    link.is_active(now),
                    request.build_absolute_uri(reverse("gallery:shared_album", args=[link.token])),
                )
                for link in album.links.all()
            ],
        )
    return render(request, "gallery/album_detail.html", context)


@login_required
@require_POST
def album_rename(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        albums.album_rename(album=_own_album(request, pk), name=param_text(request.POST.get("name"), name="name"))
    except albums.AlbumRefused as error:
        messages.error(request, str(error))
    return redirect("gallery:album_detail", pk=pk)


@login_required
def album_delete(request: HttpRequest, pk: int) -> HttpResponse:
    album = _own_album(request, pk)
    if request.method == "POST":
        albums.album_delete(album=album)
        messages.success(request, f"Deleted the album “{album.name}”. Its photos are still in your library.")
        return redirect("gallery:album_list")
    return render(request, "gallery/album_confirm_delete.html", {"album": album})


@login_required
@require_POST
def album_cover(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        albums.album_set_cover(
            album=_own_album(request, pk), image_id=param_id(request.POST.get("image_id"), name="image_id") or 0
        )
        messages.success(request, "Cover chosen.")
    except (albums.AlbumRefused, ValueError) as error:
        messages.error(request, str(error))
    return redirect_back(request, reverse("gallery:album_detail", args=[pk]))


@login_required
@require_POST
def album_remove(request: HttpRequest, pk: int) -> HttpResponse:
    count = albums.album_remove_images(album=_own_album(request, pk), image_ids=posted_ids(request))
    messages.success(
        request, f"Removed {count} photo{'s' if count != 1 else ''} from the album (not from your library)."
    )
    return redirect("gallery:album_detail", pk=pk)


@login_required
@require_POST
def album_share(request: HttpRequest, pk: int) -> HttpResponse:
    album = _own_album(request, pk)
    try:
        albums.album_share_with(album=album, username=param_text(request.POST.get("username"), name="username"))
        messages.success(request, f"Shared with {request.POST['username'].strip()}: they can look, not change.")
    except albums.AlbumRefused as error:
        messages.error(request, str(error))
    return redirect("gallery:album_detail", pk=pk)


@login_required
@require_POST
def album_unshare(request: HttpRequest, pk: int, user_id: int) -> HttpResponse:
    albums.album_unshare(album=_own_album(request, pk), user_id=user_id)
    messages.success(request, "They no longer see the album.")
    return redirect("gallery:album_detail", pk=pk)


@login_required
@require_POST
def album_link_create(request: HttpRequest, pk: int) -> HttpResponse:
    # Any number parses; the service says which lifetimes there are.
    days = param_int(request.POST.get("days"), name="days", minimum=0, maximum=10**6)
    try:
        albums.share_link_create(album=_own_album(request, pk), days=days)
        messages.success(request, "Link made: anyone who has it can see this album's photos (and nothing else).")
    except albums.AlbumRefused as error:
        messages.error(request, str(error))
    return redirect("gallery:album_detail", pk=pk)


@login_required
@require_POST
def album_link_revoke(request: HttpRequest, pk: int, link_id: int) -> HttpResponse:
    link = get_object_or_404(ShareLink, pk=link_id, album__in=selectors.albums_owned_by(request.user), album_id=pk)
    albums.share_link_revoke(link=link)
    messages.success(request, "Link revoked: it now opens nothing.")
    return redirect("gallery:album_detail", pk=pk)


@login_required
@require_POST
def images_add_to_album(request: HttpRequest) -> HttpResponse:
    """Add photos (from a grid's selection or the viewer) to one of your albums, or to a new one."""
    ids = posted_ids(request)
    name = param_text(request.POST.get("new_album"), name="new_album")
    if not name and not request.POST.get("album"):
        messages.error(request, "Name a new album to add the photos to.")
        return redirect_back(request, reverse("gallery:my_images"))
    try:
        if name:
            album = albums.album_create(owner=request.user, name=name)
        else:
            album = get_object_or_404(
                selectors.albums_owned_by(request.user), pk=param_id(request.POST.get("album"), name="album") or 0
            )
    except albums.AlbumRefused as error:
        messages.error(request, str(error))
        return redirect_back(request, reverse("gallery:my_images"))
    count = albums.album_add_images(album=album, image_ids=ids)
    link = reverse("gallery:album_detail", args=[album.pk])
    messages.success(request, f"Added {count} photo{'s' if count != 1 else ''} to “{album.name}”.")
    return redirect_back(request, link)


@login_required
@require_POST
def images_favourite(request: HttpRequest) -> HttpResponse:
    on = request.POST.get("on") == "1"
    count = albums.favourites_set(user=request.user, image_ids=posted_ids(request), on=on)
    messages.success(
        request,
        (f"Added {count} to your favourites." if on else f"Removed {count} from your favourites.")
        if len(posted_ids(request)) > 1
        else ("Added to your favourites." if on else "Removed from your favourites."),
    )
    return redirect_back(request, reverse("gallery:my_images"))


# --- Photos through an album: its members, or a link ------------------------------------------


def _photo_in(album: Album, image_id: int) -> Image:
    image = selectors.album_images(album).select_related("owner").filter(pk=image_id).first()
    if image is None:
        raise Http404("No such photo in this album.")
    return image


def _viewer(request: HttpRequest, album: Album, image: Image, *, base: str, link_token: str | None) -> HttpResponse:
    ordered = selectors.album_images(album).order_by("-shot_local", "-id")
    newer = (
        ordered.filter(shot_local__gt=image.shot_local).order_by("shot_local", "id").first()
        or ordered.filter(shot_local=image.shot_local, id__gt=image.pk).order_by("id").first()
    )
    older = (
        ordered.filter(shot_local=image.shot_local, id__lt=image.pk).first()
        or ordered.filter(shot_local__lt=image.shot_local).first()
    )
    args = [link_token] if link_token else [album.pk]
    kind = "shared" if link_token else "album"
    return render(
        request,
        "gallery/viewer.html",
        {
            **viewer_context(request, image),
            "album": album,
            "link_token": link_token,
            "back_url": base,
            "back_label": album.name,
            "file_url": reverse(f"gallery:{kind}_photo_file", args=[*args, image.pk]),
            "newer_url": reverse(f"gallery:{kind}_photo", args=[*args, newer.pk]) if newer else "",
            "older_url": reverse(f"gallery:{kind}_photo", args=[*args, older.pk]) if older else "",
            # The neighbours' pictures, fetched ahead so that stepping to them shows them at once.
            "neighbour_files": [
                reverse(f"gallery:{kind}_photo_file", args=[*args, neighbour.pk])
                for neighbour in (newer, older)
                if neighbour
            ],
            "is_album_owner": link_token is None and album.owner_id == request.user.pk,
        },
    )


@login_required
def album_photo(request: HttpRequest, pk: int, image_id: int) -> HttpResponse:
    album = _album(request, pk)
    return _viewer(
        request, album, _photo_in(album, image_id), base=reverse("gallery:album_detail", args=[pk]), link_token=None
    )


@login_required
def album_photo_file(request: HttpRequest, pk: int, image_id: int) -> HttpResponse:
    return media.original_response(
        _photo_in(_album(request, pk), image_id),
        viewer=request.user,
        download="download" in request.GET,
        display=True,
        full="full" in request.GET,
    )


@login_required
def album_photo_thumbnail(request: HttpRequest, pk: int, image_id: int) -> HttpResponse:
    return media.thumbnail_response(_photo_in(_album(request, pk), image_id))


def _linked(token: str) -> Album:
    album = selectors.album_of_link(token)
    if album is None:
        raise Http404("This link does not open anything: it was revoked, has expired, or never existed.")
    return album


def shared_album(request: HttpRequest, token: str) -> HttpResponse:
    album = _linked(token)
    return render(
        request,
        "gallery/shared_album.html",
        {
            "album": album,
            "token": token,
            "images": selectors.album_images(album).order_by("-shot_local", "-id"),
        },
    )


def shared_photo(request: HttpRequest, token: str, image_id: int) -> HttpResponse:
    album = _linked(token)
    return _viewer(
        request, album, _photo_in(album, image_id), base=reverse("gallery:shared_album", args=[token]), link_token=token
    )


def shared_photo_file(request: HttpRequest, token: str, image_id: int) -> HttpResponse:
    return media.original_response(
        _photo_in(_linked(token), image_id),
        viewer=request.user,
        download="download" in request.GET,
        display=True,
        full="full" in request.GET,
    )


def shared_photo_thumbnail(request: HttpRequest, token: str, image_id: int) -> HttpResponse:
    return media.thumbnail_response(_photo_in(_linked(token), image_id))
