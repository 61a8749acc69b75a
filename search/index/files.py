"""The index on disk: one directory per embedding model under INDEX_DIR, holding

    seg-<name>.faiss       float16 codes of some regions (FAISS IndexScalarQuantizer), never changed
    seg-<name>.slots.npy   per slot of that segment: region id, image id, whole-image flag
    gen-<N>.json           generation N: its segments, the feed position it has applied, model, dim
    gen-<N>.npz            generation N's alive bits per segment slot and its image mirror
                           (owner, public, ready per image id)
    CURRENT                the generation readers should use; replaced atomically, last
    writer.lock            held by the one process that writes (search.index.writer)

Segments are written once (write_segment) and then only read, memory-mapped (Segment). Every file
is written to a temporary name, flushed to disk and renamed into place.
"""

import errno
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from django.conf import settings

FORMAT_VERSION = 3
# An IVF segment scans an eighth of its lists unless INDEX_IVF_NPROBE says otherwise: recall@10 0.90-0.98
# on the hardest clustered data measured at 5M vectors, 1.0 on topic-shaped data (bench/README.md).
IVF_DEFAULT_NPROBE_DIVISOR = 8
CURRENT_NAME = "CURRENT"
LOCK_NAME = "writer.lock"


# k-means training sample per inverted list of an IVF segment (FAISS wants at least 39).
IVF_TRAIN_PER_LIST = 64


class CorruptIndex(RuntimeError):
    """A generation's files are missing, foreign or do not match their manifest."""


def model_directory(root: Path, model_name: str) -> Path:
    return Path(root) / re.sub(r"[^A-Za-z0-9_.-]+", "_", model_name)


def generation_paths(directory: Path, number: int) -> tuple[Path, Path]:
    """(manifest, state) files of generation `number`."""
    return directory / f"gen-{number:08d}.json", directory / f"gen-{number:08d}.npz"


def segment_paths(directory: Path, name: str) -> tuple[Path, Path]:
    """(codes, slots) files of segment `name`."""
    return directory / f"seg-{name}.faiss", directory / f"seg-{name}.slots.npy"


