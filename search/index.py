"""The FAISS vector index: a per-process cache of the region vectors stored in the database.

Layout. Vectors are kept as float16 codes (`IndexScalarQuantizer`, the same precision the database
stores) in a few shards searched in parallel threads: an exhaustive scan, so recall against exact
search is 1.0, and one query uses every core. Next to each shard's codes we keep, per slot, the
Region id, its image id and whether it is the whole image, plus a small mirror of each image's
owner, visibility and status. A search builds a bitmap of the slots the user may see from these
arrays and hands it to FAISS (`IDSelectorBitmap`), so the restriction is applied inside the scan:
a user who may see few regions among many still gets a full top-k.

Catching up with the database (every `sync()`, i.e. before every search):

* regions with an id above the highest one seen are added. An id below that watermark may still
  appear (its transaction committed after a later one), so skipped ids are kept as "gaps" and
  looked for again until INDEX_GAP_TTL_SECONDS;
* RegionTombstone rows (written by every deletion) are read the same way; their slots are marked
  dead and compacted away once a shard is a quarter dead;
* images changed recently (updated_at) refresh the visibility mirror.

The mirror only narrows the scan: the search service re-checks every hit against the database,
so a change seen late can cost a result slot but never show an image its user may not see.

The index is saved atomically (temp file + rename) with a JSON manifest; a missing, foreign or
inconsistent file is rebuilt from the database rather than trusted.
"""
import json
import logging
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Callable, Iterable, Literal

import numpy as np
from django.conf import settings
from django.db.models import Max, Q
from django.utils import timezone

from gallery.models import VECTOR_DTYPE, Image, Region, RegionTombstone

logger = logging.getLogger(__name__)

MANIFEST_VERSION = 2
# After a rebuild, ids this close below the highest one may belong to transactions still open.
REBUILD_GAP_WINDOW = 1000
# Bound on remembered gaps, so a pathological id jump cannot grow memory without limit.
MAX_GAPS = 100_000
GAP_QUERY_CHUNK = 500
REBUILD_BATCH = 5000
# A shard whose slots are this dead is compacted (FAISS remove_ids moves the live codes together).
COMPACT_DEAD_FRACTION = 0.25
# Image changes are re-read with this overlap, for transactions that commit a little after their
# updated_at. (Images of newly seen regions are always read, so this only affects visibility toggles.)
IMAGE_CHANGE_OVERLAP_SECONDS = 10
DEAD = -1


@dataclass
class Watermark:
    """Highest id seen, plus ids below it not seen yet that may still commit."""

    high: int = 0
    gaps: dict[int, float] = field(default_factory=dict)  # id -> monotonic time first missed

    def pending(self) -> list[Q]:
        """Filters for the rows not seen yet: above the watermark, then the gaps in chunks
        (SQLite refuses queries with more than a few thousand parameters)."""
        gaps = sorted(self.gaps)
        return [Q(pk__gt=self.high)] + [Q(pk__in=gaps[i : i + GAP_QUERY_CHUNK]) for i in range(0, len(gaps), GAP_QUERY_CHUNK)]

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
        for pk in [pk for pk, since in self.gaps.items() if now - since > ttl]:
            del self.gaps[pk]
        if len(self.gaps) > MAX_GAPS:
            for pk in sorted(self.gaps)[: len(self.gaps) - MAX_GAPS]:
                del self.gaps[pk]


@dataclass(frozen=True)
class SyncResult:
    added: int
    removed: int


@dataclass(frozen=True)
class Visibility:
    """Which slots a search may return: the index-side mirror of search.query's database filter."""

    user_id: int | None  # None: anonymous, sees nothing
    scope: Literal["all", "mine", "public"] = "all"
    kind: Literal["both", "global", "object"] = "both"
    exclude_image_id: int | None = None


class _Shard:
    def __init__(self, dim: int):
        import faiss

        self.index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        self.region_ids = np.zeros(0, dtype=np.int64)  # DEAD for removed slots
        self.image_ids = np.zeros(0, dtype=np.int64)
        self.is_global = np.zeros(0, dtype=bool)

    def add(self, region_ids, image_ids, is_global, vectors) -> None:
        self.index.add(vectors)
        self.region_ids = np.concatenate([self.region_ids, region_ids])
        self.image_ids = np.concatenate([self.image_ids, image_ids])
        self.is_global = np.concatenate([self.is_global, is_global])

    def kill(self, region_ids: np.ndarray) -> int:
        hit = np.isin(self.region_ids, region_ids)
        self.region_ids[hit] = DEAD
        return int(hit.sum())

    def compact_if_needed(self) -> None:
        import faiss

        dead = self.region_ids == DEAD
        if not len(dead) or dead.mean() < COMPACT_DEAD_FRACTION:
            return
        self.index.remove_ids(faiss.IDSelectorBatch(np.flatnonzero(dead).astype(np.int64)))
        alive = ~dead
        self.region_ids, self.image_ids, self.is_global = self.region_ids[alive], self.image_ids[alive], self.is_global[alive]

    @property
    def alive(self) -> int:
        return int((self.region_ids != DEAD).sum())


