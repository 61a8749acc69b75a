"""The one process that writes the search index: applies the change feed, publishes generations.

`manage.py run_indexer` (started by `make run`) calls `IndexWriter.update()` every
INDEX_POLL_SECONDS. Each update, under an exclusive file lock (writer.lock, so a second indexer,
`rebuild_index` or a test waits its turn):

1. adopts the published generation if another writer moved it on (or builds one if none exists);
2. reads the change feed (gallery.models.ImageChange) past the generation's position;
3. for each changed image reads its current state and its regions from the database: regions no
   longer there are marked dead, new ones go into a new segment, the image mirror is updated;
4. merges small segments and rewrites mostly-dead ones;
5. writes the new generation's files, then points CURRENT at it (readers switch on their next
   search), and removes files no recent generation uses.

Feed rows only name images, and applying one reads the image's state now, so the order in which
rows are applied and applying a row twice do not matter; what matters is that none is missed,
which the feed's commit-ordered positions guarantee. A rebuild reads the feed position *before*
scanning the regions, then applies everything after it, so a region committed during the scan is
not lost. If rows the index still needed were pruned from the feed (an index left behind for longer
than INDEX_FEED_RETENTION_HOURS), or the database is not the one the index was built from, the
writer rebuilds.
"""

import fcntl
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from gallery.models import VECTOR_DTYPE, Image, ImageChange, Region
from search.index.files import (
    CURRENT_NAME,
    FORMAT_VERSION,
    LOCK_NAME,
    CorruptIndex,
    Segment,
    fsync_directory,
    fsync_write,
    generation_paths,
    model_directory,
    read_current,
    write_segment,
)
from search.index.reader import Generation, load_generation

logger = logging.getLogger(__name__)

# Feed rows applied per update; a bigger backlog is applied over several updates.
FEED_BATCH = 20_000
# Ids per IN (...) query (SQLite limits the number of parameters).
QUERY_CHUNK = 500
# Rows per batch when a rebuild scans the regions table.
REBUILD_BATCH = 5000
# Segments are kept in size tiers: under MERGE_FLOOR slots, then each tier MERGE_FACTOR times larger
# than the one below (4096-16383 slots, 16384-65535, ...); a tier that reaches MERGE_FACTOR segments
# is merged into one. However the index grew (a photo per round, or a million at once) it then has
# at most MERGE_FACTOR - 1 segments per tier: O(log n) of them, each vector rewritten O(log n) times.
# The floor keeps the small ones few: each scan of a segment costs a fixed ~0.1 ms besides its size.
MERGE_FACTOR = 4
MERGE_FLOOR = 4096
# A segment this dead is rewritten with its live slots only.
REWRITE_DEAD_FRACTION = 0.25
# Generations kept after a newer one is published, for readers still opening an older one.
KEEP_GENERATIONS = 4
# Seconds between prunes of applied feed rows older than INDEX_FEED_RETENTION_HOURS.
PRUNE_EVERY_SECONDS = 600


@dataclass(frozen=True)
class UpdateResult:
    generation: int
    added: int = 0
    removed: int = 0
    images: int = 0  # changed images applied
    rebuilt: bool = False


def _tier(slots: int) -> int:
    """The size tier of a segment of this many slots: 0 under MERGE_FLOOR, then one more for each
    MERGE_FACTOR times larger."""
    tier, ceiling = 0, MERGE_FLOOR
    while slots >= ceiling:
        ceiling *= MERGE_FACTOR
        tier += 1
    return tier


def _unpack(blobs, dim: int) -> np.ndarray:
    joined = b"".join(bytes(blob) for blob in blobs)
    return np.frombuffer(joined, dtype=VECTOR_DTYPE).astype(np.float32).reshape(-1, dim)


def _chunks(values: list, size: int = QUERY_CHUNK) -> Iterator[list]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


class _Draft:
    """The next generation while the writer builds it: copies of the mutable parts."""

    def __init__(self, generation: Generation | None):
        self.segments = list(generation.segments) if generation else []
        self.alive = [alive.copy() for alive in generation.alive] if generation else []
        self.owner = generation.owner.copy() if generation else np.full(1, -1, dtype=np.int64)
        self.public = generation.public.copy() if generation else np.zeros(1, dtype=bool)
        self.ready = generation.ready.copy() if generation else np.zeros(1, dtype=bool)

    def learn_images(self, rows: list[tuple[int, int, bool, str]], deleted: Sequence[int] = ()) -> None:
        every = [row[0] for row in rows] + list(deleted)
        if not every:
            return
        top = max(every) + 1
        if top > len(self.owner):
            size = max(top, 2 * len(self.owner))
            self.owner = np.concatenate([self.owner, np.full(size - len(self.owner), -1, dtype=np.int64)])
            self.public = np.concatenate([self.public, np.zeros(size - len(self.public), dtype=bool)])
            self.ready = np.concatenate([self.ready, np.zeros(size - len(self.ready), dtype=bool)])
        if rows:
            ids = np.array([row[0] for row in rows], dtype=np.int64)
            self.owner[ids] = [row[1] for row in rows]
            self.public[ids] = [row[2] for row in rows]
            self.ready[ids] = [row[3] == Image.Status.READY for row in rows]
        if deleted:
            gone = np.array(list(deleted), dtype=np.int64)
            self.owner[gone], self.public[gone], self.ready[gone] = -1, False, False


