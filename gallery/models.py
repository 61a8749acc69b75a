"""Photos and the regions found in them.

A Region is what search ranks: the whole image (kind=global) or one object SAM found in it
(kind=object). Its vector lives here, in the database, which is the source of truth; the FAISS
segments under INDEX_DIR are a cache rebuilt from these rows and kept up to date through the
change feed (ImageChange).
"""

import uuid
from datetime import UTC, datetime, timedelta
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo

import numpy as np
from django.conf import settings
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone
from knox.models import AbstractAuthToken

from gallery.places import Place

# float16 halves the table (1M regions x 512 dims = 1 GB instead of 2 GB); cosine scores move
# by about 1e-3, far below any ranking tie we care about.
VECTOR_DTYPE = np.float16


def camera_zone(offset_minutes: int | None) -> dt_timezone | ZoneInfo:
    """The zone a camera's clock was in: its recorded offset, else this server's TIME_ZONE."""
    if offset_minutes is None:
        return ZoneInfo(settings.TIME_ZONE)
    return dt_timezone(timedelta(minutes=offset_minutes))


def local_wall_clock(moment: datetime, offset_minutes: int | None) -> datetime:
    """`moment` as the clock in its zone (camera_zone) read it, labelled UTC: see Image.shot_local."""
    return moment.astimezone(camera_zone(offset_minutes)).replace(tzinfo=UTC)


class LiveImages(models.Manager):
    """Image.objects: the photos not in the trash. To everything that reads photos (timelines,
    albums, share links, search and its index, the pipeline) a photo in the trash is as good as
    deleted; the trash itself, restoring and purging use Image.all_objects."""

    def get_queryset(self):
        return super().get_queryset().filter(trashed_at__isnull=True)