def _slug(model_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", model_name)


def _unpack(blobs: list[bytes], dim: int) -> np.ndarray:
    joined = b"".join(bytes(blob) for blob in blobs)
    return np.frombuffer(joined, dtype=VECTOR_DTYPE).astype(np.float32).reshape(-1, dim)


class VectorIndex:
    """Exhaustive inner-product search over the unit vectors of one embedding model."""

    def __init__(self, *, model_name: str, dim: int, directory: Path, shards: int | None = None):
        self.model_name = model_name
        self.dim = dim
        self.directory = Path(directory)
        self.shard_count = shards or settings.INDEX_SHARDS
        self.regions = Watermark()
        self.tombstones = Watermark()
        self._lock = threading.RLock()
        self._unsaved = 0
        self._shards = [_Shard(dim) for _ in range(self.shard_count)]
        self._pool = ThreadPoolExecutor(max_workers=self.shard_count, thread_name_prefix="faiss-shard")
        # Image mirror, indexed by image id: owner id (-1 unknown), public, ready.
        self._owner = np.full(1, -1, dtype=np.int64)
        self._public = np.zeros(1, dtype=bool)
        self._ready = np.zeros(1, dtype=bool)
        self._images_seen_at = None

    # --- Storage ---------------------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        return sum(shard.alive for shard in self._shards)

    def ids(self) -> np.ndarray:
        ids = np.concatenate([shard.region_ids for shard in self._shards])
        return ids[ids != DEAD]

    def add(self, ids, vectors, *, image_ids=None, is_global=None) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape[1] != self.dim:
            raise ValueError(f"vectors have {vectors.shape[1]} dimensions; this index holds {self.dim}.")
        image_ids = np.zeros(len(ids), dtype=np.int64) if image_ids is None else np.asarray(image_ids, dtype=np.int64)
        is_global = np.zeros(len(ids), dtype=bool) if is_global is None else np.asarray(is_global, dtype=bool)
        with self._lock:
            # Spread the batch over the shards, most to the emptiest, so the parallel scans stay even.
            shards = sorted(self._shards, key=lambda s: len(s.region_ids))
            parts = np.array_split(np.arange(len(ids)), len(shards))
            for shard, part in zip(shards, parts):
                if len(part):
                    shard.add(ids[part], image_ids[part], is_global[part], vectors[part])

    def remove(self, ids: Iterable[int]) -> int:
        ids = np.fromiter(ids, dtype=np.int64)
        if len(ids) == 0:
            return 0
        with self._lock:
            removed = sum(shard.kill(ids) for shard in self._shards)
            for shard in self._shards:
                shard.compact_if_needed()
        return removed

    # --- Image mirror --------------------------------------------------------------------------------
    def _learn_images(self, rows) -> None:
        rows = list(rows)
        if not rows:
            return
        ids = np.array([row[0] for row in rows], dtype=np.int64)
        top = int(ids.max()) + 1
        if top > len(self._owner):
            size = max(top, 2 * len(self._owner))
            self._owner = np.concatenate([self._owner, np.full(size - len(self._owner), -1, dtype=np.int64)])
            self._public = np.concatenate([self._public, np.zeros(size - len(self._public), dtype=bool)])
            self._ready = np.concatenate([self._ready, np.zeros(size - len(self._ready), dtype=bool)])
        self._owner[ids] = [row[1] for row in rows]
        self._public[ids] = [row[2] for row in rows]
        self._ready[ids] = [row[3] == Image.Status.READY for row in rows]

    def _sync_images(self, *, everything: bool = False, also: Iterable[int] = ()) -> None:
        started = timezone.now()
        images = Image.objects.order_by()
        if everything or self._images_seen_at is None:
            rows = images.values_list("pk", "owner_id", "is_public", "status").iterator(chunk_size=10_000)
        else:
            since = self._images_seen_at - timedelta(seconds=IMAGE_CHANGE_OVERLAP_SECONDS)
            changed = Q(updated_at__gte=since)
            also = set(also)
            if also:
                changed |= Q(pk__in=also)
            rows = images.filter(changed).values_list("pk", "owner_id", "is_public", "status")
        self._learn_images(rows)
        self._images_seen_at = started

    def _allowed(self, shard: _Shard, visibility: Visibility | None, allowed_ids: np.ndarray | None) -> np.ndarray:
        mask = shard.region_ids != DEAD
        if allowed_ids is not None:
            mask &= np.isin(shard.region_ids, allowed_ids)
        if visibility is not None:
            if visibility.user_id is None:
                return np.zeros_like(mask)
            if visibility.scope == "mine":
                image_ok = self._owner == visibility.user_id
            elif visibility.scope == "public":
                image_ok = self._public.copy()
            else:
                image_ok = (self._owner == visibility.user_id) | self._public
            image_ok &= self._ready
            if visibility.exclude_image_id is not None and visibility.exclude_image_id < len(image_ok):
                image_ok[visibility.exclude_image_id] = False
            in_range = shard.image_ids < len(image_ok)
            mask &= in_range & image_ok[np.where(in_range, shard.image_ids, 0)]
            if visibility.kind != "both":
                mask &= shard.is_global if visibility.kind == "global" else ~shard.is_global
        return mask

    # --- Search ---------------------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int, *, visibility: Visibility | None = None,
               allowed_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
        """Top-k by cosine similarity among the slots `visibility` (and `allowed_ids`) allow.

        Returns (scores, region ids, allowed count): scores and ids are (n_queries, <=k), best
        first; the count says how many regions were eligible, so callers know when asking for a
        larger k cannot help.
        """
        import faiss

        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        with self._lock:
            masks = [self._allowed(shard, visibility, allowed_ids) for shard in self._shards]
            eligible = int(sum(mask.sum() for mask in masks))
            k = max(1, min(k, eligible))

            def scan(item):
                shard, mask = item
                if not mask.any():
                    return None
                bitmap = np.packbits(mask, bitorder="little")
                params = faiss.SearchParameters(sel=faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bitmap)))
                scores, slots = shard.index.search(queries, min(k, len(mask)), params=params)
                ids = np.where(slots >= 0, shard.region_ids[np.maximum(slots, 0)], -1)
                return scores, ids

            parts = [part for part in self._pool.map(scan, zip(self._shards, masks)) if part is not None]
        if not parts:
            empty = np.zeros((len(queries), 0))
            return empty.astype(np.float32), empty.astype(np.int64), 0
        scores = np.concatenate([p[0] for p in parts], axis=1)
        ids = np.concatenate([p[1] for p in parts], axis=1)
        scores = np.where(ids >= 0, scores, -np.inf)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        scores, ids = np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)
        if len(ids) == 1:  # one query (every search): drop empty slots; several: rows keep -1 padding
            filled = ids[0] >= 0
            scores, ids = scores[:, filled], ids[:, filled]
        return scores, ids, eligible

    # --- Catching up with the database ----------------------------------------------------------
    def sync(self) -> SyncResult:
        """Add regions committed since the last sync, drop deleted ones, refresh the image mirror."""
        now, ttl = time.monotonic(), settings.INDEX_GAP_TTL_SECONDS
        with self._lock:
            # order_by(): Region's default ordering would make PostgreSQL walk the whole table.
            rows = [row for pending in self.regions.pending() for row in Region.objects.filter(pending).order_by()
                    .values_list("pk", "image_id", "kind", "embedding_model", "embedding")]
            mine = [row for row in rows if row[3] == self.model_name]
            self._sync_images(also={row[1] for row in mine})
            if mine:
                self.add(
                    [row[0] for row in mine], _unpack([row[4] for row in mine], self.dim),
                    image_ids=[row[1] for row in mine], is_global=[row[2] == Region.Kind.GLOBAL for row in mine],
                )
            self.regions.advance((row[0] for row in rows), now=now, ttl=ttl)

            tombstones = [row for pending in self.tombstones.pending()
                          for row in RegionTombstone.objects.filter(pending).order_by().values_list("pk", "region_id")]
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
        fresh = VectorIndex(model_name=self.model_name, dim=self.dim, directory=self.directory, shards=self.shard_count)
        fresh._sync_images(everything=True)
        high = 0
        seen_recent: set[int] = set()
        batch: list[tuple] = []

        def flush() -> None:
            fresh.add([r[0] for r in batch], _unpack([r[3] for r in batch], self.dim),
                      image_ids=[r[1] for r in batch], is_global=[r[2] == Region.Kind.GLOBAL for r in batch])
            if progress:
                progress(len(batch))
            batch.clear()

        rows = (Region.objects.filter(embedding_model=self.model_name).order_by("pk")
                .values_list("pk", "image_id", "kind", "embedding"))
        for row in rows.iterator(chunk_size=REBUILD_BATCH):
            batch.append(row)
            high = row[0]
            if len(batch) >= REBUILD_BATCH:
                seen_recent = {r[0] for r in batch}
                flush()
        seen_recent |= {r[0] for r in batch}
        if batch:
            flush()
        any_high = Region.objects.aggregate(top=Max("pk"))["top"] or 0
        with self._lock:
            self._shards = fresh._shards
            self._owner, self._public, self._ready = fresh._owner, fresh._public, fresh._ready
            self._images_seen_at = fresh._images_seen_at
            self.regions = Watermark(high=max(high, any_high))
            # Ids just below the top that we did not see may be transactions still in flight.
            for pk in range(max(1, self.regions.high - REBUILD_GAP_WINDOW), self.regions.high):
                if pk not in seen_recent:
                    self.regions.gaps[pk] = now
            self.tombstones = Watermark(high=tombstone_high)
            self.save()
        fresh._pool.shutdown(wait=False)
        return self.ntotal

    # --- Persistence ------------------------------------------------------------------------------
    @property
    def index_path(self) -> Path:
        return self.directory / f"{_slug(self.model_name)}.faiss"

    @property
    def slots_path(self) -> Path:
        return self.directory / f"{_slug(self.model_name)}.slots.npz"

    @property
    def manifest_path(self) -> Path:
        return self.directory / f"{_slug(self.model_name)}.json"

    def save(self) -> None:
        """Write codes, slot arrays and manifest, each to a temp file renamed into place (manifest last)."""
        import faiss

        self.directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            for shard in self._shards:
                shard.compact_if_needed()
            # One FAISS file for all shards (merged codes), one array file for their slots.
            merged = faiss.IndexScalarQuantizer(self.dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
            for shard in self._shards:
                if shard.index.ntotal:
                    merged.add(shard.index.reconstruct_n(0, shard.index.ntotal))
            slots = {
                "region_ids": np.concatenate([s.region_ids for s in self._shards]),
                "image_ids": np.concatenate([s.image_ids for s in self._shards]),
                "is_global": np.concatenate([s.is_global for s in self._shards]),
            }
            manifest = {
                "version": MANIFEST_VERSION,
                "model": self.model_name,
                "dim": self.dim,
                "count": self.ntotal,
                "slots": int(merged.ntotal),
                "highest_region_id": self.regions.high,
                "highest_tombstone_id": self.tombstones.high,
                "saved_at": time.time(),
            }
            suffix = f".tmp-{os.getpid()}-{threading.get_ident()}"
            temporaries = [path.with_name(path.name + suffix) for path in (self.index_path, self.slots_path, self.manifest_path)]
            faiss.write_index(merged, str(temporaries[0]))
            with open(temporaries[1], "wb") as handle:
                np.savez(handle, **slots)
            temporaries[2].write_text(json.dumps(manifest, indent=2))
            for temporary, path in zip(temporaries, (self.index_path, self.slots_path, self.manifest_path)):
                os.replace(temporary, path)
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
            merged = faiss.read_index(str(self.index_path))
            with np.load(self.slots_path) as slots:
                region_ids, image_ids, is_global = slots["region_ids"], slots["image_ids"], slots["is_global"]
        except FileNotFoundError:
            return False
        except Exception as error:  # corrupt JSON, FAISS or array file
            logger.warning("Index %s is unreadable (%s); rebuilding.", self.index_path, error)
            return False
        if merged.ntotal != manifest["slots"] or len(region_ids) != merged.ntotal or merged.d != self.dim:
            logger.warning("Index %s does not match its manifest; rebuilding.", self.index_path)
            return False
        high = int(manifest["highest_region_id"])
        with self._lock:
            self._shards = [_Shard(self.dim) for _ in range(self.shard_count)]
            alive = region_ids != DEAD
            vectors = merged.reconstruct_n(0, merged.ntotal)[alive] if merged.ntotal else np.zeros((0, self.dim), np.float32)
            bounds = np.linspace(0, len(vectors), self.shard_count + 1).astype(int)
            for shard, start, stop in zip(self._shards, bounds[:-1], bounds[1:]):
                shard.add(region_ids[alive][start:stop], image_ids[alive][start:stop], is_global[alive][start:stop],
                          vectors[start:stop])
            self._sync_images(everything=True)
            self.regions = Watermark(high=high)
            self.tombstones = Watermark(high=int(manifest["highest_tombstone_id"]))
            self.sync()
            stored = Region.objects.filter(embedding_model=self.model_name, pk__lte=high).count()
            indexed = int((self.ids() <= high).sum())
            if stored != indexed:
                logger.warning("Index %s is stale (%d vectors, %d in the database); rebuilding.", self.index_path, indexed, stored)
                self._shards = [_Shard(self.dim) for _ in range(self.shard_count)]
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
