"""The ingestion pipeline: one stored image in, its regions and vectors out, in two stages.

Searchable first, refined later (a library of 20,000 photos on a CPU must not wait ~44 hours for
SAM before the last photo can be found):

1. WHOLE (`image_process`, about half a second a photo here): claim the image and up to
   SEARCHABLE_BATCH_IMAGES - 1 more waiting ones -> open + EXIF-transpose -> keep the thumbnail and
   preview -> one CLIP batch of the whole images -> the place its GPS position names (offline,
   gallery/places.py) -> per image, one transaction writes its global region (and its tags) and
   place, marks it `ready` (shown, searchable by text, photo and "more like this")
   and queues the second stage.
2. OBJECTS (`objects_find`): claim a `ready` photo waiting for its objects (and, with
   PROCESSING_BATCH_IMAGES > 1, the next ones) -> open again -> propose regions (SAM, one encoder
   batch) -> filter -> crop -> one CLIP batch of the crops -> per image, one transaction replaces its
   object regions and tags and marks its objects `found`.

Each stage has its own task, claims and attempt budget (gallery.work_queue.Stage); a heartbeat
thread keeps a claim alive, and a claim that goes silent is recovered by
`gallery.work_queue.images_recover`, per stage. A second-stage task first takes a batch of photos
still waiting to become searchable, so a big import makes every photo searchable before any is
refined, and a photo uploaded during hours of SAM work is searchable within a task's time.

Every failure of the image itself ends its stage in `failed` with a sentence a person can act on
(a photo whose objects failed stays searchable); a database that stays away longer than
DB_RETRY_SECONDS leaves the image to recovery instead (it is not the image's fault). Nothing escapes
to the worker.
"""

import logging
from contextlib import ExitStack
from functools import partial

import numpy as np
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django.db.models import Q
from django.utils import timezone
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from gallery import media, places, storage
from gallery.jobs import FAILED_IN_EITHER_STAGE
from gallery.models import Image, Region, Tag
from gallery.services import regions_delete
from gallery.work_queue import (
    OBJECTS,
    PROGRESS_SEARCHABLE,
    WHOLE,
    Claim,
    Heartbeat,
    claim_fail,
    claim_progress,
    db_retrying,
    image_claim,
    image_enqueue,
    image_queue_again,
    images_claim_next,
    processing_paused,
)
from search.tagging import model_tags, zero_shot
from search.vision.pixels import signed_hash
from search.vision.proposers import filter_proposals, with_context
from search.vision.registry import get_clip, get_proposer, weights_missing
from search.vision.runtime import ModelUnavailable

logger = logging.getLogger(__name__)

# Progress a person sees on the image while it is processed, by step: 0-30 makes it searchable
# (PROGRESS_SEARCHABLE), 30-100 finds its objects.
PROGRESS_STARTED = 5
PROGRESS_OBJECTS_STARTED = 35
PROGRESS_PROPOSED = 70
PROGRESS_EMBEDDED = 90

# Photos the first stage takes together: one CLIP batch of whole images. Their decode is most of
# the cost, so a batch holds no photo back for long, and a killed worker gives back few.
SEARCHABLE_BATCH_IMAGES = 8

Opened = list[tuple[Claim, PILImage.Image]]


class ClaimLost(Exception):
    """Someone else owns the image now (deleted, queued again by a person, or recovered)."""


# --- Stage 1: searchable -------------------------------------------------------------------------


def image_process(*, image_id: int) -> str:
    """Make one image searchable (and the next waiting ones with it, up to SEARCHABLE_BATCH_IMAGES).
    Returns this image's status, or what happened instead: "skipped" (not pending: a duplicate task,
    or deleted), "superseded" (the claim was lost while we worked), "interrupted" (the database
    stayed away; recovery will queue it again) or "paused"."""
    if processing_paused():
        logger.info("Processing is paused: image %s waits, and is queued again on resume.", image_id)
        return "paused"
    claim = image_claim(image_id=image_id, progress=PROGRESS_STARTED)
    if claim is None:
        logger.info("Image %s is not pending (deleted, done or taken by another task); nothing to do.", image_id)
        return "skipped"
    claims = [claim] + images_claim_next(count=SEARCHABLE_BATCH_IMAGES - 1, progress=PROGRESS_STARTED)
    return images_process_claimed(claims)[image_id]