class Library(models.Model):
    """A folder on this server read in place for one person (their phone's synced folder, a NAS
    share): its photos are never copied, written or deleted; rescans pick up new, changed and
    removed files (gallery/libraries.py). Its photos are stored as `library/<id>/<relative path>`."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="libraries")
    path = models.CharField(max_length=1024, help_text="An absolute folder on the server, read only.")
    include = models.CharField(
        max_length=500, blank=True, help_text="Comma-separated patterns of files to read (*.jpg,*.heic); empty: all."
    )
    exclude = models.CharField(
        max_length=500, blank=True, help_text="Comma-separated patterns to leave out (*/.thumbnails/*,*.tmp)."
    )
    rescan_minutes = models.PositiveIntegerField(default=60, help_text="How often the worker rescans it.")
    scanned_at = models.DateTimeField(null=True, blank=True)
    last_scan = models.CharField(max_length=500, blank=True, help_text="What the last scan found.")

    class Meta:
        verbose_name_plural = "libraries"
        constraints = [models.UniqueConstraint(fields=["owner", "path"], name="library_unique_path_per_owner")]

    def __str__(self) -> str:
        return f"{self.path} ({self.owner})"


class AllImages(models.Manager):
    """Image.all_objects: every photo, those in the trash included."""


class Image(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSING = "processing", "Processing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    class ObjectsStatus(models.TextChoices):
        """The second, slow stage (SAM objects, their vectors and tags) of a photo that is `ready`
        (searchable as a whole): it waits for the first stage, then for a worker."""

        WAITING = "waiting", "Waiting"
        FINDING = "finding", "Finding objects"
        FOUND = "found", "Found"
        FAILED = "failed", "Failed"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="images")
    # Stored under a generated name; the uploader's file name is kept for display only.
    file = models.CharField(
        max_length=1024, unique=True, help_text="Path under MEDIA_ROOT, or library/<id>/<path> for a library's photo."
    )
    # Read in place from a Library (never copied, written or deleted), with the file's size and
    # modification time when last read: a rescan reads it again only when they change.
    library = models.ForeignKey("Library", null=True, blank=True, on_delete=models.CASCADE, related_name="images")
    source_mtime = models.FloatField(null=True, blank=True)
    original_name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    format = models.CharField(max_length=16)
    # Dimensions after EXIF orientation: the coordinate system of every region box.
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    size_bytes = models.PositiveBigIntegerField()
    is_public = models.BooleanField(default=False)

    # From the photo's EXIF at upload (gallery/exif.py); each may be missing.
    taken_at = models.DateTimeField(null=True, blank=True, db_index=True, help_text="When the photo was taken.")
    taken_offset_minutes = models.SmallIntegerField(
        null=True, blank=True, help_text="The camera's UTC offset, when the photo records it (EXIF OffsetTimeOriginal)."
    )
    camera = models.CharField(max_length=100, blank=True)
    lens = models.CharField(max_length=100, blank=True)
    exposure_seconds = models.FloatField(null=True, blank=True)
    f_number = models.FloatField(null=True, blank=True)
    iso = models.PositiveIntegerField(null=True, blank=True)
    focal_length_mm = models.FloatField(null=True, blank=True)
    # Where it was taken: shown to its owner only, unless they share it.
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    carries_location = models.BooleanField(
        default=False, help_text="The file holds GPS or XMP: others download a copy without them."
    )
    share_location = models.BooleanField(
        default=False, help_text="Others who may see the photo may also see where it was taken."
    )
    # Where it was taken in words (gallery/places.py), named from latitude/longitude by the first
    # stage of processing; blank without a position or far from any town. As private as the position.
    place_city = models.CharField(max_length=200, blank=True)
    place_region = models.CharField(max_length=200, blank=True)
    place_country = models.CharField(max_length=200, blank=True)

    # 64-bit perceptual hash of the pixels (search/duplicates.py), stored as a signed int; set by the
    # pipeline. With the whole-image vector it tells a re-encode or rescale from a similar photo.
    perceptual_hash = models.BigIntegerField(null=True, blank=True, editable=False)

    # Processing comes in two stages (search/ingest.py), each with its own queue and claims:
    # `status` is the first (decode, thumbnail and preview, the whole-image vector): `ready` means
    # shown and searchable. `objects_status` is the second (SAM's objects), which starts once the
    # first is done. One claim, heartbeat and attempt count serve whichever stage is running.
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    objects_status = models.CharField(
        max_length=8, choices=ObjectsStatus.choices, default=ObjectsStatus.WAITING, db_index=True
    )
    progress = models.PositiveSmallIntegerField(default=0, help_text="0-100 over both stages.")
    error = models.TextField(
        blank=True,
        help_text="Why processing (or, for a searchable photo, finding its objects) failed, in words a person can act on.",
    )
    attempts = models.PositiveIntegerField(default=0, help_text="Claims in the current stage.")
    # Failed only because the model weights were missing: `run_worker` queues it again by itself
    # once they are in place (search.ingest.images_requeue_waiting_for_models).
    waiting_for_models = models.BooleanField(default=False)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    # The work-queue state (gallery/work_queue.py): when the image was last queued, which claim may
    # write its result, and the last sign of life from the worker holding that claim.
    queued_at = models.DateTimeField(null=True, blank=True)
    claim = models.UUIDField(null=True, blank=True, editable=False)
    claimed_by = models.CharField(max_length=255, blank=True, help_text="host:pid of the worker holding the claim.")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True, help_text="When the first stage ended.")
    objects_at = models.DateTimeField(null=True, blank=True, help_text="When finding objects ended.")

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # Indexed: `reprocess --failed` looks for images stuck since long ago.
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    # The same moment as the camera's clock read it (this server's clock, in TIME_ZONE, for an upload
    # time or a photo that records no offset), kept as if it were UTC: what timelines sort and group
    # by, so that a photo taken at 00:13 on 28 September in Berlin is on the 28th, wherever the
    # server is. (Immich keeps its localDateTime the same way.) Set by save() from the fields above.
    shot_local = models.DateTimeField(editable=False)
    # Deleted by its owner: in the trash until restored, or purged (files and vectors gone) after
    # TRASH_DAYS. Image.objects leaves it out.
    trashed_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Put away by its owner: off the timelines (theirs and the public one), still in search, albums,
    # favourites and share links.
    archived_at = models.DateTimeField(null=True, blank=True)

    objects = LiveImages()
    all_objects = AllImages()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "sha256"], name="image_unique_content_per_owner"),
        ]
        indexes = [
            models.Index(fields=["owner", "-created_at"]),
            models.Index(fields=["is_public", "-created_at"]),
            # The timelines ("My images", "Public") page through these, newest first.
            models.Index(fields=["owner", "-shot_local", "-id"], name="image_owner_local_timeline"),
            models.Index(fields=["is_public", "-shot_local", "-id"], name="image_public_local_timeline"),
            # Places: one's photos grouped by place, and a place's photos.
            models.Index(fields=["owner", "place_country", "place_city"], name="image_owner_place"),
        ]

    def __str__(self) -> str:
        return f"{self.original_name} ({self.owner})"

    def save(self, *args, **kwargs):
        self.shot_local = local_wall_clock(
            self.taken_at or self.created_at or timezone.now(), self.taken_offset_minutes if self.taken_at else None
        )
        if kwargs.get("update_fields") is not None and {"taken_at", "taken_offset_minutes"} & set(
            kwargs["update_fields"]
        ):
            kwargs["update_fields"] = {*kwargs["update_fields"], "shot_local"}
        super().save(*args, **kwargs)

    @property
    def taken_local(self) -> datetime | None:
        """When it was taken, in the camera's own time zone (its offset, else TIME_ZONE): what to show."""
        if self.taken_at is None:
            return None
        return self.taken_at.astimezone(camera_zone(self.taken_offset_minutes))

    @property
    def is_final(self) -> bool:
        """Both stages are over: nothing more will change by itself."""
        return self.status == self.Status.FAILED or (
            self.status == self.Status.READY
            and self.objects_status in {self.ObjectsStatus.FOUND, self.ObjectsStatus.FAILED}
        )

    @property
    def objects_failed(self) -> bool:
        """Searchable as a whole, but finding its objects failed (`error` says why)."""
        return self.status == self.Status.READY and self.objects_status == self.ObjectsStatus.FAILED

    @property
    def on_its_way(self) -> bool:
        """Queued or being processed, with signs of life: queuing it again would only add a task."""
        return not self.is_final and self.status != self.Status.FAILED and not self.looks_stuck

    def location_visible_to(self, user) -> bool:
        return self.latitude is not None and (self.owner_id == user.pk or self.share_location)

    @property
    def place(self) -> Place | None:
        """Where it was taken in words, or None. Show it only where location_visible_to says so."""
        if not self.place_city:
            return None
        return Place(city=self.place_city, region=self.place_region, country=self.place_country)

    @property
    def status_label(self) -> str:
        """'Ready', 'Processing 5%', or for a searchable photo still refined 'Searchable · finding
        objects 70%'."""
        if self.status == self.Status.PROCESSING:
            return f"{self.get_status_display()} {self.progress}%"
        if self.status == self.Status.READY:
            if self.objects_status == self.ObjectsStatus.WAITING:
                return "Searchable · objects next"
            if self.objects_status == self.ObjectsStatus.FINDING:
                return f"Searchable · finding objects {self.progress}%"
            if self.objects_status == self.ObjectsStatus.FAILED:
                return "Searchable · no objects"
        return self.get_status_display()

    @property
    def exposure_summary(self) -> str:
        """'1/250 s · f/2.8 · ISO 400 · 50 mm', from what the EXIF had."""
        parts = []
        if self.exposure_seconds:
            seconds = self.exposure_seconds
            parts.append(f"1/{round(1 / seconds)} s" if seconds < 1 else f"{seconds:g} s")
        if self.f_number:
            parts.append(f"f/{self.f_number:g}")
        if self.iso:
            parts.append(f"ISO {self.iso}")
        if self.focal_length_mm:
            parts.append(f"{self.focal_length_mm:g} mm")
        return " · ".join(parts)

    @property
    def looks_stuck(self) -> bool:
        """No sign of life for a while (a silent worker, or an enqueue that never reached the
        broker): a person may queue it again. Recovery does the same by itself."""
        from django.utils import timezone

        quiet_since = timezone.now() - timedelta(seconds=settings.PROCESSING_STALE_SECONDS)
        held = self.status == self.Status.PROCESSING or (
            self.status == self.Status.READY and self.objects_status == self.ObjectsStatus.FINDING
        )
        waiting = self.status == self.Status.PENDING or (
            self.status == self.Status.READY and self.objects_status == self.ObjectsStatus.WAITING
        )
        if held:
            return self.heartbeat_at is None or self.heartbeat_at < quiet_since
        if waiting:
            return self.queued_at is None and self.updated_at < quiet_since
        return False

    @staticmethod
    def generate_file_name(*, owner_id: int, extension: str) -> str:
        return f"originals/{owner_id}/{uuid.uuid4().hex}.{extension}"


