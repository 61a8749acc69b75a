"""The FAISS index: ids are Region keys, it catches up with the database, and it is only a cache."""
import numpy as np
import pytest

from gallery.models import Image, Region
from gallery.services import regions_delete
from django.utils import timezone

from search.index import VectorIndex, Watermark, get_index, reset_index

MODEL = "imgsearch-tiny/random"
DIM = 64


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


@pytest.fixture
def image(owner) -> Image:
    return Image.objects.create(owner=owner, file="originals/x.png", original_name="x.png", sha256="0" * 64,
                                format="PNG", width=100, height=100, size_bytes=1, status="ready")


def add_region(image: Image, seed: int, *, model: str = MODEL) -> Region:
    return Region.objects.create(image=image, kind="object", x1=0, y1=0, x2=10, y2=10, area_fraction=0.01,
                                 embedding=Region.pack_vector(unit(seed)), embedding_model=model, embedding_dim=DIM)


def new_index(settings) -> VectorIndex:
    return VectorIndex(model_name=MODEL, dim=DIM, directory=settings.INDEX_DIR)


def test_search_finds_the_region_whose_vector_matches(image, settings):
    regions = [add_region(image, seed) for seed in range(20)]
    index = new_index(settings)
    index.rebuild()
    scores, ids, _ = index.search(unit(7), k=3)
    assert ids[0][0] == regions[7].pk
    assert scores[0][0] == pytest.approx(1.0, abs=1e-2)


def test_allowed_ids_restrict_inside_the_search_and_still_fill_k(image, settings):
    regions = [add_region(image, seed) for seed in range(50)]
    index = new_index(settings)
    index.rebuild()
    allowed = np.array([r.pk for r in regions[40:]])
    scores, ids, eligible = index.search(unit(3), k=5, allowed_ids=allowed)
    assert len(ids[0]) == 5 and set(ids[0]) <= set(allowed) and eligible == 10
    assert index.search(unit(3), k=5, allowed_ids=np.array([], dtype=np.int64))[1].shape == (1, 0)


def test_sync_sees_new_regions_and_tombstones_without_a_restart(image, settings):
    first = add_region(image, 1)
    index = new_index(settings)
    index.rebuild()
    second = add_region(image, 2)  # as another process (the worker) would
    assert index.sync().added == 1
    assert index.search(unit(2), k=1)[1][0][0] == second.pk
    regions_delete(queryset=Region.objects.filter(pk=first.pk))
    assert index.sync().removed == 1
    assert set(index.ids()) == {second.pk}


def test_regions_of_other_models_are_not_indexed(image, settings):
    add_region(image, 1, model="some-other-model/x")
    index = new_index(settings)
    assert index.rebuild() == 0
    add_region(image, 2, model="some-other-model/x")
    assert index.sync().added == 0


def test_an_id_committed_after_a_higher_one_is_still_found():
    # Transaction A took id 5, transaction B took id 6 and committed first.
    mark = Watermark()
    mark.advance([1, 2, 3, 4, 6], now=0.0, ttl=60)
    assert mark.high == 6 and set(mark.gaps) == {5}
    mark.advance([5], now=1.0, ttl=60)  # A commits later; the gap query finds it
    assert mark.gaps == {}


def test_gaps_expire_so_rolled_back_ids_are_not_looked_for_forever():
    mark = Watermark()
    mark.advance([1, 3], now=0.0, ttl=60)
    mark.advance([], now=61.0, ttl=60)
    assert mark.gaps == {} and mark.high == 3


