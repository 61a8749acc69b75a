"""Everything that changes photos and regions goes through these functions.

Views, the API, the admin and management commands call them; none of them writes an Image or
Region on its own. Writes to files happen only after the database agrees, and are undone when it
does not, so a rejected or failed upload leaves nothing behind.
"""

import errno
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

from django.conf import settings
from django.core.files import File
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from gallery import storage
from gallery.models import FileToDelete, Image, Region
from gallery.validation import UploadRejected, display_name, too_large_message, validate_image_bytes
from gallery.work_queue import OBJECTS, WHOLE, image_enqueue, image_queue_again

logger = logging.getLogger(__name__)

Outcome = Literal["accepted", "duplicate", "rejected"]


@dataclass(frozen=True)
class UploadOutcome:
    """What happened to one uploaded file. `image` is set for accepted and duplicate files."""

    name: str
    outcome: Outcome
    message: str
    image: Image | None = None


class TooManyFiles(ValueError):
    pass


class StorageUnavailable(Exception):
    """The media folder refused a write. The message is the sentence a person sees; `status` is
    the HTTP answer: 507 when the disk is full, 503 when it cannot be written at all."""

    status = 503

    def __init__(self, message: str, *, os_error: OSError):
        super().__init__(message)
        self.os_error = os_error

    @staticmethod
    def of(error: OSError, *, stored: int = 0) -> "StorageUnavailable":
        before = f" The {stored} file(s) before it were stored." if stored else ""
        if error.errno in {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}:
            return StorageFull(
                f"The server's storage is full, so the upload was not stored.{before} "
                "Ask the administrator to free space, then upload again.",
                os_error=error,
            )
        return StorageUnavailable(
            f"The server cannot store uploads right now (the media folder is not writable: "
            f"{error.strerror}).{before} Try again later or tell the administrator.",
            os_error=error,
        )


class StorageFull(StorageUnavailable):
    status = 507


def image_create(*, owner, upload: File) -> UploadOutcome:
    """Validate and store one upload, then queue it for processing once the row commits.

    `upload` is any Django File (an UploadedFile from a request, or File(open(path)) from a command).
    A duplicate of one of the owner's images (same bytes) is not stored again and not reprocessed.
    """
    shown_name = display_name(upload.name)
    try:
        valid = validate_image_bytes(_read_bounded(upload))
    except UploadRejected as error:
        return UploadOutcome(name=shown_name, outcome="rejected", message=str(error))

    existing = Image.all_objects.filter(owner=owner, sha256=valid.sha256).first()
    if existing is not None:
        return _duplicate(shown_name, existing)

    relative = Image.generate_file_name(owner_id=owner.pk, extension=valid.extension)
    try:
        staged = storage.StagedWrite(relative, valid.data)
    except OSError as error:
        raise StorageUnavailable.of(error) from error
    try:
        with transaction.atomic():
            image = Image.objects.create(
                owner=owner,
                file=relative,
                original_name=shown_name,
                size_bytes=len(valid.data),
                **valid.image_fields(),
            )
            staged.commit()
            image_enqueue(image_id=image.pk)
    except IntegrityError:
        # Another request stored the same bytes for this owner between our check and our insert.
        staged.discard()
        existing = Image.all_objects.filter(owner=owner, sha256=valid.sha256).first()
        if existing is None:
            raise
        return _duplicate(shown_name, existing)
    except OSError as error:  # putting the file in place failed: the row was rolled back
        staged.discard()
        raise StorageUnavailable.of(error) from error
    except BaseException:
        staged.discard()
        raise
    return UploadOutcome(name=shown_name, outcome="accepted", message="Queued for processing.", image=image)


def _read_bounded(upload: File) -> bytes:
    """The upload's bytes, or raise UploadRejected without reading more than the cap allows."""
    limit = settings.MAX_UPLOAD_BYTES
    if upload.size is not None and upload.size > limit:
        raise UploadRejected(too_large_message(upload.size))
    upload.seek(0)
    data = upload.read(limit + 1)
    if len(data) > limit:
        raise UploadRejected(too_large_message(len(data)))
    return data


def images_create(*, owner, uploads: Sequence[File]) -> list[UploadOutcome]:
    """Store a batch of uploads; each file gets its own outcome and good files are kept.

    Raises StorageUnavailable when the media folder refuses a write; the files stored before it stay.
    """
    if len(uploads) > settings.MAX_FILES_PER_UPLOAD:
        raise TooManyFiles(too_many_files_message())
    outcomes = []
    for upload in uploads:
        try:
            outcomes.append(image_create(owner=owner, upload=upload))
        except StorageUnavailable as error:
            stored = sum(outcome.outcome == "accepted" for outcome in outcomes)
            raise StorageUnavailable.of(error.os_error, stored=stored) from error.os_error
    return outcomes


def too_many_files_message() -> str:
    return f"Too many files at once; upload at most {settings.MAX_FILES_PER_UPLOAD} files per batch."


