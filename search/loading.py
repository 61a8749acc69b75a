"""Models load once per process, lazily, behind a lock; tests reset them with `reset_models()`.

torch, open_clip and segment_anything are imported inside functions so that migrate, the admin
and the test collector never pay for them.
"""
import logging
import threading
from pathlib import Path
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    from search.clip import ClipEmbedder
    from search.proposers import RegionProposer

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_clip: "ClipEmbedder | None" = None
_proposer: "RegionProposer | None" = None


class ModelUnavailable(RuntimeError):
    """Weights are missing or unreadable; str(error) says what to run or where to put a file."""


# Random-weight models (tests, benchmarks) must be the same in every process: the worker's stored
# vectors and the web process's query vectors come from separate loads.
RANDOM_INIT_SEED = 0


@contextmanager
def seeded_random_init():
    """Build models under a fixed seed without disturbing anyone else's random state."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        yield


def quantize_int8(module):
    """int8 dynamic quantisation of a module's Linear layers (CPU only; opt-in with MODEL_INT8).

    Returns the module unchanged on a GPU or when MODEL_INT8 is off.
    """
    import warnings

    import torch

    if not settings.MODEL_INT8 or torch_device() != "cpu":
        return module
    with warnings.catch_warnings():
        # torch 2.14 points eager-mode quantisation at torchao; it still works, and torchao is not in our stack.
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)


def reduced_precision():
    """torch.autocast to bfloat16 while MODEL_BF16 is on (opt-in), else a context that does nothing.

    Pays on CUDA and on CPUs with AVX512-BF16 or AMX; elsewhere bfloat16 is emulated and slower.
    """
    import torch

    if not settings.MODEL_BF16:
        return nullcontext()
    return torch.autocast(device_type=torch.device(torch_device()).type, dtype=torch.bfloat16)


def torch_device() -> str:
    import torch

    if settings.MODEL_DEVICE != "auto":
        return settings.MODEL_DEVICE
    return "cuda" if torch.cuda.is_available() else "cpu"


def weights_missing() -> dict[str, str]:
    """What the configured models lack: {"clip" or "sam": a sentence with the fix}; {} when all is in place.

    Looks for files only: nothing is loaded or downloaded. Used by /readyz, the staff banner and
    the worker, which then queues again the images that failed for missing weights.
    """
    from search.clip import clip_weights, register_model_configs
    from search.proposers import sam_checkpoint_problem

    missing = {}
    register_model_configs()
    try:
        clip_weights(model_name=settings.CLIP_MODEL, pretrained=settings.CLIP_PRETRAINED, checkpoint=settings.CLIP_CHECKPOINT,
                     cache_dir=settings.MODEL_CACHE_DIR / "clip", download=False)
    except ModelUnavailable as error:
        missing["clip"] = f"CLIP: {error}"
    if settings.REGION_PROPOSER == "sam":
        problem = sam_checkpoint_problem(model_type=settings.SAM_MODEL_TYPE, checkpoint=settings.SAM_CHECKPOINT)
        if problem:
            missing["sam"] = f"SAM: {problem}"
    if settings.REGION_PROPOSER == "colour+objectness" and not Path(settings.OBJECTNESS_WEIGHTS).is_file():
        missing["objectness"] = (f"Objectness: the weights are missing (looked for {settings.OBJECTNESS_WEIGHTS}); "
                                 f"run `python manage.py train_demo_proposer`.")
    return missing


def configure_torch() -> None:
    import torch

    if settings.TORCH_THREADS:
        torch.set_num_threads(settings.TORCH_THREADS)


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of handing it back to the OS at once.

    By default every allocation over 32 MB (SAM's activations for a batch of prompts, the encoder's
    attention blocks) is a fresh mmap whose pages the kernel faults in and zeroes on first touch;
    on this CPU that cost as much as SAM's arithmetic (bench/README.md). With mmap off and a high
    trim threshold, such memory is reused from the heap; the process keeps its peak size.
    Returns False where the C library has no mallopt (not glibc).
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # from glibc's malloc.h
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**31 - 1))


def get_clip() -> "ClipEmbedder":
    global _clip
    if _clip is None:
        with _lock:
            if _clip is None:
                from search.clip import load_clip

                configure_torch()
                _clip = load_clip()
    return _clip


def get_proposer() -> "RegionProposer":
    global _proposer
    if _proposer is None:
        with _lock:
            if _proposer is None:
                from search.proposers import load_proposer

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
