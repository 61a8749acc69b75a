"""The search index as every process reads it: immutable FAISS segments, memory-mapped read-only.
(Files and their layout: search/index/files.py.)

Readers (web processes) map the segment files read-only with FAISS's IO_FLAG_MMAP_IFC, so the
vectors live once in the page cache however many processes serve searches, and switch to a newer
generation when CURRENT changes. A generation is published only after all its files are complete,
and is checked against its manifest when loaded; a reader never writes.

A search restricts the scan to the slots its user may see: the alive bits and the image mirror give
a bitmap that FAISS applies inside the scan (IDSelectorBitmap), so a user who may see few regions
among many still gets a full top-k. The scan is exhaustive (recall 1.0 against exact search) and
runs one segment per thread, with no process-wide lock held. The mirror only narrows the scan: the
search service re-checks every hit against the database, so a change not applied yet can cost a
result slot but never show an image to someone who may not see it.
"""

import json
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from django.conf import settings

from gallery.selectors import searchable_image_mask
from search.index.files import (
    CURRENT_NAME,
    FORMAT_VERSION,
    CorruptIndex,
    Segment,
    generation_paths,
    model_directory,
    read_current,
)

logger = logging.getLogger(__name__)


class IndexUnavailable(RuntimeError):
    """No complete generation of the index exists yet (the indexer has not built one)."""


@dataclass(frozen=True)
class Visibility:
    """Which slots a search may return: the index-side mirror of search.query's database filter."""

    user_id: int | None  # None: anonymous, sees nothing
    scope: Literal["all", "mine", "public"] = "all"
    kind: Literal["both", "global", "object"] = "both"
    exclude_image_id: int | None = None
    # Filters (dates, album, camera, favourites) as the image ids they leave: None for no filter.
    only_image_ids: np.ndarray | None = None


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def scan_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=settings.INDEX_SHARDS, thread_name_prefix="index-scan")
    return _pool