def _duplicate(shown_name: str, existing: Image) -> UploadOutcome:
    if existing.trashed_at is not None:  # uploaded again: they want it back
        try:
            existing = image_restore(image=existing)
        except CannotRestore as refused:
            return UploadOutcome(name=shown_name, outcome="duplicate", message=str(refused), image=existing)
        message = f"This image was in your trash as “{existing.original_name}”: it is restored."
    else:
        message = f"You already uploaded this image as “{existing.original_name}”."
    return UploadOutcome(name=shown_name, outcome="duplicate", message=message, image=existing)


def image_set_visibility(*, image: Image, is_public: bool) -> Image:
    if image.is_public != is_public:
        image.is_public = is_public
        image.save(update_fields=["is_public", "updated_at"])
    return image


def images_set_visibility(*, queryset: QuerySet[Image], is_public: bool) -> int:
    """Make many images public or private at once; returns how many changed."""
    from django.utils import timezone

    return queryset.exclude(is_public=is_public).update(is_public=is_public, updated_at=timezone.now())


def image_set_location_sharing(*, image: Image, share_location: bool) -> Image:
    """Let others who may see the photo see where it was taken (and download it with its GPS), or not."""
    if image.share_location != share_location:
        image.share_location = share_location
        image.save(update_fields=["share_location", "updated_at"])
    return image


def image_reprocess(*, image: Image) -> Image:
    """A person's Retry / Process again: queue the image to be processed again (its old regions stay
    until then), with a fresh budget of IMAGE_MAX_ATTEMPTS. A searchable photo whose objects failed
    retries its objects only, and stays searchable meanwhile.

    Idempotent while the image is on its way (queued, or processing with a live worker): pressing
    Retry twenty times queues one task, not twenty.
    """
    image.refresh_from_db()
    if image.on_its_way:
        return image
    image_queue_again(image_id=image.pk, stage=OBJECTS if image.objects_failed else WHOLE)
    image.refresh_from_db()
    return image


def images_reprocess(*, queryset: QuerySet[Image]) -> int:
    """Queue every image again, whatever its state (the admin action, `reprocess`)."""
    ids = list(queryset.order_by().values_list("pk", flat=True))
    for pk in ids:
        image_queue_again(image_id=pk)
    return len(ids)


def regions_delete(*, queryset: QuerySet[Region]) -> int:
    """Delete regions. The change feed (a database trigger) tells every index to drop their vectors."""
    _, deleted = queryset.delete()  # their model tags go with them
    return deleted.get(Region._meta.label, 0)


def image_trash(*, image: Image) -> None:
    """Move the image to its owner's trash: gone from every timeline, album, share link and search at
    once (Image.objects leaves it out; the change feed takes it out of the index), its files and
    vectors kept until it is restored, or purged after TRASH_DAYS."""
    Image.all_objects.filter(pk=image.pk, trashed_at__isnull=True).update(trashed_at=timezone.now())


def images_trash(*, queryset: QuerySet[Image]) -> int:
    return Image.all_objects.filter(pk__in=queryset.values("pk"), trashed_at__isnull=True).update(
        trashed_at=timezone.now()
    )


def images_set_archived(*, queryset: QuerySet[Image], archived: bool) -> int:
    """Archive (off the timelines, still searchable) or unarchive these images; how many changed."""
    if archived:
        return queryset.filter(archived_at__isnull=True).update(archived_at=timezone.now())
    return queryset.filter(archived_at__isnull=False).update(archived_at=None)


class CannotRestore(ValueError):
    """str(error) says why, in a sentence for the person."""


def image_restore(*, image: Image) -> Image:
    """Take the image out of the trash: back where it was, searchable again (its vectors were kept).
    Raises CannotRestore for a library's photo whose file has left the folder (it comes back by
    itself with its file)."""
    if image.library_id and not storage.exists(image.file):
        raise CannotRestore(
            f"“{image.original_name}” is no longer in its library's folder; put the file back and it returns "
            "by itself at the next scan."
        )
    Image.all_objects.filter(pk=image.pk).update(trashed_at=None)
    return Image.objects.get(pk=image.pk)


def trash_purge(*, older_than: timedelta | None = None, owner=None) -> int:
    """Delete for good the photos in the trash longer than `older_than` (all of them without it),
    of one owner or of everyone: rows, regions, vectors, files."""
    trashed = Image.all_objects.filter(trashed_at__isnull=False)
    if older_than is not None:
        trashed = trashed.filter(trashed_at__lt=timezone.now() - older_than)
    if owner is not None:
        trashed = trashed.filter(owner=owner)
    return images_delete(queryset=trashed)