def read_current(directory: Path) -> tuple[int, str] | None:
    """(number, id) of the published generation, or None when nothing was published.

    The id is a random token, so two generations are told apart even if numbering restarts.
    """
    try:
        current = json.loads((directory / CURRENT_NAME).read_text())
        return int(current["generation"]), str(current["id"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as error:
        raise CorruptIndex(f"{directory / CURRENT_NAME} is unreadable ({error}).") from None


class Segment:
    """Some regions' codes and slots, memory-mapped read-only. Segments never change once written."""

    def __init__(self, directory: Path, name: str, *, dim: int, kind: str = "flat"):
        import faiss

        self.name = name
        self.kind = kind
        codes_path, slots_path = segment_paths(directory, name)
        # Flat codes and an IVF's inverted lists are mapped read-only by different FAISS flags.
        flags = faiss.IO_FLAG_MMAP_IFC if kind == "flat" else faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY
        try:
            self.index: Any = faiss.read_index(str(codes_path), flags)
            slots = np.load(slots_path, mmap_mode="r")
        except FileNotFoundError as error:
            raise CorruptIndex(f"segment {name} is missing ({error.filename}).") from None
        except (RuntimeError, ValueError, OSError) as error:
            raise CorruptIndex(f"segment {name} is unreadable ({error}).") from None
        if kind not in ("flat", "ivf") or isinstance(self.index, faiss.IndexIVF) != (kind == "ivf"):
            raise CorruptIndex(f"segment {name} is not the {kind} segment its manifest says.")
        if self.index.d != dim or slots.ndim != 2 or slots.shape != (3, self.index.ntotal):
            raise CorruptIndex(f"segment {name} does not match its manifest.")
        self.region_ids = slots[0]
        self.image_ids = slots[1]
        self.is_global = slots[2].astype(bool)

    def __len__(self) -> int:
        return self.index.ntotal

    def scan(self, queries: np.ndarray, k: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, region ids, -1 padded) among the slots `mask` allows."""
        import faiss

        bitmap = np.packbits(mask, bitorder="little")
        selector = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bitmap))
        # faiss's Python layer adds keyword constructors that its bundled type stubs do not declare.
        params: Any
        if self.kind == "ivf":
            nprobe = settings.INDEX_IVF_NPROBE or max(1, self.index.nlist // IVF_DEFAULT_NPROBE_DIVISOR)
            params = faiss.SearchParametersIVF(sel=selector, nprobe=min(nprobe, self.index.nlist))  # type: ignore[call-arg]
        else:
            params = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]
        scores, slots = self.index.search(queries, min(k, len(mask)), params=params)
        return scores, np.where(slots >= 0, self.region_ids[np.maximum(slots, 0)], -1)

    def vectors(self, slots: np.ndarray) -> np.ndarray:
        """The stored vectors of these slots (float16 codes decoded exactly)."""
        if len(slots) == 0:
            return np.zeros((0, self.index.d), dtype=np.float32)
        return self.index.reconstruct_batch(np.ascontiguousarray(slots, dtype=np.int64))


def fsync_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write `path` through a temporary file, flushed to disk, then renamed into place."""
    fsync_save(path, lambda temporary: _write_with(temporary, write))


def _write_with(path: Path, write: Callable[[BinaryIO], object]) -> None:
    with open(path, "wb") as handle:
        write(handle)


# How FAISS's C++ writer reports a failed write: in its message, as strerror() put it.
FILE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO)


def faiss_write(index, path: Path) -> None:
    """faiss.write_index, failing as a file write does: an OSError with its errno (a full disk is
    ENOSPC), where FAISS raises a RuntimeError that names the cause only in its text."""
    import faiss

    try:
        faiss.write_index(index, str(path))
    except RuntimeError as error:
        for code in FILE_ERRORS:
            if f"({os.strerror(code)})" in str(error):
                raise OSError(code, os.strerror(code), str(path)) from error
        raise


def fsync_save(path: Path, save: Callable[[Path], None]) -> None:
    """`save(temporary)`, flush that file to disk, rename it to `path`."""
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        save(temporary)
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_segment(directory: Path, region_ids, image_ids, is_global, vectors: np.ndarray, *, dim: int) -> Segment:
    """Write a new immutable segment and open it read-only.

    Up to INDEX_IVF_MIN_SLOTS slots it is an exhaustive float16 scan (exact). From there on it is an
    inverted file: sqrt(n) k-means lists, of which a search scans INDEX_IVF_NPROBE, so a query reads
    a fraction of the segment and the index can outgrow the page cache (recall measured in
    bench/README.md). Both keep float16 codes that decode to the stored vectors exactly.
    """
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, dim)
    name = f"{int(time.time() * 1000):x}-{secrets.token_hex(4)}"
    codes_path, slots_path = segment_paths(directory, name)
    index: Any  # faiss's stubs know neither DirectMap nor the IVF index's methods
    if len(vectors) >= settings.INDEX_IVF_MIN_SLOTS:
        kind, lists = "ivf", ivf_list_count(len(vectors))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, dim, lists, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT, False
        )  # codes of the vectors themselves
        sample = np.random.default_rng(len(vectors)).choice(
            len(vectors), min(len(vectors), IVF_TRAIN_PER_LIST * lists), replace=False
        )
        index.train(vectors[np.sort(sample)])
        index.set_direct_map_type(faiss.DirectMap.Array)  # type: ignore[attr-defined]  # slot -> code, for merges
    else:
        kind = "flat"
        index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    index.add(vectors)
    slots = np.stack(
        [
            np.asarray(region_ids, dtype=np.int64),
            np.asarray(image_ids, dtype=np.int64),
            np.asarray(is_global, dtype=np.int64),
        ]
    )
    fsync_save(codes_path, lambda temporary: faiss_write(index, temporary))
    fsync_write(slots_path, lambda handle: np.save(handle, slots))
    return Segment(directory, name, dim=dim, kind=kind)


def ivf_list_count(slots: int) -> int:
    return int(min(65_536, max(16, round(np.sqrt(slots)))))
