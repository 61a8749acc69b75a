"""The search index: a cache of the database that one writer keeps up to date through the change feed.

These run inside Django's test transaction; tests/search/test_index_processes.py runs the same
code with real commits, several processes and a real `run_indexer`.
"""

import threading

import numpy as np
import pytest
from django.db import connection

from gallery.models import Image, ImageChange, Region
from gallery.services import image_set_visibility, regions_delete
from search.index import CorruptIndex, IndexReader, IndexUnavailable, Visibility, files, get_index
from search.index import writer as indexer_module
from search.index.files import Segment
from search.index.writer import IndexWriter, feed_prune
from tests import images

MODEL = "imgsearch-tiny/random"
DIM = 64


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


def ready_image(user, name: str = "x.png", *, public: bool = False) -> Image:
    return Image.objects.create(
        owner=user,
        file=f"originals/{name}",
        original_name=name,
        sha256=name.ljust(64, "0"),
        format="PNG",
        width=10,
        height=10,
        size_bytes=1,
        status="ready",
        is_public=public,
    )


@pytest.fixture
def image(owner) -> Image:
    return ready_image(owner)


def add_region(image: Image, seed: int, *, model: str = MODEL, kind: str = "object", pk: int | None = None) -> Region:
    return Region.objects.create(
        pk=pk,
        image=image,
        kind=kind,
        x1=0,
        y1=0,
        x2=10,
        y2=10,
        area_fraction=0.01,
        embedding=Region.pack_vector(unit(seed)),
        embedding_model=model,
        embedding_dim=DIM,
    )


@pytest.fixture
def writer(settings) -> IndexWriter:
    return IndexWriter(model_name=MODEL, dim=DIM, directory=settings.INDEX_DIR)


@pytest.fixture
def reader(settings) -> IndexReader:
    return IndexReader(model_name=MODEL, dim=DIM, directory=settings.INDEX_DIR)


def ids(reader: IndexReader) -> set[int]:
    return set(reader.current().ids().tolist())


def found(reader: IndexReader, visibility: Visibility, seed: int = 0) -> set[int]:
    return set(reader.search(unit(seed), k=100, visibility=visibility)[1][0].tolist())


# --- Search --------------------------------------------------------------------------------------


def test_search_finds_the_region_whose_vector_matches(image, writer, reader):
    regions = [add_region(image, seed) for seed in range(20)]
    writer.rebuild()
    scores, found_ids, _ = reader.search(unit(7), k=3)
    assert found_ids[0][0] == regions[7].pk
    assert scores[0][0] == pytest.approx(1.0, abs=1e-2)


def test_allowed_ids_restrict_inside_the_search_and_still_fill_k(image, writer, reader):
    regions = [add_region(image, seed) for seed in range(50)]
    writer.rebuild()
    allowed = np.array([r.pk for r in regions[40:]])
    scores, found_ids, eligible = reader.search(unit(3), k=5, allowed_ids=allowed)
    assert len(found_ids[0]) == 5 and set(found_ids[0]) <= set(allowed) and eligible == 10
    assert reader.search(unit(3), k=5, allowed_ids=np.array([], dtype=np.int64))[1].shape == (1, 0)


def test_a_rebuild_writes_equal_segments_that_are_searched_together(image, writer, reader, settings):
    settings.INDEX_SHARDS = 3
    writer = IndexWriter(model_name=MODEL, dim=DIM, directory=settings.INDEX_DIR)
    regions = [add_region(image, seed) for seed in range(30)]
    writer.rebuild()
    generation = reader.current()
    assert [len(segment) for segment in generation.segments] == [10, 10, 10]
    scores, found_ids, eligible = generation.search(unit(17), k=30)
    assert eligible == 30 and len(set(found_ids[0].tolist())) == 30
    assert found_ids[0][0] == regions[17].pk and np.all(np.diff(scores[0]) <= 1e-6)