@dataclass(frozen=True)
class Generation:
    """One published state of the index. Immutable: searches use it without a lock."""

    number: int
    id: str
    model_name: str
    dim: int
    position: int  # the last change-feed position applied
    segments: tuple[Segment, ...]
    alive: tuple[np.ndarray, ...]  # per segment: bool per slot
    owner: np.ndarray  # per image id: owner id, -1 when unknown or deleted
    public: np.ndarray  # per image id
    ready: np.ndarray  # per image id

    @property
    def ntotal(self) -> int:
        return int(sum(alive.sum() for alive in self.alive))

    def ids(self) -> np.ndarray:
        parts = [segment.region_ids[alive] for segment, alive in zip(self.segments, self.alive, strict=True)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def _image_ok(self, visibility: Visibility) -> np.ndarray:
        image_ok = searchable_image_mask(
            owner=self.owner, public=self.public, ready=self.ready, user_id=visibility.user_id, scope=visibility.scope
        )
        if visibility.exclude_image_id is not None and visibility.exclude_image_id < len(image_ok):
            image_ok[visibility.exclude_image_id] = False
        if visibility.only_image_ids is not None:
            kept = np.zeros_like(image_ok)
            ids = np.asarray(visibility.only_image_ids, dtype=np.int64)
            kept[ids[(ids >= 0) & (ids < len(kept))]] = True
            image_ok &= kept
        return image_ok

    def allowed(self, visibility: Visibility | None, allowed_ids: np.ndarray | None = None) -> list[np.ndarray]:
        """Per segment, the bitmap of slots a search may return."""
        if visibility is not None and visibility.user_id is None:
            return [np.zeros(len(segment), dtype=bool) for segment in self.segments]
        image_ok = None if visibility is None else self._image_ok(visibility)
        masks = []
        for segment, alive in zip(self.segments, self.alive, strict=True):
            mask = alive.copy()
            if allowed_ids is not None:
                mask &= np.isin(segment.region_ids, allowed_ids)
            if visibility is not None and image_ok is not None:
                image_ids = segment.image_ids
                in_range = image_ids < len(image_ok)
                mask &= in_range & image_ok[np.where(in_range, image_ids, 0)]
                if visibility.kind != "both":
                    mask &= segment.is_global if visibility.kind == "global" else ~segment.is_global
            masks.append(mask)
        return masks

    def image_scores(self, queries: np.ndarray, image_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """(len(image_ids), n_queries): each image's best score over all its live regions (whole image
        and objects) against each query row; -inf for an image with none. Exact: the regions' stored
        codes are decoded, not searched, so every region counts however many the image has."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        image_ids = np.asarray(image_ids, dtype=np.int64)
        best = np.full((len(image_ids), len(queries)), -np.inf, dtype=np.float32)
        if len(image_ids) == 0:
            return best
        order = np.argsort(image_ids)
        for segment, alive in zip(self.segments, self.alive, strict=True):
            slots = np.flatnonzero(alive & np.isin(segment.image_ids, image_ids))
            if len(slots) == 0:
                continue
            scores = segment.vectors(slots) @ queries.T
            rows = order[np.searchsorted(image_ids[order], segment.image_ids[slots])]
            np.maximum.at(best, rows, scores)
        return best

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        visibility: Visibility | None = None,
        allowed_ids: np.ndarray | None = None,
        masks: list[np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Top-k by cosine similarity among the slots `visibility` (and `allowed_ids`) allow.

        `masks` may be passed instead, as `allowed()` made them (a search computes them once for all
        its rounds, and while the query is being embedded). Returns (scores, region ids, allowed
        count): scores and ids are (n_queries, <=k), best first; the count says how many regions
        were eligible, so callers know when asking for a larger k cannot help.
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if masks is None:
            masks = self.allowed(visibility, allowed_ids)
        eligible = int(sum(mask.sum() for mask in masks))
        k = max(1, min(k, eligible))
        shares = _shares(list(zip(self.segments, masks, strict=True)), settings.INDEX_SHARDS)
        parts = [part for share in scan_pool().map(lambda share: [seg.scan(queries, k, m) for seg, m in share], shares)
                 for part in share]  # fmt: skip
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


def _shares(work: list[tuple[Segment, np.ndarray]], threads: int) -> list[list[tuple[Segment, np.ndarray]]]:
    """The scan split into at most `threads` shares of about equal work, one per scan thread: a
    segment larger than a share is scanned in parts (its allowed slots split in contiguous runs; the
    flat scan only computes the distances of the slots a mask allows), and small segments go
    together. However the index's segments came to be sized (a rebuild's equal shards, or the tiers
    of an index grown a photo at a time), each thread gets its share and no more than one task."""
    work = [(segment, mask) for segment, mask in work if mask.any()]
    total = sum(int(mask.sum()) for _, mask in work)
    if not work or threads <= 1:
        return [work] if work else []
    quota = -(-total // threads)  # ceiling
    pieces = []
    for segment, mask in work:
        allowed = np.flatnonzero(mask)
        if segment.kind == "flat" and len(allowed) > quota:
            for run in np.array_split(allowed, -(-len(allowed) // quota)):
                part = np.zeros_like(mask)
                part[run] = True
                pieces.append((segment, part))
        else:
            pieces.append((segment, mask))
    shares: list[list[tuple[Segment, np.ndarray]]] = [[] for _ in range(threads)]
    loads = [0] * threads
    for segment, mask in sorted(pieces, key=lambda piece: -int(piece[1].sum())):  # largest first, to the lightest
        lightest = loads.index(min(loads))
        shares[lightest].append((segment, mask))
        loads[lightest] += int(mask.sum())
    return [share for share in shares if share]


def load_generation(
    directory: Path, number: int, *, model_name: str, dim: int, cache: dict[str, Segment] | None = None
) -> Generation:
    """Open generation `number` read-only, reusing already-open segments from `cache`.

    Raises CorruptIndex for anything missing, foreign or inconsistent: such a generation is never used.
    """
    manifest_path, state_path = generation_paths(directory, number)
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise CorruptIndex(f"generation {number} has no manifest.") from None
    except ValueError as error:
        raise CorruptIndex(f"generation {number}'s manifest is unreadable ({error}).") from None
    expected = (FORMAT_VERSION, model_name, dim, number)
    found = tuple(manifest.get(key) for key in ("version", "model", "dim", "generation"))
    if "id" not in manifest:
        raise CorruptIndex(f"generation {number}'s manifest has no id.")
    if found != expected:
        raise CorruptIndex(f"generation {number} is {found}, not {expected}.")
    cache = {} if cache is None else cache
    segments = []
    for entry in manifest["segments"]:
        segment = cache.get(entry["name"]) or Segment(directory, entry["name"], dim=dim, kind=entry.get("kind", "flat"))
        if len(segment) != entry["slots"]:
            raise CorruptIndex(f"segment {entry['name']} has {len(segment)} slots, not {entry['slots']}.")
        segments.append(segment)
    try:
        with np.load(state_path) as state:
            alive = tuple(
                np.unpackbits(state[f"alive_{i}"], count=len(s), bitorder="little").astype(bool)
                for i, s in enumerate(segments)
            )
            owner, public, ready = state["owner"], state["public"], state["ready"]
    except FileNotFoundError:
        raise CorruptIndex(f"generation {number} has no state file.") from None
    except (KeyError, ValueError, OSError) as error:
        raise CorruptIndex(f"generation {number}'s state is unreadable ({error}).") from None
    if not (len(owner) == len(public) == len(ready)) or sum(int(a.sum()) for a in alive) != manifest["count"]:
        raise CorruptIndex(f"generation {number}'s state does not match its manifest.")
    return Generation(
        number=number,
        id=str(manifest["id"]),
        model_name=model_name,
        dim=dim,
        position=int(manifest["position"]),
        segments=tuple(segments),
        alive=alive,
        owner=owner,
        public=public,
        ready=ready,
    )


class IndexReader:
    """A process's read-only view of the published index; follows CURRENT to newer generations."""

    def __init__(self, *, model_name: str, dim: int, directory: Path):
        self.model_name = model_name
        self.dim = dim
        self.directory = model_directory(directory, model_name)
        self._generation: Generation | None = None
        self._seen: tuple[int, int] | None = None  # CURRENT's (inode, mtime) when last read
        self._refresh_lock = threading.Lock()

    def current(self) -> Generation:
        """The newest published generation. Raises IndexUnavailable when there is none yet."""
        self.refresh()
        generation = self._generation
        if generation is None:
            raise IndexUnavailable("The search index has not been built yet.")
        return generation

    def refresh(self) -> None:
        """Switch to the published generation if CURRENT changed: a stat, and rarely a load.

        One thread loads while others keep searching the generation they have; nothing here
        blocks a search for longer than a stat.
        """
        if not self._refresh_lock.acquire(blocking=self._generation is None):
            return
        try:
            try:
                stat = (self.directory / CURRENT_NAME).stat()
            except FileNotFoundError:
                return
            seen = (stat.st_ino, stat.st_mtime_ns)
            if seen == self._seen:
                return
            for _ in range(3):  # the writer may publish again and clean up while we read
                try:
                    current = read_current(self.directory)
                    if current is None:
                        return
                    number = current[0]
                    cache = {s.name: s for s in self._generation.segments} if self._generation else {}
                    self._generation = load_generation(
                        self.directory, number, model_name=self.model_name, dim=self.dim, cache=cache
                    )
                    break
                except CorruptIndex as error:
                    last_error = error
            else:
                logger.warning(
                    "Index %s: cannot load the published generation (%s); keeping the one loaded.",
                    self.directory,
                    last_error,
                )
                return
            self._seen = seen
        finally:
            self._refresh_lock.release()

    def search(self, queries: np.ndarray, k: int, **kwargs) -> tuple[np.ndarray, np.ndarray, int]:
        return self.current().search(queries, k, **kwargs)