class Region(models.Model):
    class Kind(models.TextChoices):
        GLOBAL = "global", "Whole image"
        OBJECT = "object", "Object"

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="regions")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    # Box in original-image pixels after EXIF orientation; x2/y2 exclusive.
    x1 = models.PositiveIntegerField()
    y1 = models.PositiveIntegerField()
    x2 = models.PositiveIntegerField()
    y2 = models.PositiveIntegerField()
    area_fraction = models.FloatField(help_text="Mask area / image area (1.0 for the whole image).")
    score = models.FloatField(default=1.0, help_text="Proposer confidence (SAM predicted IoU x stability).")
    # An object's likeness to the most alike other object of its photo: a cell among cells, a tile
    # among tiles, a patch of sky beside another is texture, not a thing ("more like this" leaves such
    # regions out: REPEATED_REGION_SIMILARITY).
    twin_similarity = models.FloatField(
        null=True,
        blank=True,
        help_text="Cosine similarity to the most alike other object region of the same photo (empty: none).",
    )

    embedding = models.BinaryField()
    embedding_model = models.CharField(max_length=128)
    embedding_dim = models.PositiveSmallIntegerField()

    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["image_id", "id"]
        # Index rebuilds scan one model's vectors in id order.
        indexes = [models.Index(fields=["embedding_model", "id"])]
        constraints = [
            models.CheckConstraint(condition=models.Q(x2__gt=models.F("x1")), name="region_box_has_width"),
            models.CheckConstraint(condition=models.Q(y2__gt=models.F("y1")), name="region_box_has_height"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} [{self.x1},{self.y1},{self.x2},{self.y2}] of image {self.image_id}"

    @property
    def box(self) -> list[int]:
        return [self.x1, self.y1, self.x2, self.y2]

    @property
    def vector(self) -> np.ndarray:
        return np.frombuffer(bytes(self.embedding), dtype=VECTOR_DTYPE).astype(np.float32)

    @staticmethod
    def pack_vector(vector: np.ndarray) -> bytes:
        return np.asarray(vector, dtype=VECTOR_DTYPE).tobytes()


class Tag(models.Model):
    """A label on a photo. The model's come from zero-shot CLIP on the whole photo and each object
    (search/tagging.py) and go with their region when the photo is processed again; a person's are
    image-wide and win: `removed` says "not this", and hides the model's tags of that label."""

    class Source(models.TextChoices):
        MODEL = "model", "Model"
        PERSON = "person", "Person"

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="tags")
    region = models.ForeignKey(Region, null=True, blank=True, on_delete=models.CASCADE, related_name="tags")
    label = models.CharField(max_length=64)
    source = models.CharField(max_length=8, choices=Source.choices)
    score = models.FloatField(null=True, blank=True, help_text="The model's zero-shot probability.")
    removed = models.BooleanField(default=False, help_text="A person said the photo is not this.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["label", "id"]
        indexes = [models.Index(fields=["label", "image"])]
        constraints = [
            models.UniqueConstraint(
                fields=["image", "label"], condition=models.Q(source="person"), name="tag_one_person_decision_per_label"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label} on image {self.image_id} ({self.source})"


class ImageChange(models.Model):
    """The change feed: one row per image whose searchable state changed, in commit order.

    Rows are written by database triggers (migration 0003), never by Python code, in the same
    transaction as the change: a Region inserted, updated or deleted, an Image deleted, or an
    Image's owner, visibility or status changed, whatever path made the change (services, the admin,
    cascades, `QuerySet.update`, raw SQL). A row says only *which* image changed; the index reads
    that image's current state when it applies the row, so applying a row twice is harmless.

    `position` grows in commit order (PostgreSQL: assigned at commit under a one-row counter lock;
    SQLite: one writer at a time), so a consumer that has seen position p has seen every row below it.
    """

    position = models.BigAutoField(primary_key=True)
    image_id = models.BigIntegerField()
    created_at = models.DateTimeField(db_default=Now(), db_index=True)

    class Meta:
        ordering = ["position"]

    def __str__(self) -> str:
        return f"#{self.position}: image {self.image_id}"


class FileToDelete(models.Model):
    """A stored file whose removal failed after its row was deleted (a read-only or unreachable media
    store): run_worker's sweep removes it once it can (gallery.services.files_delete_again)."""

    name = models.CharField(max_length=255, unique=True, help_text="The storage name (under MEDIA_ROOT).")
    failed_at = models.DateTimeField(auto_now=True)
    error = models.CharField(max_length=500, blank=True)

    def __str__(self) -> str:
        return self.name


class ProcessingPause(models.Model):
    """While a row exists, processing is paused (staff, on the jobs page or `manage.py jobs --pause`):
    workers claim no photo, and what is queued waits; resuming queues it again."""

    paused_at = models.DateTimeField(auto_now_add=True)
    paused_by = models.CharField(max_length=150, blank=True)

    def __str__(self) -> str:
        return f"paused {self.paused_at:%Y-%m-%d %H:%M} by {self.paused_by or 'someone'}"


class WorkerBeat(models.Model):
    """A running `run_worker` (one row per process, host:pid), refreshed at every recovery sweep: how
    /readyz and the staff banner know a worker is alive even while no image is being processed."""

    name = models.CharField(max_length=255, unique=True)
    seen_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.name} (seen {self.seen_at:%Y-%m-%d %H:%M:%S})"


class ApiToken(AbstractAuthToken):
    """A person's API token (django-rest-knox, KNOX_TOKEN_MODEL). Only a hash of the token is stored:
    it is shown once, when made. `token_key` (its first characters) names it in lists; it expires,
    and its owner can revoke it. Changing the password revokes them all (imgsearch.accounts)."""

    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.token_key}…) of {self.user}"