def test_the_scan_only_returns_regions_the_user_may_see(owner, stranger, writer, reader):
    private, public = ready_image(owner, "private.png"), ready_image(owner, "public.png", public=True)
    secret = ready_image(stranger, "secret.png")
    pk = {
        name: add_region(image, seed).pk
        for seed, (name, image) in enumerate({"private": private, "public": public, "secret": secret}.items())
    }
    writer.rebuild()
    assert found(reader, Visibility(user_id=owner.pk)) == {pk["private"], pk["public"]}
    assert found(reader, Visibility(user_id=stranger.pk)) == {pk["public"], pk["secret"]}
    assert found(reader, Visibility(user_id=stranger.pk, scope="mine")) == {pk["secret"]}
    assert found(reader, Visibility(user_id=owner.pk, scope="public")) == {pk["public"]}
    assert found(reader, Visibility(user_id=owner.pk, exclude_image_id=public.pk)) == {pk["private"]}
    assert found(reader, Visibility(user_id=None)) == set()


def test_kind_filter_in_the_scan(image, owner, writer, reader):
    whole = add_region(image, 1, kind="global")
    part = add_region(image, 2)
    writer.rebuild()
    assert found(reader, Visibility(user_id=owner.pk, kind="global")) == {whole.pk}
    assert found(reader, Visibility(user_id=owner.pk, kind="object")) == {part.pk}


# --- The change feed ------------------------------------------------------------------------------


def feed_images() -> list[int]:
    return list(ImageChange.objects.values_list("image_id", flat=True))


def test_every_path_that_changes_search_writes_the_feed(owner, stranger, image):
    region = add_region(image, 1)
    assert feed_images() == [image.pk]
    other = ready_image(owner, "other.png")
    ImageChange.objects.all().delete()

    image_set_visibility(image=image, is_public=True)  # a service
    Image.objects.filter(pk=other.pk).update(status="pending")  # QuerySet.update, no updated_at
    Image.objects.filter(pk=other.pk).update(progress=50)  # not searchable state: no row
    with connection.cursor() as cursor:  # raw SQL
        cursor.execute("UPDATE gallery_region SET embedding_model = 'x' WHERE id = %s", [region.pk])
    assert feed_images() == [image.pk, other.pk, image.pk]

    ImageChange.objects.all().delete()
    stranger_image = ready_image(stranger, "stranger.png")
    add_region(stranger_image, 2)
    ImageChange.objects.all().delete()
    stranger.delete()  # a cascade: user -> images -> regions
    assert sorted(set(feed_images())) == [stranger_image.pk]
    assert len(feed_images()) == 2  # the region and the image


def test_new_and_deleted_regions_reach_readers_without_a_restart(image, writer, reader):
    first = add_region(image, 1)
    writer.rebuild()
    assert ids(reader) == {first.pk}
    second = add_region(image, 2)  # as the worker would, in another process
    result = writer.update()
    assert (result.added, result.removed) == (1, 0)
    assert reader.search(unit(2), k=1)[1][0][0] == second.pk
    regions_delete(queryset=Region.objects.filter(pk=first.pk))
    assert writer.update().removed == 1
    assert ids(reader) == {second.pk}


def test_an_update_with_nothing_in_the_feed_publishes_nothing(image, writer, reader):
    add_region(image, 1)
    first = writer.update().generation
    assert writer.update().generation == first
    assert reader.current().number == first


def test_regions_of_other_models_are_not_indexed(image, writer):
    add_region(image, 1, model="some-other-model/x")
    assert writer.rebuild() == 0
    add_region(image, 2, model="some-other-model/x")
    assert writer.update().added == 0


def test_a_region_with_an_id_below_ones_already_applied_is_still_indexed(image, writer, reader):
    first = add_region(image, 1)
    writer.rebuild()
    # Two workers took ids first+1 and first+2; the second committed first.
    later = add_region(image, 3, pk=first.pk + 2)
    writer.update()
    earlier = add_region(image, 2, pk=first.pk + 1)
    writer.update()
    assert ids(reader) == {first.pk, earlier.pk, later.pk}


def test_a_huge_id_jump_is_applied_in_a_few_queries(image, writer, reader, django_assert_max_num_queries):
    first = add_region(image, 1)
    writer.rebuild()
    far = add_region(image, 2, pk=first.pk + 5_000_000)
    with django_assert_max_num_queries(8):
        writer.update()
    assert ids(reader) == {first.pk, far.pk}


def test_visibility_changed_by_queryset_update_reaches_the_scan(owner, stranger, image, writer, reader):
    region = add_region(image, 1)
    writer.rebuild()
    assert found(reader, Visibility(user_id=stranger.pk)) == set()
    Image.objects.filter(pk=image.pk).update(is_public=True)  # no service, no updated_at
    writer.update()
    assert found(reader, Visibility(user_id=stranger.pk)) == {region.pk}
    Image.objects.filter(pk=image.pk).update(status="pending")
    writer.update()
    assert found(reader, Visibility(user_id=owner.pk)) == set()