def images_process_claimed(claims: list[Claim]) -> dict[int, str]:
    """The first stage for claimed images together (one CLIP batch); each ends on its own."""
    return _run_claimed(claims, _searchable, keep_renditions=True)


def _searchable(opened: Opened, heartbeats: dict[int, Heartbeat]) -> dict[int, str]:
    clip = get_clip()
    vectors = np.asarray(clip.embed_images([rgb for _, rgb in opened]))
    found = zero_shot(vectors, clip)  # the whole photo's tags, made with its vector
    places = _places([claim.image_id for claim, _ in opened])
    outcomes: dict[int, str] = {}
    for (claim, rgb), vector, tags in zip(opened, vectors, found, strict=True):
        try:
            if heartbeats[claim.image_id].lost.is_set():
                raise ClaimLost()
            width, height = rgb.size
            region = _region(claim.image_id, Region.Kind.GLOBAL, (0, 0, width, height), 1.0, 1.0, vector, clip)
            _store_searchable(
                claim, rgb.size, region, tags, perceptual_hash=signed_hash(rgb), place=places[claim.image_id]
            )
            outcomes[claim.image_id] = Image.Status.READY
        except BaseException as error:
            outcomes[claim.image_id] = _ended_by(claim, error)
    return outcomes


def _places(image_ids: list[int]) -> dict[int, dict[str, str]]:
    """Each image's place fields, named from the position its file gave (gallery/places.py)."""
    positions = db_retrying(
        lambda: list(Image.objects.filter(pk__in=image_ids).values_list("pk", "latitude", "longitude"))
    )
    named = {pk: places.fields_at(latitude, longitude) for pk, latitude, longitude in positions}
    return {image_id: named.get(image_id, dict(places.NOWHERE)) for image_id in image_ids}


def _store_searchable(
    claim: Claim, size: tuple[int, int], region: Region, tags, *, perceptual_hash: int, place: dict[str, str]
) -> None:
    image_id = claim.image_id
    width, height = size

    def store() -> None:
        with transaction.atomic():
            if claim.rows().select_for_update().first() is None:
                raise ClaimLost()
            # Replacing, not appending, is what makes processing an image again harmless; objects
            # found in an earlier version of the file go too, and the second stage finds them anew.
            regions_delete(queryset=Region.objects.filter(image_id=image_id))
            Region.objects.bulk_create([region])
            Tag.objects.bulk_create(model_tags([region], [tags]))
            now = timezone.now()
            claim.rows().update(
                width=width,
                height=height,
                status=Image.Status.READY,
                objects_status=Image.ObjectsStatus.WAITING,
                progress=PROGRESS_SEARCHABLE,
                error="",
                claim=None,
                attempts=0,  # the second stage has a budget of its own
                queued_at=None,
                processed_at=now,
                updated_at=now,
                perceptual_hash=perceptual_hash,
                **place,
            )
            image_enqueue(image_id=image_id, stage=OBJECTS)

    db_retrying(store)
    logger.info("Image %s searchable", image_id)


# --- Stage 2: objects ------------------------------------------------------------------------------


def objects_find(*, image_id: int) -> str:
    """Find the objects in one searchable image (and, with PROCESSING_BATCH_IMAGES > 1, the next
    waiting ones). A batch of photos still waiting to become searchable goes first. Returns the
    image's objects status, or "skipped", "superseded", "interrupted" or "paused" as above."""
    if processing_paused():
        logger.info("Processing is paused: image %s waits for its objects, queued again on resume.", image_id)
        return "paused"
    searchable_first = images_claim_next(count=SEARCHABLE_BATCH_IMAGES, progress=PROGRESS_STARTED)
    if searchable_first:
        images_process_claimed(searchable_first)
    claim = image_claim(image_id=image_id, progress=PROGRESS_OBJECTS_STARTED, stage=OBJECTS)
    if claim is None:
        logger.info("Image %s is not waiting for its objects (deleted, done or taken); nothing to do.", image_id)
        return "skipped"
    claims = [claim] + images_claim_next(
        count=settings.PROCESSING_BATCH_IMAGES - 1, progress=PROGRESS_OBJECTS_STARTED, stage=OBJECTS
    )
    return objects_find_claimed(claims)[image_id]