class Favourite(models.Model):
    """A person's heart on a photo they may see (theirs or a public one)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="favourites")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="favourites")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "image"], name="favourite_once_per_user")]

    def __str__(self) -> str:
        return f"{self.user} ♥ {self.image_id}"


class Album(models.Model):
    """A named set of photos its owner may see, shown to the people it is shared with and to anyone
    holding one of its links. Sharing an album shows its photos, nothing else of the owner's."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="albums")
    name = models.CharField(max_length=100)
    images = models.ManyToManyField(Image, through="AlbumItem", related_name="albums")
    cover = models.ForeignKey(
        Image,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Shown on the album list; the newest photo when empty.",
    )
    # Read-only: they see the album's photos, they cannot change the album.
    shared_with = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="albums_shared_with_me")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.owner})"


class AlbumItem(models.Model):
    album = models.ForeignKey(Album, on_delete=models.CASCADE, related_name="items")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="album_items")
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["album", "image"], name="album_item_once")]

    def __str__(self) -> str:
        return f"image {self.image_id} in album {self.album_id}"


class ShareLink(models.Model):
    """A link that opens one album to anyone holding it, until it expires or its owner revokes it."""

    album = models.ForeignKey(Album, on_delete=models.CASCADE, related_name="links")
    # 32 random bytes: unguessable; looked up by equality on a unique index.
    token = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"link to {self.album} ({self.token[:6]}…)"

    def is_active(self, now) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)