def test_deleting_a_user_removes_their_vectors_and_files(
    owner, stranger, upload, writer, reader, settings, django_capture_on_commit_callbacks
):
    mine = upload(owner, images.png(seed=1)).image
    theirs = upload(stranger, images.png(seed=2)).image
    for image in (mine, theirs):
        Region.objects.filter(image=image).update(embedding_model=MODEL)
        Region.objects.filter(image=image).update(embedding=Region.pack_vector(unit(image.pk)), embedding_dim=DIM)
    writer.rebuild()
    stranger_regions = set(Region.objects.filter(image=theirs).values_list("pk", flat=True))
    assert stranger_regions <= ids(reader)
    with django_capture_on_commit_callbacks(execute=True):
        stranger.delete()
    writer.update()
    assert ids(reader) == set(Region.objects.filter(image=mine).values_list("pk", flat=True))
    assert not (settings.MEDIA_ROOT / theirs.file).exists()
    assert (settings.MEDIA_ROOT / mine.file).exists()


def test_an_index_behind_the_feeds_retention_rebuilds(image, writer, reader):
    first = add_region(image, 1)
    writer.rebuild()
    second = add_region(image, 2)
    third = add_region(image, 3)
    # Rows this index never applied were pruned (it was off for longer than the retention).
    ImageChange.objects.filter(position=ImageChange.objects.order_by("position").last().position - 1).delete()
    ImageChange.objects.filter(position__lte=writer.generation.position).delete()
    assert writer.update().rebuilt
    assert ids(reader) == {first.pk, second.pk, third.pk}


def test_pruning_keeps_unapplied_and_recent_rows(image, settings):
    from datetime import timedelta

    from django.utils import timezone

    for seed in range(4):
        add_region(image, seed)
    positions = list(ImageChange.objects.values_list("position", flat=True))
    ImageChange.objects.update(created_at=timezone.now() - timedelta(hours=settings.INDEX_FEED_RETENTION_HOURS + 1))
    assert feed_prune(before_position=positions[1]) == 2
    assert list(ImageChange.objects.values_list("position", flat=True)) == positions[2:]
    assert feed_prune(before_position=positions[-1]) == 1  # the newest row stays: it marks the end
    assert list(ImageChange.objects.values_list("position", flat=True)) == positions[3:]


# --- Segments ---------------------------------------------------------------------------------------


def test_many_deletions_rewrite_the_segments_and_keep_answers_right(image, writer, reader):
    regions = [add_region(image, seed) for seed in range(40)]
    writer.rebuild()
    regions_delete(queryset=Region.objects.filter(pk__in=[r.pk for r in regions[:30]]))
    writer.update()
    generation = reader.current()
    assert ids(reader) == {r.pk for r in regions[30:]}
    assert sum(len(segment) for segment in generation.segments) == 10  # dead slots were dropped
    assert generation.search(unit(35), k=1)[1][0][0] == regions[35].pk


def test_small_segments_are_merged(image, writer, reader):
    regions = [add_region(image, seed) for seed in range(40)]
    writer.rebuild()
    for seed in range(40, 52):
        regions.append(add_region(image, seed))
        writer.update()
    generation = reader.current()
    # The rebuild's shards and at most MERGE_FACTOR - 1 small segments added since.
    assert len(generation.segments) <= writer.shards + indexer_module.MERGE_FACTOR - 1
    assert ids(reader) == {r.pk for r in regions}
    assert generation.search(unit(50), k=1)[1][0][0] == regions[50].pk


@pytest.mark.slow
def test_an_index_grown_one_photo_at_a_time_keeps_a_logarithmic_number_of_segments(image, writer, reader):
    """1,000 rounds of the writer, one photo of 20 regions each (a library that grows a photo at a
    time): before tiered merging every round left a segment of its own, and the scan slowed with each."""
    rounds, per_round = 1000, 20
    regions, counts = [], []
    for number in range(rounds):
        regions += [add_region(image, number * per_round + i) for i in range(per_round)]
        writer.update()
        counts.append(len(reader.current().segments))
    factor, size, tiers = indexer_module.MERGE_FACTOR, indexer_module.MERGE_FLOOR, 1
    while size <= rounds * per_round:  # the tiers 20,000 vectors reach: under 4096, 4096-16383, 16384+
        size, tiers = size * factor, tiers + 1
    assert tiers == 3 and max(counts) <= (factor - 1) * tiers  # at most 9; it was one per round: 1,000
    assert ids(reader) == {r.pk for r in regions}
    assert reader.current().search(unit(rounds * per_round - 1), k=1)[1][0][0] == regions[-1].pk