def objects_find_claimed(claims: list[Claim]) -> dict[int, str]:
    """The second stage for claimed images together (one SAM encoder batch, one CLIP batch)."""
    return _run_claimed(claims, _objects, keep_renditions=False)


def _objects(opened: Opened, heartbeats: dict[int, Heartbeat]) -> dict[int, str]:
    proposer = get_proposer()
    clip = get_clip()
    found = proposer.propose_batch([rgb for _, rgb in opened])
    outcomes: dict[int, str] = {}
    work = []
    for (claim, rgb), proposed in zip(opened, found, strict=True):
        width, height = rgb.size
        proposals = filter_proposals(
            proposed,
            width=width,
            height=height,
            min_area_fraction=settings.REGION_MIN_AREA_FRACTION,
            nms_iou=settings.REGION_NMS_IOU,
            max_count=settings.REGION_MAX_PER_IMAGE,
        )
        if _still_ours(claim, heartbeats[claim.image_id], PROGRESS_PROPOSED):
            work.append((claim, rgb, proposals))
        else:
            outcomes[claim.image_id] = _ended_by(claim, ClaimLost())
    # One CLIP batch for the crops of every image.
    crops = [
        rgb.crop(with_context(p.box, *rgb.size, settings.REGION_CROP_CONTEXT))
        for _, rgb, proposals in work
        for p in proposals
    ]
    vectors = iter(clip.embed_images(crops) if crops else [])
    for claim, _, proposals in work:
        crop_vectors = [next(vectors) for _ in proposals]
        regions = [
            _region(claim.image_id, Region.Kind.OBJECT, p.box, p.area_fraction, p.score, vector, clip)
            for p, vector in zip(proposals, crop_vectors, strict=True)
        ]
        for region, twin in zip(regions, twin_similarities(np.asarray(crop_vectors)), strict=True):
            region.twin_similarity = None if np.isnan(twin) else float(twin)
        try:
            if not _still_ours(claim, heartbeats[claim.image_id], PROGRESS_EMBEDDED):
                raise ClaimLost()
            _store_objects(claim, regions, zero_shot(np.asarray(crop_vectors), clip))
            outcomes[claim.image_id] = Image.ObjectsStatus.FOUND
        except BaseException as error:
            outcomes[claim.image_id] = _ended_by(claim, error)
    return outcomes


def _store_objects(claim: Claim, regions: list[Region], found) -> None:
    """Replace the image's object regions and their tags (`found`, zero_shot's answer for them)."""
    image_id = claim.image_id

    def store() -> None:
        with transaction.atomic():
            if claim.rows().select_for_update().first() is None:
                raise ClaimLost()
            regions_delete(queryset=Region.objects.filter(image_id=image_id, kind=Region.Kind.OBJECT))
            Region.objects.bulk_create(regions)
            Tag.objects.bulk_create(model_tags(regions, found))
            now = timezone.now()
            claim.rows().update(
                objects_status=Image.ObjectsStatus.FOUND,
                progress=100,
                error="",
                claim=None,
                objects_at=now,
                updated_at=now,
            )

    db_retrying(store)
    logger.info("Image %s: %d object regions", image_id, len(regions))


# --- Both ----------------------------------------------------------------------------------------


def _run_claimed(claims: list[Claim], stage_work, *, keep_renditions: bool) -> dict[int, str]:
    """Open each claimed image (a heartbeat each meanwhile), run `stage_work` on those that opened;
    every claim ends with an outcome, whatever fails."""
    outcomes: dict[int, str] = {}
    with ExitStack() as stack:
        heartbeats = {claim.image_id: stack.enter_context(Heartbeat(claim)) for claim in claims}
        opened = []
        for claim in claims:
            try:
                image = db_retrying(partial(Image.objects.get, pk=claim.image_id))
                rgb = _decoded(image)
                if keep_renditions:
                    media.renditions_keep(image, rgb)  # the thumbnail and preview, from this one decode
                opened.append((claim, rgb))
            except BaseException as error:
                outcomes[claim.image_id] = _ended_by(claim, error)
        if opened:
            try:
                outcomes.update(stage_work(opened, heartbeats))
            except BaseException as error:
                for claim, _ in opened:
                    outcomes[claim.image_id] = _ended_by(claim, error)
    return outcomes


class LibraryFileUnreadable(Exception):
    """A library's file that does not decode: a scan checks only its headers (gallery.libraries)."""


