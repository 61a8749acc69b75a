"""How models run in this process: the device, reduced precision, int8, seeded random weights and the
allocator policy; and ModelUnavailable, what every loader raises when weights are missing.

torch is imported inside the functions, so that importing this module costs nothing.
"""

from contextlib import contextmanager, nullcontext

from django.conf import settings


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