class IndexWriter:
    """Builds and publishes generations of one model's index. One at a time per directory (file lock)."""

    def __init__(self, *, model_name: str, dim: int, directory: Path, shards: int | None = None):
        self.model_name = model_name
        self.dim = dim
        self.directory = model_directory(directory, model_name)
        self.shards = shards or settings.INDEX_SHARDS
        self.generation: Generation | None = None
        self._thread_lock = threading.Lock()
        self._pruned_at = 0.0

    @property
    def published(self) -> Generation:
        """The generation this writer works from (once it adopted or built one)."""
        if self.generation is None:
            raise RuntimeError(f"The index writer of {self.directory} has no generation yet.")
        return self.generation

    # --- Locking and publishing -------------------------------------------------------------------
    @contextmanager
    def locked(self) -> Iterator[None]:
        """The writer lock: this thread and no other process writes the directory meanwhile."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._thread_lock, open(self.directory / LOCK_NAME, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _adopt_published(self) -> bool:
        """Make the published generation ours. False when there is none we can use."""
        try:
            current = read_current(self.directory)
            if current is None:
                return False
            number, generation_id = current
            if self.generation is not None and self.generation.id == generation_id:
                return True
            generation = load_generation(self.directory, number, model_name=self.model_name, dim=self.dim)
        except CorruptIndex as error:
            logger.warning("Index %s: %s Rebuilding.", self.directory, error)
            return False
        if not self._matches_database(generation):
            return False
        self.generation = generation
        return True

    def _matches_database(self, generation: Generation) -> bool:
        """False for an index built from another database, or one a restored backup left behind."""
        latest = ImageChange.objects.aggregate(top=Max("position"))["top"] or 0
        if generation.position > latest:
            logger.warning(
                "Index %s has applied feed position %d but the database's feed ends at %d; rebuilding.",
                self.directory,
                generation.position,
                latest,
            )
            return False
        stored = Region.objects.filter(embedding_model=self.model_name).count()
        # Changes after the generation's position may explain a difference: they are applied next.
        if stored != generation.ntotal and not ImageChange.objects.filter(position__gt=generation.position).exists():
            logger.warning(
                "Index %s holds %d vectors, the database %d; rebuilding.", self.directory, generation.ntotal, stored
            )
            return False
        return True

    def _publish(self, draft: _Draft, position: int) -> Generation:
        # Numbers only grow (unless the directory is wiped); the id tells two generations apart always.
        numbers = [int(p.name[4:12]) for p in self.directory.glob("gen-*.json")]
        number, generation_id = max(numbers, default=0) + 1, secrets.token_hex(8)
        manifest_path, state_path = generation_paths(self.directory, number)
        state: dict[str, np.ndarray] = {
            f"alive_{i}": np.packbits(alive, bitorder="little") for i, alive in enumerate(draft.alive)
        }
        state.update(owner=draft.owner, public=draft.public, ready=draft.ready)
        fsync_write(state_path, lambda handle: np.savez(handle, **state))  # type: ignore[arg-type]  # numpy's stub types **arrays as its own flags
        manifest = {
            "version": FORMAT_VERSION,
            "model": self.model_name,
            "dim": self.dim,
            "generation": number,
            "id": generation_id,
            "position": position,
            "count": int(sum(int(alive.sum()) for alive in draft.alive)),
            "segments": [{"name": s.name, "slots": len(s), "kind": s.kind} for s in draft.segments],
            "written_at": time.time(),
        }
        fsync_write(manifest_path, lambda handle: handle.write(json.dumps(manifest, indent=1).encode()))
        fsync_directory(self.directory)
        fsync_write(
            self.directory / CURRENT_NAME,
            lambda handle: handle.write(json.dumps({"generation": number, "id": generation_id}).encode()),
        )
        fsync_directory(self.directory)
        self.generation = load_generation(
            self.directory, number, model_name=self.model_name, dim=self.dim, cache={s.name: s for s in draft.segments}
        )
        self._remove_unused_files(number)
        return self.generation

    def _remove_unused_files(self, newest: int) -> None:
        keep = range(max(1, newest - KEEP_GENERATIONS), newest + 1)
        used: set[str] = set()
        for number in keep:
            manifest_path, _ = generation_paths(self.directory, number)
            try:
                used |= {entry["name"] for entry in json.loads(manifest_path.read_text())["segments"]}
            except (FileNotFoundError, ValueError, KeyError):
                continue
        for path in self.directory.iterdir():
            name = path.name
            if name.startswith("gen-") and ".tmp-" not in name:
                stale = int(name[4:12]) not in keep
            elif name.startswith("seg-") and ".tmp-" not in name:
                stale = name[4:].split(".")[0] not in used
            else:
                # Temporaries of a writer that died mid-write (ours are gone by now: we hold the lock).
                stale = ".tmp-" in name
            if stale:
                path.unlink(missing_ok=True)  # readers that mapped a segment keep their mapping

    # --- Catching up with the change feed -------------------------------------------------------------
    def update(self) -> UpdateResult:
        """Apply the change feed and publish a generation if anything changed."""
        with self.locked():
            if not self._adopt_published():
                count = self._rebuild_locked()
                return UpdateResult(generation=self.published.number, added=count, rebuilt=True)
            result = self._apply_feed()
        self._maybe_prune()
        return result

    def _apply_feed(self) -> UpdateResult:
        """Apply up to FEED_BATCH feed rows and publish the result; a bigger backlog takes several updates
        (each publishes, so searches see progress, and the writer lock is never held for long)."""
        position = self.published.position
        rows = list(
            ImageChange.objects.filter(position__gt=position)
            .order_by("position")
            .values_list("position", "image_id")[:FEED_BATCH]
        )
        if not rows:
            return UpdateResult(generation=self.published.number)
        if rows[0][0] != position + 1:
            # Positions have no gaps, so rows we needed were pruned: only a rebuild is complete now.
            logger.warning("Index %s is behind the change feed's retention; rebuilding.", self.directory)
            count = self._rebuild_locked()
            return UpdateResult(generation=self.published.number, added=count, rebuilt=True)
        draft = _Draft(self.generation)
        changed = sorted({image_id for _, image_id in rows})
        added, removed = self._apply_images(draft, changed)
        self._compact(draft)
        generation = self._publish(draft, rows[-1][0])
        return UpdateResult(generation=generation.number, added=added, removed=removed, images=len(changed))

    def _apply_images(self, draft: _Draft, changed: list[int]) -> tuple[int, int]:
        """Bring these images' slots and mirror entries in line with the database. Returns (added, removed)."""
        image_rows, current = [], {}
        for chunk in _chunks(changed):
            image_rows += list(
                Image.objects.filter(pk__in=chunk).order_by().values_list("pk", "owner_id", "is_public", "status")
            )
            current.update(
                Region.objects.filter(image_id__in=chunk, embedding_model=self.model_name)
                .order_by()
                .values_list("pk", "image_id")
            )
        existing = {row[0] for row in image_rows}
        draft.learn_images(image_rows, deleted=[pk for pk in changed if pk not in existing])

        changed_array = np.array(changed, dtype=np.int64)
        wanted = np.fromiter(current, dtype=np.int64, count=len(current))
        present: set[int] = set()
        removed = 0
        for segment, alive in zip(draft.segments, draft.alive, strict=True):
            touched = alive & np.isin(segment.image_ids, changed_array)
            if not touched.any():
                continue
            keep = np.isin(segment.region_ids, wanted)
            dead = touched & ~keep
            alive[dead] = False
            removed += int(dead.sum())
            present.update(segment.region_ids[touched & keep].tolist())

        new = sorted(set(current) - present)
        rows = []
        for chunk in _chunks(new):
            rows += list(
                Region.objects.filter(pk__in=chunk).order_by().values_list("pk", "image_id", "kind", "embedding")
            )
        if rows:
            segment = write_segment(
                self.directory,
                [r[0] for r in rows],
                [r[1] for r in rows],
                [r[2] == Region.Kind.GLOBAL for r in rows],
                _unpack([r[3] for r in rows], self.dim),
                dim=self.dim,
            )
            draft.segments.append(segment)
            draft.alive.append(np.ones(len(segment), dtype=bool))
        return len(rows), removed

    def _compact(self, draft: _Draft) -> None:
        """Drop dead segments, rewrite mostly-dead ones, and merge each size tier that has grown to
        MERGE_FACTOR segments (tiers above it may fill up in turn)."""
        parts = [(s, a) for s, a in zip(draft.segments, draft.alive, strict=True) if a.any()]
        parts = [self._merge([(s, a)]) if 1 - a.mean() >= REWRITE_DEAD_FRACTION else (s, a) for s, a in parts]
        while full := self._full_tier(parts):
            parts = [part for part in parts if all(part[0] is not other for other, _ in full)] + [self._merge(full)]
        draft.segments, draft.alive = [s for s, _ in parts], [a for _, a in parts]

    @staticmethod
    def _full_tier(parts: list[tuple[Segment, np.ndarray]]) -> list[tuple[Segment, np.ndarray]]:
        """The segments of the lowest tier holding MERGE_FACTOR or more of them; [] when none does."""
        tiers: dict[int, list[tuple[Segment, np.ndarray]]] = {}
        for segment, alive in parts:
            tiers.setdefault(_tier(len(segment)), []).append((segment, alive))
        return next((tiers[tier] for tier in sorted(tiers) if len(tiers[tier]) >= MERGE_FACTOR), [])

    def _merge(self, parts: list[tuple[Segment, np.ndarray]]) -> tuple[Segment, np.ndarray]:
        slots = [np.flatnonzero(alive) for _, alive in parts]
        segment = write_segment(
            self.directory,
            np.concatenate([s.region_ids[i] for (s, _), i in zip(parts, slots, strict=True)]),
            np.concatenate([s.image_ids[i] for (s, _), i in zip(parts, slots, strict=True)]),
            np.concatenate([s.is_global[i] for (s, _), i in zip(parts, slots, strict=True)]),
            np.concatenate([s.vectors(i) for (s, _), i in zip(parts, slots, strict=True)]),
            dim=self.dim,
        )
        return segment, np.ones(len(segment), dtype=bool)

    # --- Rebuilding from the database --------------------------------------------------------------------
    def rebuild(self, *, progress: Callable[[int], None] | None = None) -> int:
        """Build a fresh generation from every stored vector of this model, then catch up. Returns the count."""
        with self.locked():
            count = self._rebuild_locked(progress=progress)
        return count

    def _rebuild_locked(self, *, progress: Callable[[int], None] | None = None) -> int:
        # The feed position first: whatever commits during the scan has a later position and is
        # applied by the catch-up below, even if the scan missed it.
        position = ImageChange.objects.aggregate(top=Max("position"))["top"] or 0
        draft = _Draft(None)
        draft.learn_images(
            list(
                Image.objects.order_by()
                .values_list("pk", "owner_id", "is_public", "status")
                .iterator(chunk_size=10_000)
            )
        )
        regions = Region.objects.filter(embedding_model=self.model_name)
        per_segment = max(1, -(-regions.count() // self.shards))
        batch: list[tuple] = []
        pending: list[tuple] = []

        def flush() -> None:
            if pending:
                segment = write_segment(
                    self.directory,
                    [r[0] for r in pending],
                    [r[1] for r in pending],
                    [r[2] == Region.Kind.GLOBAL for r in pending],
                    _unpack([r[3] for r in pending], self.dim),
                    dim=self.dim,
                )
                draft.segments.append(segment)
                draft.alive.append(np.ones(len(segment), dtype=bool))
                pending.clear()

        rows = regions.order_by("pk").values_list("pk", "image_id", "kind", "embedding")
        for row in rows.iterator(chunk_size=REBUILD_BATCH):
            pending.append(row)
            batch.append(row)
            if len(batch) >= REBUILD_BATCH:
                if progress:
                    progress(len(batch))
                batch.clear()
            if len(pending) >= per_segment:
                flush()
        flush()
        if progress and batch:
            progress(len(batch))
        self.generation = None
        self._publish(draft, position)
        self._apply_feed()
        return self.published.ntotal

    # --- Feed retention -------------------------------------------------------------------------------
    def _maybe_prune(self) -> None:
        if time.monotonic() - self._pruned_at < PRUNE_EVERY_SECONDS:
            return
        self._pruned_at = time.monotonic()
        pruned = feed_prune(before_position=self.published.position)
        if pruned:
            logger.info("Pruned %d applied change-feed rows.", pruned)


def feed_prune(*, before_position: int) -> int:
    """Delete feed rows older than INDEX_FEED_RETENTION_HOURS up to `before_position`, keeping the newest row.

    Another machine's indexer that has not applied them by then rebuilds instead.
    """
    cutoff = timezone.now() - timedelta(hours=settings.INDEX_FEED_RETENTION_HOURS)
    latest = ImageChange.objects.aggregate(top=Max("position"))["top"] or 0
    limit = min(before_position, latest - 1)
    count, _ = ImageChange.objects.filter(position__lte=limit, created_at__lt=cutoff).delete()
    return count