def _decoded(image: Image) -> PILImage.Image:
    try:
        return storage.read_rgb(image.file)
    except (UnidentifiedImageError, SyntaxError, ValueError, OSError) as error:
        if image.library_id is None or isinstance(error, FileNotFoundError):
            raise
        where = image.file.split("/", 2)[-1]
        raise LibraryFileUnreadable(
            f"The file {where} in the library folder is truncated or corrupt and cannot be decoded "
            f"({' '.join(str(error).split())}); replace it there with a good copy, or remove it."
        ) from error


def twin_similarities(vectors: np.ndarray) -> np.ndarray:
    """For each of a photo's object vectors (unit rows), its cosine similarity to the most alike other
    one (NaN where it is alone): Region.twin_similarity."""
    if len(vectors) < 2:
        return np.full(len(vectors), np.nan)
    similarities = vectors @ vectors.T
    np.fill_diagonal(similarities, -np.inf)
    return similarities.max(axis=1)


def _region(image_id: int, kind: str, box, area_fraction: float, score: float, vector, clip) -> Region:
    return Region(
        image_id=image_id,
        kind=kind,
        x1=box[0],
        y1=box[1],
        x2=box[2],
        y2=box[3],
        area_fraction=area_fraction,
        score=score,
        embedding=Region.pack_vector(vector),
        embedding_model=clip.name,
        embedding_dim=clip.dim,
    )


def _still_ours(claim: Claim, heartbeat: Heartbeat, progress: int) -> bool:
    return not heartbeat.lost.is_set() and claim_progress(claim, progress)


def _ended_by(claim: Claim, error: BaseException) -> str:
    """Record how an error ended this image's attempt, and say so."""
    image_id = claim.image_id
    if isinstance(error, (KeyboardInterrupt, SystemExit)):
        raise error
    if isinstance(error, ClaimLost):
        logger.info("Image %s: claim lost while processing; the result is discarded.", image_id)
        return "superseded"
    if isinstance(error, Image.DoesNotExist):  # deleted, or moved to the trash, after it was claimed
        logger.info("Image %s went (deleted or to the trash) while it was processed; nothing to do.", image_id)
        return "superseded"
    if isinstance(error, (OperationalError, InterfaceError)):
        logger.error("Image %s: the database is unavailable (%s); leaving it to recovery.", image_id, error)
        return "interrupted"
    logger.error("Image %s: stage %s failed", image_id, claim.stage.name, exc_info=error)
    try:
        claim_fail(claim, failure_message(error), waiting_for_models=isinstance(error, ModelUnavailable))
    except DatabaseError:
        logger.exception("Image %s: could not record the failure; leaving it to recovery.", image_id)
        return "interrupted"
    return claim.stage.failed


MODELS_MISSING_MESSAGE = (
    "The server's recognition models are not installed yet. Nothing to do on your side: "
    "this photo is processed by itself once they are."
)


def failure_message(error: BaseException) -> str:
    """A sentence for the image page: what went wrong and what to do about it."""
    if isinstance(error, ModelUnavailable):
        # The fix (paths, commands) is for whoever runs the server: it is in the worker log, on the
        # staff banner and in /readyz. The owner learns that nothing is needed from them.
        return MODELS_MISSING_MESSAGE
    if isinstance(error, LibraryFileUnreadable):
        return str(error)
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


def images_requeue_waiting_for_models() -> list[int]:
    """Queue again the images that failed only because model weights were missing, once every
    configured weight file is in place (fetch_models finished, a file was copied in), from the stage
    that failed: a searchable photo whose objects waited for SAM stays searchable meanwhile. While
    any is still missing nothing happens; a person's own Retry in between wins (conditional updates)."""
    still_waiting = Q(waiting_for_models=True) & FAILED_IN_EITHER_STAGE
    waiting = Image.objects.filter(still_waiting)
    if not waiting.exists() or weights_missing():
        return []
    requeued = [
        image_id
        for image_id, status in waiting.values_list("pk", "status")
        if image_queue_again(
            image_id=image_id, only_if=still_waiting, stage=OBJECTS if status == Image.Status.READY else WHOLE
        )
    ]
    if requeued:
        logger.warning("The model weights are in place: queued %d image(s) that waited for them.", len(requeued))
    return requeued