def test_late_committing_region_reaches_the_index(image, settings):
    first = add_region(image, 1)
    index = new_index(settings)
    index.rebuild()
    # Two workers took ids first+1 and first+2; the second committed first.
    later = Region.objects.create(pk=first.pk + 2, image=image, kind="object", x1=0, y1=0, x2=5, y2=5,
                                  area_fraction=0.1, embedding=Region.pack_vector(unit(3)),
                                  embedding_model=MODEL, embedding_dim=DIM)
    index.sync()
    assert set(index.ids()) == {first.pk, later.pk}
    earlier = Region.objects.create(pk=first.pk + 1, image=image, kind="object", x1=0, y1=0, x2=5, y2=5,
                                    area_fraction=0.1, embedding=Region.pack_vector(unit(2)),
                                    embedding_model=MODEL, embedding_dim=DIM)
    index.sync()
    assert set(index.ids()) == {first.pk, earlier.pk, later.pk}


def test_the_saved_index_is_loaded_and_caught_up(image, settings):
    add_region(image, 1)
    index = new_index(settings)
    index.rebuild()
    later = add_region(image, 2)
    loaded = new_index(settings)
    assert loaded.load()
    assert later.pk in set(loaded.ids()) and loaded.ntotal == 2


def test_a_corrupt_index_file_is_rebuilt_not_trusted(image, settings):
    region = add_region(image, 1)
    new_index(settings).rebuild()
    index = new_index(settings)
    index.index_path.write_bytes(b"not a faiss index")
    assert not index.load()
    reset_index()
    assert set(get_index().ids()) == {region.pk}


def test_a_stale_index_file_is_rebuilt(image, settings):
    add_region(image, 1)
    stale = new_index(settings)
    stale.rebuild()
    # A region at or below the saved watermark that the file does not hold: rows restored from a backup.
    stale.remove([int(stale.ids()[0])])
    stale.save()
    assert not new_index(settings).load()


def test_an_index_for_another_model_is_not_loaded(image, settings):
    add_region(image, 1)
    new_index(settings).rebuild()
    other = VectorIndex(model_name=MODEL, dim=DIM + 1, directory=settings.INDEX_DIR)
    assert not other.load()


def test_saving_is_atomic_and_leaves_no_temporary_files(image, settings):
    add_region(image, 1)
    index = new_index(settings)
    index.rebuild()
    assert sorted(p.name for p in settings.INDEX_DIR.iterdir()) == [
        "imgsearch-tiny_random.faiss", "imgsearch-tiny_random.json", "imgsearch-tiny_random.slots.npz"]


def test_the_pipeline_makes_new_images_searchable_in_a_running_process(owner, upload):
    index = get_index()
    before = index.ntotal
    outcome = upload(owner)
    global_region = Region.objects.get(image_id=outcome.image.pk, kind="global")
    index = get_index()  # every call catches up
    assert index.ntotal > before
    assert index.search(global_region.vector, k=1)[1][0][0] == global_region.pk


# --- The visibility mirror: the restriction applied inside the scan ---------------------------------

from search.index import Visibility  # noqa: E402


def ready_image(user, name: str, *, public: bool = False) -> Image:
    return Image.objects.create(owner=user, file=f"originals/{name}", original_name=name, sha256=name.ljust(64, "0"),
                                format="PNG", width=10, height=10, size_bytes=1, status="ready", is_public=public)


def found(index, visibility, seed=0) -> set[int]:
    return set(index.search(unit(seed), k=100, visibility=visibility)[1][0].tolist())


def test_the_scan_only_returns_regions_the_user_may_see(owner, stranger, settings):
    private, public = ready_image(owner, "private.png"), ready_image(owner, "public.png", public=True)
    secret = ready_image(stranger, "secret.png")
    regions = {name: add_region(image, seed) for seed, (name, image) in
               enumerate({"private": private, "public": public, "secret": secret}.items())}
    index = new_index(settings)
    index.rebuild()
    pk = {name: region.pk for name, region in regions.items()}
    assert found(index, Visibility(user_id=owner.pk)) == {pk["private"], pk["public"]}
    assert found(index, Visibility(user_id=stranger.pk)) == {pk["public"], pk["secret"]}
    assert found(index, Visibility(user_id=stranger.pk, scope="mine")) == {pk["secret"]}
    assert found(index, Visibility(user_id=owner.pk, scope="public")) == {pk["public"]}
    assert found(index, Visibility(user_id=owner.pk, exclude_image_id=public.pk)) == {pk["private"]}
    assert found(index, Visibility(user_id=None)) == set()


