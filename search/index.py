"""The FAISS vector index: a per-process cache of the region vectors stored in the database.

FAISS ids are Region primary keys. The database is the truth; this index catches up with it:

* additions: every `sync()` reads regions with an id above the highest one seen. An id below
  that watermark may still appear later (its transaction committed after a later one), so ids
  skipped by the watermark are kept as "gaps" and looked for again until INDEX_GAP_TTL_SECONDS;
* deletions: `gallery.services.regions_delete` writes a RegionTombstone per region, read the
  same way; results are also re-checked against the database by the caller, so a tombstone seen
  late can cost a result slot but never return a deleted region.

The index is saved atomically (temp file + rename) with a JSON manifest; a missing, foreign or
inconsistent file is rebuilt from the database rather than trusted.
"""
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from django.conf import settings
from django.db.models import Max, Q

from gallery.models import VECTOR_DTYPE, Region, RegionTombstone

logger = logging.getLogger(__name__)

MANIFEST_VERSION = 1
# After a rebuild, ids this close below the highest one may belong to transactions still open.
REBUILD_GAP_WINDOW = 1000
# Bound on remembered gaps, so a pathological id jump cannot grow memory without limit.
MAX_GAPS = 100_000
REBUILD_BATCH = 5000


@dataclass
class Watermark:
    """Highest id seen, plus ids below it not seen yet that may still commit."""

    high: int = 0
    gaps: dict[int, float] = field(default_factory=dict)  # id -> monotonic time first missed

    def pending(self) -> Q:
        query = Q(pk__gt=self.high)
        if self.gaps:
            query |= Q(pk__in=list(self.gaps))
        return query

    def advance(self, seen: Iterable[int], *, now: float, ttl: float) -> None:
        seen = set(seen)
        for pk in seen:
            self.gaps.pop(pk, None)
        top = max(seen, default=self.high)
        if top > self.high:
            for pk in range(self.high + 1, top):
                if pk not in seen:
                    self.gaps[pk] = now
            self.high = top
        expired = [pk for pk, since in self.gaps.items() if now - since > ttl]
        for pk in expired:
            del self.gaps[pk]
        if len(self.gaps) > MAX_GAPS:
            for pk in sorted(self.gaps)[: len(self.gaps) - MAX_GAPS]:
                del self.gaps[pk]


@dataclass(frozen=True)
class SyncResult:
    added: int
    removed: int