def image_delete(*, image: Image) -> None:
    """Delete the image for good, with its regions; its file and thumbnail go once the deletion commits.
    (What a person's Delete does is image_trash; this empties the trash.)

    The row is locked first, then what refers to it is collected and deleted. Whatever else writes
    a row that refers to the image (the pipeline's regions and tags, the pixel check's verdicts, an
    album) takes a lock on it that waits for ours: it either commits before we collect, and goes
    with the image, or finds the image gone, and its own write fails (the pipeline then drops its
    work as superseded). Without the lock, a region committed between collecting and deleting made
    the delete fail on its foreign key.

    The files are removed by `gallery.signals`, so an image deleted by a cascade (its owner's
    account deleted) loses its files too.
    """
    with transaction.atomic():
        locked = Image.all_objects.select_for_update().filter(pk=image.pk).first()
        if locked is not None:  # else someone else deleted it first: nothing left to do
            locked.delete()


def images_delete(*, queryset: QuerySet[Image]) -> int:
    count = 0
    for image in queryset:
        image_delete(image=image)
        count += 1
    return count


def partial_files_delete(*, older_than: timedelta) -> int:
    """Delete `.part` files (uploads and thumbnails being written) left by processes that died."""
    deleted = 0
    for path in storage.partial_files(older_than_seconds=older_than.total_seconds()):
        path.unlink(missing_ok=True)
        deleted += 1
    return deleted


def _derived_stem(image: Image) -> str:
    return derived_stem(image.pk, image.file, image.library_id)


def derived_stem(pk: int, file: str, library_id: int | None) -> str:
    """What the files made from an image are named after: its stored file's (unique) name, or for a
    library's photo, whose file names repeat across folders (IMG_0001.JPG), its id."""
    return f"library-{pk}" if library_id else Path(file).stem


def thumbnail_name(image: Image) -> str:
    return f"thumbnails/{image.owner_id}/{_derived_stem(image)}.jpg"


def preview_name(image: Image) -> str:
    """Where the screen-sized JPEG of a photo browsers cannot show (HEIC, TIFF, RAW) is kept."""
    return f"display/{image.owner_id}/{_derived_stem(image)}.jpg"


def without_location_name(image: Image) -> str:
    """Where the copy of the original without GPS (what others download) is kept."""
    suffix = Path(image.file).suffix
    return f"without-location/{image.owner_id}/{_derived_stem(image)}{suffix}"


def files_delete(*, names: Sequence[str]) -> None:
    """Remove stored files whose rows are gone. One that cannot be removed now (a read-only or
    unreachable store) is remembered and removed by the worker's sweep later: the row is already
    deleted, so nothing else would ever find it."""
    for name in names:
        try:
            storage.delete(name)
        except OSError as error:
            logger.warning("Could not remove %s (%s); the worker's sweep will try again.", name, error)
            try:
                FileToDelete.objects.update_or_create(name=name, defaults={"error": str(error)[:500]})
            except DatabaseError:
                logger.exception("Could not remember %s for removal either; it stays behind.", name)


# Where a photo's files are kept, each as <folder>/<owner id>/<name>: the original, then what is made
# from it (thumbnail_name, preview_name, without_location_name).
STORED_FOLDERS = ("originals", "thumbnails", "display", "without-location")


def orphan_files_delete(*, older_than: timedelta) -> int:
    """Delete stored files that no photo owns, written more than `older_than` ago. On an object store
    an upload puts its original before its transaction commits, so a web process killed between the
    two leaves an object no row names (on the filesystem the same write is a `.part` file, which
    partial_files_delete sweeps); a thumbnail made while its photo was being deleted is another.
    The age keeps uploads in flight safe: the files are listed before the rows are read, so any
    file listed that a photo owns by then is kept. Returns how many went (run_worker, daily)."""
    cutoff = timezone.now() - older_than
    deleted = 0
    for folder in STORED_FOLDERS:
        listed: dict[str, list[str]] = {}
        for owner, name in storage.stored_files(folder):
            listed.setdefault(owner, []).append(name)
        for owner, names in listed.items():
            photos = Image.all_objects.filter(owner_id=int(owner)).values_list("pk", "file", "library_id")
            owned = {file for _, file, _ in photos} if folder == "originals" else None
            stems = {derived_stem(pk, file, library) for pk, file, library in photos}
            for name in names:
                if (name in owned) if owned is not None else (Path(name).stem in stems):
                    continue
                try:
                    if storage.modified_at(name) >= cutoff:
                        continue
                    storage.delete(name)
                except FileNotFoundError:
                    continue
                except OSError as error:
                    logger.warning("Could not remove the orphan file %s: %s", name, error)
                    continue
                deleted += 1
    return deleted


def files_delete_again(*, limit: int = 100) -> int:
    """Try again to remove files whose removal failed (run_worker's sweep). Returns how many went."""
    removed = 0
    for pending in FileToDelete.objects.order_by("failed_at")[:limit]:
        try:
            storage.delete(pending.name)
        except OSError as error:
            FileToDelete.objects.filter(pk=pending.pk).update(error=str(error)[:500], failed_at=timezone.now())
            continue
        pending.delete()
        removed += 1
    return removed


def derived_file_names(image: Image) -> list[str]:
    """Every file kept for an image besides its original: deleted with it."""
    return [thumbnail_name(image), preview_name(image), without_location_name(image)]
