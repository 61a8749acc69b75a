"""The ingestion pipeline: one stored image in, its regions and vectors out.

claim the image (and, with PROCESSING_BATCH_IMAGES > 1, the next pending ones) -> open +
EXIF-transpose -> propose regions (SAM, one encoder batch) -> filter -> crop -> one CLIP batch (each
whole image first, then its crops) -> per image, one transaction replaces its regions and marks it
ready, if the claim is still ours. A heartbeat thread keeps the claim alive meanwhile; a claim that
goes silent is recovered by `gallery.work_queue.images_recover`.

Every failure of the image itself ends in `failed` with a sentence a person can act on; a database
that stays away longer than DB_RETRY_SECONDS leaves the image to recovery instead (it is not the
image's fault). Nothing escapes to the worker.
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

from gallery import media, storage
from gallery.models import Image, Region, Tag
from gallery.services import regions_delete
from gallery.work_queue import (
    Claim,
    Heartbeat,
    claim_fail,
    claim_progress,
    db_retrying,
    image_claim,
    image_queue_again,
    images_claim_next,
    processing_paused,
)
from search.tagging import model_tags, zero_shot
from search.vision.pixels import signed_hash
from search.vision.proposers import filter_proposals
from search.vision.registry import get_clip, get_proposer, weights_missing
from search.vision.runtime import ModelUnavailable

logger = logging.getLogger(__name__)

# Progress a person sees on the image while it is processed, by stage.
PROGRESS_STARTED = 5
PROGRESS_PROPOSED = 60
PROGRESS_EMBEDDED = 90


class ClaimLost(Exception):
    """Someone else owns the image now (deleted, queued again by a person, or recovered)."""


def image_process(*, image_id: int) -> str:
    """Segment and embed one image (and, with PROCESSING_BATCH_IMAGES > 1, the next pending ones
    with it). Returns this image's final status, or what happened instead: "skipped" (not pending:
    a duplicate task, or deleted), "superseded" (the claim was lost while we worked) or
    "interrupted" (the database stayed away; recovery will queue it again)."""
    if processing_paused():
        logger.info("Processing is paused: image %s waits, and is queued again on resume.", image_id)
        return "paused"
    claim = image_claim(image_id=image_id, progress=PROGRESS_STARTED)
    if claim is None:
        logger.info("Image %s is not pending (deleted, done or taken by another task); nothing to do.", image_id)
        return "skipped"
    claims = [claim] + images_claim_next(count=settings.PROCESSING_BATCH_IMAGES - 1, progress=PROGRESS_STARTED)
    return images_process_claimed(claims)[image_id]


def images_process_claimed(claims: list[Claim]) -> dict[int, str]:
    """Process claimed images together (one SAM encoder batch, one CLIP batch); each ends on its own."""
    outcomes: dict[int, str] = {}
    with ExitStack() as stack:
        heartbeats = {claim.image_id: stack.enter_context(Heartbeat(claim)) for claim in claims}
        opened = []
        for claim in claims:
            try:
                image = db_retrying(partial(Image.objects.get, pk=claim.image_id))
                rgb = storage.read_rgb(image.file)
                media.renditions_keep(image, rgb)  # the thumbnail and preview, from this one decode
                opened.append((claim, rgb))
            except BaseException as error:
                outcomes[claim.image_id] = _ended_by(claim, error)
        if opened:
            try:
                outcomes.update(_process(opened, heartbeats))
            except BaseException as error:
                for claim, _ in opened:
                    outcomes[claim.image_id] = _ended_by(claim, error)
    return outcomes


def _process(opened: list[tuple[Claim, PILImage.Image]], heartbeats: dict[int, Heartbeat]) -> dict[int, str]:
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
    # One CLIP batch for every image: each whole image first, then its crops.
    pictures = [picture for _, rgb, proposals in work for picture in [rgb] + [rgb.crop(p.box) for p in proposals]]
    vectors = iter(clip.embed_images(pictures))
    for claim, rgb, proposals in work:
        image_vectors = [next(vectors) for _ in range(1 + len(proposals))]
        try:
            if not _still_ours(claim, heartbeats[claim.image_id], PROGRESS_EMBEDDED):
                raise ClaimLost()
            _store(claim, rgb.size, proposals, image_vectors, clip, perceptual_hash=signed_hash(rgb))
            outcomes[claim.image_id] = Image.Status.READY
        except BaseException as error:
            outcomes[claim.image_id] = _ended_by(claim, error)
    return outcomes


def _store(claim: Claim, size: tuple[int, int], proposals, vectors, clip, *, perceptual_hash: int) -> None:
    image_id = claim.image_id
    width, height = size

    def region(kind: str, box, area_fraction: float, score: float, vector) -> Region:
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

    regions = [region(Region.Kind.GLOBAL, (0, 0, width, height), 1.0, 1.0, vectors[0])]
    regions += [
        region(Region.Kind.OBJECT, p.box, p.area_fraction, p.score, vector)
        for p, vector in zip(proposals, vectors[1:], strict=True)
    ]
    found = zero_shot(np.stack(vectors), clip)  # tags for each region, made with them

    def store() -> None:
        with transaction.atomic():
            if claim.rows().select_for_update().first() is None:
                raise ClaimLost()
            # Replacing, not appending, is what makes processing an image again harmless.
            regions_delete(queryset=Region.objects.filter(image_id=image_id))
            Region.objects.bulk_create(regions)
            Tag.objects.bulk_create(model_tags(regions, found))
            now = timezone.now()
            claim.rows().update(
                width=width,
                height=height,
                status=Image.Status.READY,
                progress=100,
                error="",
                claim=None,
                processed_at=now,
                updated_at=now,
                perceptual_hash=perceptual_hash,
            )

    db_retrying(store)
    logger.info("Image %s ready with %d object regions", image_id, len(proposals))


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
    logger.error("Processing image %s failed", image_id, exc_info=error)
    try:
        claim_fail(claim, failure_message(error), waiting_for_models=isinstance(error, ModelUnavailable))
    except DatabaseError:
        logger.exception("Image %s: could not record the failure; leaving it to recovery.", image_id)
        return "interrupted"
    return Image.Status.FAILED


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
    configured weight file is in place (fetch_models finished, a file was copied in). While any is
    still missing nothing happens; a person's own Retry in between wins (conditional updates)."""
    still_waiting = Q(status=Image.Status.FAILED, waiting_for_models=True)
    waiting = Image.objects.filter(still_waiting)
    if not waiting.exists() or weights_missing():
        return []
    requeued = [
        image_id
        for image_id in waiting.values_list("pk", flat=True)
        if image_queue_again(image_id=image_id, only_if=still_waiting)
    ]
    if requeued:
        logger.warning("The model weights are in place: queued %d image(s) that waited for them.", len(requeued))
    return requeued