def test_files_no_recent_generation_uses_are_removed(image, writer, settings):
    add_region(image, 1)
    writer.rebuild()
    for seed in range(2, 12):
        regions_delete(queryset=Region.objects.all())
        add_region(image, seed)
        writer.update()
    names = [path.name for path in writer.directory.iterdir()]
    assert (
        len([name for name in names if name.endswith(".json") and name.startswith("gen-")])
        <= indexer_module.KEEP_GENERATIONS + 1
    )
    assert not [name for name in names if ".tmp-" in name]


# --- Readers: read-only, never a half-written or foreign generation ------------------------------------


def test_a_reader_writes_nothing(image, writer, reader, settings):
    add_region(image, 1)
    writer.rebuild()
    before = {path.name: path.stat().st_mtime_ns for path in writer.directory.iterdir()}
    add_region(image, 2)  # the feed has work, but readers leave it to the writer
    reader.search(unit(1), k=5)
    assert {path.name: path.stat().st_mtime_ns for path in writer.directory.iterdir()} == before


def test_with_no_published_generation_a_reader_says_so_and_writes_nothing(reader, settings):
    with pytest.raises(IndexUnavailable):
        reader.current()
    assert not settings.INDEX_DIR.exists()


def test_a_generation_not_yet_published_is_not_read(image, writer, reader):
    add_region(image, 1)
    writer.rebuild()
    published = reader.current().number
    # A writer died after writing the next generation's manifest but before switching CURRENT.
    manifest, _ = files.generation_paths(writer.directory, published + 1)
    manifest.write_text('{"version": 3, "segments": [')
    add_region(image, 2)
    assert reader.current().number == published
    writer.update()  # the next writer publishes past the dead one's files
    assert reader.current().number > published and len(ids(reader)) == 2


def test_a_corrupt_segment_is_refused_and_the_writer_rebuilds(image, writer, reader, settings):
    region = add_region(image, 1)
    writer.rebuild()
    segment = reader.current().segments[0]
    codes_path, _ = files.segment_paths(writer.directory, segment.name)
    codes_path.write_bytes(b"not a faiss index")
    with pytest.raises(CorruptIndex):
        Segment(writer.directory, segment.name, dim=DIM)
    fresh_writer = IndexWriter(model_name=MODEL, dim=DIM, directory=settings.INDEX_DIR)
    assert fresh_writer.update().rebuilt
    fresh_reader = IndexReader(model_name=MODEL, dim=DIM, directory=settings.INDEX_DIR)
    assert ids(fresh_reader) == {region.pk}


def test_an_index_of_another_dimension_is_not_loaded(image, writer, settings):
    add_region(image, 1)
    writer.rebuild()
    other = IndexReader(model_name=MODEL, dim=DIM + 1, directory=settings.INDEX_DIR)
    with pytest.raises(IndexUnavailable):
        other.current()


def test_an_index_with_vectors_the_database_lacks_is_rebuilt(image, writer, settings):
    region = add_region(image, 1)
    writer.rebuild()
    # The database was restored from a backup that predates the region; its feed ends earlier too.
    Region.objects.filter(pk=region.pk).delete()
    ImageChange.objects.all().delete()
    fresh_writer = IndexWriter(model_name=MODEL, dim=DIM, directory=settings.INDEX_DIR)
    assert fresh_writer.update().rebuilt
    assert fresh_writer.generation.ntotal == 0


# --- Searches in parallel -------------------------------------------------------------------------------


