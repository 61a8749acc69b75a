"""The model registry: which models this process uses, loaded once, lazily, behind a lock.

`get_clip()` and `get_proposer()` build the configured CLIP and region proposer on first use;
`preload_clip()` starts building CLIP on a thread of its own (web processes, at start);
`reset_models()` forgets them (tests change the profile). `weights_missing()` says what the
configured models lack without loading anything.

torch, open_clip and segment_anything are imported inside functions so that migrate, the admin
and the test collector never pay for them.
"""

import logging
import threading
from pathlib import Path

from django.conf import settings

from search.vision.clip import ClipEmbedder, clip_weights, load_clip, register_model_configs
from search.vision.objectness import ObjectnessProposer, load_objectness
from search.vision.proposers import ColourProposer, JoinedProposer, RegionProposer
from search.vision.runtime import ModelUnavailable, configure_torch, keep_freed_memory, torch_device
from search.vision.sam import SamProposer, load_sam_model, sam_checkpoint_problem

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_clip: ClipEmbedder | None = None
_proposer: RegionProposer | None = None
_preloading = threading.Event()


def get_clip() -> ClipEmbedder:
    global _clip
    if _clip is None:
        with _lock:
            if _clip is None:
                configure_torch()
                _clip = load_clip()
    return _clip


def preload_clip() -> threading.Thread:
    """Load CLIP on a thread of its own, so that the process answers requests (/healthz, pages) while it
    loads, a minute for the default model; a search meanwhile waits for it in get_clip()."""

    def load() -> None:
        try:
            get_clip()
        except ModelUnavailable as error:  # missing weights: the app still serves; searches answer 503
            logger.warning("CLIP not loaded: %s", error)
        finally:
            _preloading.clear()

    _preloading.set()
    thread = threading.Thread(target=load, name="load-clip", daemon=True)
    thread.start()
    return thread


def clip_loading() -> bool:
    """Whether preload_clip() is still at work in this process."""
    return _preloading.is_set()


def get_proposer() -> RegionProposer:
    global _proposer
    if _proposer is None:
        with _lock:
            if _proposer is None:
                configure_torch()
                # Only processes that segment (the worker) do the bulk model work this pays for; a
                # web process, which loads CLIP alone for queries, keeps handing memory back.
                if settings.MALLOC_KEEP_FREED:
                    keep_freed_memory()
                _proposer = load_proposer()
    return _proposer


def reset_models() -> None:
    global _clip, _proposer
    with _lock:
        _clip = None
        _proposer = None


def load_proposer() -> RegionProposer:
    """The region proposer REGION_PROPOSER names, built afresh."""
    if settings.REGION_PROPOSER == "colour":
        return ColourProposer(min_area_fraction=settings.REGION_MIN_AREA_FRACTION)
    if settings.REGION_PROPOSER == "colour+objectness":
        return JoinedProposer(
            ColourProposer(min_area_fraction=settings.REGION_MIN_AREA_FRACTION),
            ObjectnessProposer(
                load_objectness(settings.OBJECTNESS_WEIGHTS), min_area_fraction=settings.REGION_MIN_AREA_FRACTION
            ),
        )
    if settings.REGION_PROPOSER != "sam":
        raise ModelUnavailable(
            f"REGION_PROPOSER={settings.REGION_PROPOSER!r}; choose sam, colour or colour+objectness."
        )
    model = load_sam_model(model_type=settings.SAM_MODEL_TYPE, checkpoint=settings.SAM_CHECKPOINT)
    logger.info("Loaded SAM %s on %s", settings.SAM_MODEL_TYPE, torch_device())
    return SamProposer(
        model,
        points_per_side=settings.SAM_POINTS_PER_SIDE,
        points_per_batch=settings.SAM_POINTS_PER_BATCH,
        pred_iou_thresh=settings.SAM_PRED_IOU_THRESH,
        stability_score_thresh=settings.SAM_STABILITY_SCORE_THRESH,
        box_nms_thresh=settings.SAM_BOX_NMS_THRESH,
        min_mask_region_area=settings.SAM_MIN_MASK_REGION_AREA,
        max_side=settings.SAM_MAX_SIDE,
    )


def weights_missing() -> dict[str, str]:
    """What the configured models lack: {"clip" or "sam": a sentence with the fix}; {} when all is in place.

    Looks for files only: nothing is loaded or downloaded. Used by /readyz, the staff banner and
    the worker, which then queues again the images that failed for missing weights.
    """
    missing = {}
    register_model_configs()
    try:
        clip_weights(
            model_name=settings.CLIP_MODEL,
            pretrained=settings.CLIP_PRETRAINED,
            checkpoint=settings.CLIP_CHECKPOINT,
            cache_dir=settings.MODEL_CACHE_DIR / "clip",
            download=False,
        )
    except ModelUnavailable as error:
        missing["clip"] = f"CLIP: {error}"
    if settings.REGION_PROPOSER == "sam":
        problem = sam_checkpoint_problem(model_type=settings.SAM_MODEL_TYPE, checkpoint=settings.SAM_CHECKPOINT)
        if problem:
            missing["sam"] = f"SAM: {problem}"
    if settings.REGION_PROPOSER == "colour+objectness" and not Path(settings.OBJECTNESS_WEIGHTS).is_file():
        missing["objectness"] = (
            f"Objectness: the weights are missing (looked for {settings.OBJECTNESS_WEIGHTS}); "
            f"run `python manage.py train_demo_proposer`."
        )
    return missing