def _slug(model_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", model_name)


def _unpack(blobs: list[bytes], dim: int) -> np.ndarray:
    joined = b"".join(bytes(blob) for blob in blobs)
    return np.frombuffer(joined, dtype=VECTOR_DTYPE).astype(np.float32).reshape(-1, dim)


class VectorIndex:
    """Inner-product search over the unit vectors of one embedding model."""

    def __init__(self, *, model_name: str, dim: int, directory: Path):
        self.model_name = model_name
        self.dim = dim
        self.directory = Path(directory)
        self.regions = Watermark()
        self.tombstones = Watermark()
        self._lock = threading.RLock()
        self._unsaved = 0
        self._index = self._empty()

    # --- FAISS ---------------------------------------------------------------------------------
    def _empty(self):
        import faiss

        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> np.ndarray:
        import faiss

        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape[1] != self.dim:
            raise ValueError(f"vectors have {vectors.shape[1]} dimensions; this index holds {self.dim}.")
        with self._lock:
            self._index.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))

    def remove(self, ids: Iterable[int]) -> int:
        import faiss

        ids = np.fromiter(ids, dtype=np.int64)
        if len(ids) == 0:
            return 0
        with self._lock:
            return int(self._index.remove_ids(faiss.IDSelectorBatch(ids)))

    def search(self, queries: np.ndarray, k: int, *, allowed_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by cosine similarity. Returns (scores, ids), each (n_queries, k); missing slots have id -1.

        With `allowed_ids`, only those ids can be returned: the restriction is applied inside the
        search, so a user who may see few regions among many still gets a full k.
        """
        import faiss

        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        params = None
        if allowed_ids is not None:
            if len(allowed_ids) == 0:
                n = len(queries)
                return np.zeros((n, 0), dtype=np.float32), np.zeros((n, 0), dtype=np.int64)
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.asarray(allowed_ids, dtype=np.int64)))
        with self._lock:
            k = max(1, min(k, self.ntotal)) if self.ntotal else 1
            scores, ids = self._index.search(queries, k, params=params)
        return scores, ids

    # --- Catching up with the database ----------------------------------------------------------
    def sync(self) -> SyncResult:
        """Add regions committed since the last sync and drop deleted ones."""
        now, ttl = time.monotonic(), settings.INDEX_GAP_TTL_SECONDS
        with self._lock:
            rows = list(Region.objects.filter(self.regions.pending()).values_list("pk", "embedding_model", "embedding"))
            mine = [(pk, blob) for pk, model, blob in rows if model == self.model_name]
            if mine:
                self.add(np.array([pk for pk, _ in mine]), _unpack([blob for _, blob in mine], self.dim))
            self.regions.advance((pk for pk, _, _ in rows), now=now, ttl=ttl)

            tombstones = list(RegionTombstone.objects.filter(self.tombstones.pending()).values_list("pk", "region_id"))
            removed = self.remove(region_id for _, region_id in tombstones)
            self.tombstones.advance((pk for pk, _ in tombstones), now=now, ttl=ttl)

            self._unsaved += len(mine)
            if self._unsaved >= settings.INDEX_SAVE_EVERY:
                self.save()
        return SyncResult(added=len(mine), removed=removed)

    def rebuild(self, *, progress: Callable[[int], None] | None = None) -> int:
        """Replace the index with every stored vector of this model. Returns the count."""
        now = time.monotonic()
        # Read the tombstone watermark first: deletions during the scan are then applied by sync().
        tombstone_high = RegionTombstone.objects.aggregate(top=Max("pk"))["top"] or 0
        fresh = self._empty()
        high = 0
        queryset = Region.objects.filter(embedding_model=self.model_name).order_by("pk").values_list("pk", "embedding")
        batch_ids: list[int] = []
        batch_blobs: list[bytes] = []
        seen_recent: set[int] = set()

        def flush() -> None:
            fresh.add_with_ids(_unpack(batch_blobs, self.dim), np.array(batch_ids, dtype=np.int64))
            if progress:
                progress(len(batch_ids))
            batch_ids.clear()
            batch_blobs.clear()

        for pk, blob in queryset.iterator(chunk_size=REBUILD_BATCH):
            batch_ids.append(pk)
            batch_blobs.append(blob)
            high = pk
            if len(batch_ids) >= REBUILD_BATCH:
                seen_recent = set(batch_ids)
                flush()
        seen_recent |= set(batch_ids)
        if batch_ids:
            flush()
        any_high = Region.objects.aggregate(top=Max("pk"))["top"] or 0
        with self._lock:
            self._index = fresh
            self.regions = Watermark(high=max(high, any_high))
            # Ids just below the top that we did not see may be transactions still in flight.
            for pk in range(max(1, self.regions.high - REBUILD_GAP_WINDOW), self.regions.high):
                if pk not in seen_recent:
                    self.regions.gaps[pk] = now
            self.tombstones = Watermark(high=tombstone_high)
            self.save()
        return self.ntotal

    # --- Persistence ------------------------------------------------------------------------------
    @property
    def index_path(self) -> Path:
        return self.directory / f"{_slug(self.model_name)}.faiss"

    @property
    def manifest_path(self) -> Path:
        return self.directory / f"{_slug(self.model_name)}.json"

    def save(self) -> None:
        import faiss

        self.directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            manifest = {
                "version": MANIFEST_VERSION,
                "model": self.model_name,
                "dim": self.dim,
                "count": self.ntotal,
                "highest_region_id": self.regions.high,
                "highest_tombstone_id": self.tombstones.high,
                "saved_at": time.time(),
            }
            suffix = f".tmp-{os.getpid()}-{threading.get_ident()}"
            index_tmp = self.index_path.with_name(self.index_path.name + suffix)
            manifest_tmp = self.manifest_path.with_name(self.manifest_path.name + suffix)
            faiss.write_index(self._index, str(index_tmp))
            manifest_tmp.write_text(json.dumps(manifest, indent=2))
            # Manifest last: a reader that finds a manifest finds the index it describes (or a newer one,
            # which the count check below catches).
            os.replace(index_tmp, self.index_path)
            os.replace(manifest_tmp, self.manifest_path)
            self._unsaved = 0

    def load(self) -> bool:
        """Load the saved index if it is ours and consistent with the database; else leave it empty."""
        import faiss

        try:
            manifest = json.loads(self.manifest_path.read_text())
            if (manifest.get("version"), manifest.get("model"), manifest.get("dim")) != (
                MANIFEST_VERSION, self.model_name, self.dim
            ):
                logger.warning("Index %s was built for another model or format; rebuilding.", self.index_path)
                return False
            index = faiss.read_index(str(self.index_path))
        except FileNotFoundError:
            return False
        except Exception as error:  # corrupt JSON or FAISS file
            logger.warning("Index %s is unreadable (%s); rebuilding.", self.index_path, error)
            return False
        if index.ntotal != manifest["count"] or index.d != self.dim:
            logger.warning("Index %s does not match its manifest; rebuilding.", self.index_path)
            return False
        high = int(manifest["highest_region_id"])
        with self._lock:
            self._index = index
            self.regions = Watermark(high=high)
            self.tombstones = Watermark(high=int(manifest["highest_tombstone_id"]))
            self.sync()
            stored = Region.objects.filter(embedding_model=self.model_name, pk__lte=high).count()
            indexed = int((self.ids() <= high).sum())
            if stored != indexed:
                logger.warning("Index %s is stale (%d vectors, %d in the database); rebuilding.", self.index_path, indexed, stored)
                self._index = self._empty()
                self.regions, self.tombstones = Watermark(), Watermark()
                return False
        return True


_index: VectorIndex | None = None
_index_lock = threading.Lock()


def current_model() -> tuple[str, int]:
    """(model name, dimension) of the configured CLIP model, without loading its weights."""
    import open_clip

    from search.clip import clip_model_id, register_model_configs

    register_model_configs()
    config = open_clip.get_model_config(settings.CLIP_MODEL)
    if config is None:
        raise ValueError(f"CLIP_MODEL={settings.CLIP_MODEL!r} is not a model open_clip knows.")
    return clip_model_id(), int(config["embed_dim"])


def get_index() -> VectorIndex:
    """The process-wide index for the configured model: loaded from disk or rebuilt, then kept in sync."""
    global _index
    if _index is None:
        with _index_lock:
            if _index is None:
                model_name, dim = current_model()
                index = VectorIndex(model_name=model_name, dim=dim, directory=settings.INDEX_DIR)
                if not index.load():
                    index.rebuild()
                _index = index
    _index.sync()
    return _index


def reset_index() -> None:
    global _index
    with _index_lock:
        _index = None