def test_two_searches_scan_at_the_same_time(image, reader, settings, monkeypatch):
    for seed in range(10):
        add_region(image, seed)
    # One segment, so the two scans the barrier waits for are two searches, not one search's segments.
    IndexWriter(model_name=MODEL, dim=DIM, directory=settings.INDEX_DIR, shards=1).rebuild()
    assert len(reader.current().segments) == 1
    # Each scan waits for the other one to be scanning too: a lock around the scan would time this out.
    both_scanning = threading.Barrier(2, timeout=10)
    original = Segment.scan

    def scan(self, *args):
        both_scanning.wait()
        return original(self, *args)

    monkeypatch.setattr(Segment, "scan", scan)
    results = [None, None]

    def run(slot: int) -> None:
        results[slot] = reader.search(unit(slot), k=3)[1][0].tolist()

    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not both_scanning.broken
    assert all(result and len(result) == 3 for result in results)


def test_concurrent_searches_return_what_serial_ones_do(owner, stranger, writer, reader):
    library = [ready_image(owner, f"{n}.png", public=n % 2 == 0) for n in range(6)]
    for seed in range(60):
        add_region(library[seed % 6], seed)
    writer.rebuild()
    generation = reader.current()
    queries = [(unit(seed), Visibility(user_id=user.pk)) for seed in range(24) for user in (owner, stranger)]
    serial = [generation.search(vector, k=10, visibility=visibility)[1].tolist() for vector, visibility in queries]
    parallel: list = [None] * len(queries)

    def run(start: int) -> None:
        for i in range(start, len(queries), 4):
            vector, visibility = queries[i]
            parallel[i] = reader.search(vector, k=10, visibility=visibility)[1].tolist()

    threads = [threading.Thread(target=run, args=(start,)) for start in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert parallel == serial


# --- The process-wide reader -------------------------------------------------------------------------------


def test_the_pipeline_makes_new_images_searchable_in_a_running_process(owner, upload):
    upload(owner)
    before = get_index().current().ntotal
    outcome = upload(owner, images.png(seed=3))
    global_region = Region.objects.get(image_id=outcome.image.pk, kind="global")
    generation = get_index().current()  # the inline writer (tests) applied the feed first
    assert generation.ntotal > before
    assert generation.search(global_region.vector, k=1)[1][0][0] == global_region.pk


def test_large_segments_are_inverted_files_that_find_the_same_regions(owner, stranger, settings):
    settings.INDEX_IVF_MIN_SLOTS = 300  # "large" for this test; 2M by default
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(12, DIM))
    vectors = centres[rng.integers(0, 12, 600)] + 0.3 * rng.normal(size=(600, DIM))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    mine, public = ready_image(owner, "mine.png"), ready_image(stranger, "public.png", public=True)
    Region.objects.bulk_create(
        [
            Region(
                image=mine if n % 3 else public,
                kind="object",
                x1=0,
                y1=0,
                x2=10,
                y2=10,
                area_fraction=0.01,
                embedding=Region.pack_vector(vector),
                embedding_model=MODEL,
                embedding_dim=DIM,
            )
            for n, vector in enumerate(vectors)
        ]
    )
    writer = IndexWriter(model_name=MODEL, dim=DIM, directory=settings.INDEX_DIR, shards=1)
    writer.rebuild()
    reader = IndexReader(model_name=MODEL, dim=DIM, directory=settings.INDEX_DIR)
    (segment,) = reader.current().segments
    assert segment.kind == "ivf" and segment.index.nlist == 24
    regions = list(Region.objects.order_by("pk"))
    stored = np.stack([region.vector for region in regions])
    assert np.allclose(segment.vectors(np.arange(600)), stored[np.argsort(np.argsort(segment.region_ids))], atol=1e-3)
    # Each region's own vector finds it first, for the owner and, if public, for the stranger only then.
    for region in regions[::25]:
        assert reader.search(region.vector, k=1, visibility=Visibility(user_id=owner.pk))[1][0][0] == region.pk
        hits = reader.search(region.vector, k=3, visibility=Visibility(user_id=stranger.pk))[1][0].tolist()
        assert (hits[0] == region.pk) == (region.image_id == public.pk)
        assert all(Region.objects.get(pk=pk).image_id == public.pk for pk in hits)
    # A rewrite of the mostly-dead segment reads its vectors back from the inverted lists.
    regions_delete(queryset=Region.objects.filter(pk__in=[r.pk for r in regions[:200]]))
    writer.update()
    (segment,) = reader.current().segments
    assert segment.kind == "ivf" and len(segment) == 400
    assert reader.search(regions[450].vector, k=1)[1][0][0] == regions[450].pk
