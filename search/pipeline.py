"""The ingestion pipeline: one stored image in, its regions and vectors out.

open + EXIF-transpose -> propose regions (SAM) -> filter -> crop -> one CLIP batch (whole image
first, then the crops) -> one transaction replaces the image's regions and marks it ready.
Every failure ends in `failed` with a sentence a person can act on; nothing escapes to the worker.
"""
import logging

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from PIL import UnidentifiedImageError

from gallery.imaging import open_rgb
from gallery.models import Image, Region
from gallery.services import media_path, regions_delete
from search.loading import ModelUnavailable, get_clip, get_proposer
from search.proposers import filter_proposals

logger = logging.getLogger(__name__)

# Progress a person sees on the image while it is processed, by stage.
PROGRESS_STARTED = 5
PROGRESS_PROPOSED = 60
PROGRESS_EMBEDDED = 90


def image_process(*, image_id: int) -> str:
    """Segment and embed one image. Returns its final status, or "missing" if it was deleted."""
    claimed = Image.objects.filter(pk=image_id).update(
        status=Image.Status.PROCESSING,
        progress=PROGRESS_STARTED,
        error="",
        attempts=F("attempts") + 1,
        processing_started_at=timezone.now(),
        updated_at=timezone.now(),
    )
    if not claimed:
        logger.info("Image %s was deleted before processing; nothing to do.", image_id)
        return "missing"
    try:
        return _process(image_id)
    except BaseException as error:  # the worker must outlive any one image, even MemoryError
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        logger.exception("Processing image %s failed", image_id)
        Image.objects.filter(pk=image_id).update(
            status=Image.Status.FAILED,
            progress=0,
            error=failure_message(error),
            processed_at=timezone.now(),
            updated_at=timezone.now(),
        )
        return Image.Status.FAILED


def _process(image_id: int) -> str:
    image = Image.objects.get(pk=image_id)
    proposer = get_proposer()
    clip = get_clip()
    rgb = open_rgb(media_path(image.file))
    width, height = rgb.size
    proposals = filter_proposals(
        proposer.propose(rgb),
        width=width,
        height=height,
        min_area_fraction=settings.REGION_MIN_AREA_FRACTION,
        nms_iou=settings.REGION_NMS_IOU,
        max_count=settings.REGION_MAX_PER_IMAGE,
    )
    _set_progress(image_id, PROGRESS_PROPOSED)
    vectors = clip.embed_images([rgb] + [rgb.crop(p.box) for p in proposals])
    _set_progress(image_id, PROGRESS_EMBEDDED)

    def region(kind: str, box, area_fraction: float, score: float, vector) -> Region:
        return Region(
            image_id=image_id, kind=kind, x1=box[0], y1=box[1], x2=box[2], y2=box[3],
            area_fraction=area_fraction, score=score, embedding=Region.pack_vector(vector),
            embedding_model=clip.name, embedding_dim=clip.dim,
        )

    regions = [region(Region.Kind.GLOBAL, (0, 0, width, height), 1.0, 1.0, vectors[0])]
    regions += [
        region(Region.Kind.OBJECT, p.box, p.area_fraction, p.score, vector)
        for p, vector in zip(proposals, vectors[1:])
    ]
    with transaction.atomic():
        locked = Image.objects.select_for_update().filter(pk=image_id).first()
        if locked is None:  # deleted while we were computing
            return "missing"
        # Replacing, not appending, is what makes running the task twice harmless.
        regions_delete(queryset=Region.objects.filter(image_id=image_id))
        Region.objects.bulk_create(regions)
        locked.width, locked.height = width, height
        locked.status = Image.Status.READY
        locked.progress = 100
        locked.error = ""
        locked.processed_at = timezone.now()
        locked.save(update_fields=["width", "height", "status", "progress", "error", "processed_at", "updated_at"])
    logger.info("Image %s ready with %d object regions", image_id, len(proposals))
    return Image.Status.READY


def _set_progress(image_id: int, progress: int) -> None:
    Image.objects.filter(pk=image_id).update(progress=progress, updated_at=timezone.now())


def failure_message(error: BaseException) -> str:
    """A sentence for the image page: what went wrong and what to do about it."""
    if isinstance(error, ModelUnavailable):
        return f"The models are not available: {error}"
    if isinstance(error, FileNotFoundError):
        return "The stored file is missing from the server; delete this image and upload it again."
    if isinstance(error, (UnidentifiedImageError, OSError, SyntaxError)) and "image" in str(error).lower():
        return f"The stored image could not be decoded ({error}); delete it and upload a good copy."
    if isinstance(error, MemoryError) or "out of memory" in str(error).lower():
        return (
            "The worker ran out of memory on this image. Retry when the server is less busy, or lower "
            "SAM_MAX_SIDE / SAM_POINTS_PER_BATCH."
        )
    return f"Processing failed unexpectedly ({type(error).__name__}: {error}). Retry; if it fails again, check the worker log."