def test_visibility_and_status_changes_reach_the_mirror_on_sync(owner, stranger, settings):
    image = ready_image(owner, "x.png")
    region = add_region(image, 1)
    index = new_index(settings)
    index.rebuild()
    assert found(index, Visibility(user_id=stranger.pk)) == set()
    image.is_public = True
    image.save()
    index.sync()
    assert found(index, Visibility(user_id=stranger.pk)) == {region.pk}
    Image.objects.filter(pk=image.pk).update(status="pending", updated_at=timezone.now())
    index.sync()
    assert found(index, Visibility(user_id=owner.pk)) == set()


def test_kind_filter_in_the_scan(owner, settings):
    image = ready_image(owner, "x.png")
    whole = Region.objects.create(image=image, kind="global", x1=0, y1=0, x2=10, y2=10, area_fraction=1,
                                  embedding=Region.pack_vector(unit(1)), embedding_model=MODEL, embedding_dim=DIM)
    part = add_region(image, 2)
    index = new_index(settings)
    index.rebuild()
    assert found(index, Visibility(user_id=owner.pk, kind="global")) == {whole.pk}
    assert found(index, Visibility(user_id=owner.pk, kind="object")) == {part.pk}


def test_many_deletions_compact_the_shards_and_keep_answers_right(image, settings):
    regions = [add_region(image, seed) for seed in range(40)]
    index = new_index(settings)
    index.rebuild()
    regions_delete(queryset=Region.objects.filter(pk__in=[r.pk for r in regions[:30]]))
    index.sync()
    assert set(index.ids()) == {r.pk for r in regions[30:]}
    assert sum(len(shard.region_ids) for shard in index._shards) == 10  # dead slots were compacted away
    assert index.search(unit(35), k=1)[1][0][0] == regions[35].pk
    index.save()
    reloaded = new_index(settings)
    assert reloaded.load() and set(reloaded.ids()) == {r.pk for r in regions[30:]}


def test_shards_are_filled_evenly_and_searched_together(image, settings):
    settings.INDEX_SHARDS = 3
    regions = [add_region(image, seed) for seed in range(30)]
    index = new_index(settings)
    index.rebuild()
    assert [len(shard.region_ids) for shard in index._shards] == [10, 10, 10]
    scores, ids, eligible = index.search(unit(17), k=30)
    assert eligible == 30 and len(set(ids[0].tolist())) == 30
    assert ids[0][0] == regions[17].pk and np.all(np.diff(scores[0]) <= 1e-6)


def test_images_of_new_regions_are_learnt_even_when_their_change_looks_old(owner, settings):
    from datetime import timedelta

    index = new_index(settings)
    index.rebuild()
    image = ready_image(owner, "late.png")
    # Its status change committed long after its timestamp: outside the overlap window.
    Image.objects.filter(pk=image.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    index.sync()
    region = add_region(image, 4)
    index.sync()
    assert found(index, Visibility(user_id=owner.pk), seed=4) == {region.pk}


def test_thousands_of_gaps_are_looked_up_in_chunks(image, settings):
    first = add_region(image, 1)
    index = new_index(settings)
    index.rebuild()
    # 3000 ids were taken and rolled back (or deleted) before this process looked: all gaps now.
    late = Region.objects.create(pk=first.pk + 3001, image=image, kind="object", x1=0, y1=0, x2=5, y2=5,
                                 area_fraction=0.1, embedding=Region.pack_vector(unit(9)), embedding_model=MODEL,
                                 embedding_dim=DIM)
    index.sync()
    gaps = index.regions.gaps
    assert set(range(first.pk + 1, late.pk)) <= set(gaps)
    assert len(index.regions.pending()) == 1 + -(-len(gaps) // 500)
    index.sync()  # the chunked gap queries run without error
    assert set(index.ids()) == {first.pk, late.pk}
