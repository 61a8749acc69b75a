"""The search service with tiny random models: ranking rules, privacy, and errors a person can act on.

Semantic quality is proven with the trained demo model in test_retrieval; here an exact copy of an
image is the query whose right answer is known whatever the weights.
"""

import numpy as np
import pytest

from gallery.models import Image, Region
from search.errors import SearchError
from search.queries import BoxQuery, ComposedQuery, ImageQuery, RegionQuery, SimilarQuery, Term, TextQuery
from search.query import Filters, search
from search.ranking import best_per_image
from search.request import parse_words, query_from
from tests import images


@pytest.fixture
def library(owner, friend, stranger, upload, colour_proposer):
    """owner: 3 private + 1 public image; stranger: 1 private image."""
    made = {}
    for seed in range(3):
        made[f"owner-{seed}"] = upload(owner, images.png(seed=seed), name=f"owner-{seed}.png").image
    public = upload(owner, images.png(seed=10), name="owner-public.png").image
    Image.objects.filter(pk=public.pk).update(is_public=True)
    made["owner-public"] = public
    made["stranger-secret"] = upload(stranger, images.png(seed=20), name="stranger-secret.png").image
    return made


def names(page) -> list[str]:
    return [result.image.original_name for result in page.results]


def test_an_exact_copy_finds_its_image_first_with_score_one(owner, library):
    page = search(user=owner, query=ImageQuery(images.png(seed=1)), min_score=-1)
    assert names(page)[0] == "owner-1.png"
    assert page.results[0].score == pytest.approx(1.0, abs=5e-3)
    assert page.results[0].kind == "global" and page.results[0].box == [0, 0, 160, 120]


def test_a_private_image_of_another_user_never_appears_even_for_its_exact_copy(owner, library):
    page = search(user=owner, query=ImageQuery(images.png(seed=20)), min_score=-1, page_size=100)
    assert "stranger-secret.png" not in names(page)
    assert len(page.results) == 4  # everything the owner may see, nothing else


def test_scopes_mine_and_public(owner, friend, library):
    everything = set(names(search(user=friend, query=TextQuery("anything"), min_score=-1)))
    assert everything == {"owner-public.png"}
    mine = set(names(search(user=owner, query=TextQuery("anything"), scope="mine", min_score=-1)))
    assert mine == {"owner-0.png", "owner-1.png", "owner-2.png", "owner-public.png"}
    public = set(names(search(user=owner, query=TextQuery("anything"), scope="public", min_score=-1)))
    assert public == {"owner-public.png"}


def test_anonymous_users_find_nothing(library):
    from django.contrib.auth.models import AnonymousUser

    assert search(user=AnonymousUser(), query=TextQuery("anything"), min_score=-1).results == []


def test_more_like_this_leaves_out_the_image_itself(owner, library):
    page = search(user=owner, query=SimilarQuery(library["owner-1"].pk), min_score=-1)
    assert "owner-1.png" not in names(page) and len(page.results) == 3


def test_more_like_this_of_a_strangers_private_image_is_no_such_image(owner, library):
    with pytest.raises(SearchError, match="No such image"):
        search(user=owner, query=SimilarQuery(library["stranger-secret"].pk))


def test_a_region_query_uses_the_stored_vector(owner, library):
    region = Region.objects.get(image=library["owner-2"], kind="global")
    page = search(user=owner, query=RegionQuery(region.pk), min_score=-1)
    assert "owner-2.png" not in names(page) and page.results


def test_a_strangers_region_is_no_such_region(owner, library):
    region = Region.objects.get(image=library["stranger-secret"], kind="global")
    with pytest.raises(SearchError, match="No such region"):
        search(user=owner, query=RegionQuery(region.pk))


def test_a_box_query_embeds_the_crop(owner, library):
    page = search(user=owner, query=BoxQuery(library["owner-0"].pk, (10, 10, 80, 60)), min_score=-1)
    assert page.results and "owner-0.png" not in names(page)


@pytest.mark.parametrize("box", [(0, 0, 161, 120), (-1, 0, 10, 10), (50, 50, 50, 60), (10, 10, 5, 5)])
def test_boxes_outside_the_image_are_refused_with_its_size(owner, library, box):
    with pytest.raises(SearchError, match="160x120"):
        search(user=owner, query=BoxQuery(library["owner-0"].pk, box))


def test_a_box_that_is_not_four_numbers_is_refused(owner, library):
    with pytest.raises(SearchError, match="four numbers"):
        search(user=owner, query=BoxQuery(library["owner-0"].pk, ("a", "b", "c", "d")))


@pytest.mark.parametrize(
    "text, message", [("", "Type something"), ("   \n ", "Type something"), ("x" * 10_000, "10000 characters")]
)
def test_empty_and_overlong_text_is_refused(owner, library, text, message):
    with pytest.raises(SearchError, match=message):
        search(user=owner, query=TextQuery(text))


def test_a_bad_query_image_gets_the_upload_reason_and_is_not_stored(owner, library, settings):
    before = sorted(p for p in settings.MEDIA_ROOT.rglob("*") if p.is_file())
    with pytest.raises(SearchError, match="not an image"):
        search(user=owner, query=ImageQuery(b"definitely not a picture"))
    search(user=owner, query=ImageQuery(images.png(seed=99)), min_score=-1)
    assert sorted(p for p in settings.MEDIA_ROOT.rglob("*") if p.is_file()) == before
    assert Image.objects.count() == 5


def test_the_threshold_drops_weak_matches(owner, library):
    assert (
        search(user=owner, query=ImageQuery(images.png(seed=1)), min_score=0.999).results[0].image.original_name
        == "owner-1.png"
    )
    assert len(search(user=owner, query=ImageQuery(images.png(seed=1)), min_score=0.999).results) <= 1


def test_pages_do_not_overlap_and_say_when_there_is_more(owner, library):
    first = search(user=owner, query=TextQuery("x"), min_score=-1, page_size=3)
    second = search(user=owner, query=TextQuery("x"), min_score=-1, page_size=3, page=2)
    assert first.has_next and not second.has_next
    assert len(first.results) == 3 and len(second.results) == 1
    assert not set(names(first)) & set(names(second))


def test_pages_fill_when_the_user_may_see_few_regions_among_many(owner, stranger, upload, settings, colour_proposer):
    settings.FETCH_K = 2  # far fewer than the stranger's regions: the restriction must be inside the search
    for seed in range(6):
        upload(stranger, images.png(seed=100 + seed), name=f"s{seed}.png")
    mine = [upload(owner, images.png(seed=200 + seed), name=f"m{seed}.png").image for seed in range(3)]
    page = search(user=owner, query=TextQuery("x"), min_score=-1, page_size=10)
    assert sorted(names(page)) == sorted(image.original_name for image in mine) == ["m0.png", "m1.png", "m2.png"]


@pytest.mark.parametrize("kind, expected", [("global", {"global"}), ("object", {"object"})])
def test_match_kind_filters(owner, upload, colour_proposer, kind, expected):
    for seed in range(2):
        upload(owner, images.png(seed=seed), name=f"{seed}.png")
    page = search(user=owner, query=TextQuery("x"), kind=kind, min_score=-1)
    assert page.results and {r.kind for r in page.results} == expected


def test_the_whole_image_wins_a_near_tie_and_a_clearly_better_object_wins(owner, settings):
    settings.SCORE_TIE_EPS = 0.02
    image = Image.objects.create(
        owner=owner,
        file="x.png",
        original_name="x.png",
        sha256="1" * 64,
        format="PNG",
        width=100,
        height=100,
        size_bytes=1,
        status="ready",
    )

    def region(kind: str, box) -> Region:
        return Region.objects.create(
            image=image,
            kind=kind,
            x1=box[0],
            y1=box[1],
            x2=box[2],
            y2=box[3],
            area_fraction=0.1,
            embedding=b"",
            embedding_model="m",
            embedding_dim=0,
        )

    whole, obj = region("global", (0, 0, 100, 100)), region("object", (10, 10, 50, 50))
    regions = Region.objects.all()
    near_tie = best_per_image({whole.pk: 0.50, obj.pk: 0.515}, regions, threshold=0.2)
    assert [(r.kind, r.box) for r in near_tie] == [("global", [0, 0, 100, 100])]
    clear = best_per_image({whole.pk: 0.50, obj.pk: 0.60}, regions, threshold=0.2)
    assert [(r.kind, r.box, r.score) for r in clear] == [("object", [10, 10, 50, 50], 0.60)]
    assert best_per_image({whole.pk: 0.1, obj.pk: 0.15}, regions, threshold=0.2) == []


def test_the_whole_image_handicap_lets_an_object_win_that_the_whole_image_outscored(owner, settings):
    settings.SCORE_TIE_EPS = 0.02
    image = Image.objects.create(
        owner=owner,
        file="x.png",
        original_name="x.png",
        sha256="1" * 64,
        format="PNG",
        width=100,
        height=100,
        size_bytes=1,
        status="ready",
        objects_status="found",
    )
    whole = Region.objects.create(
        image=image,
        kind="global",
        x1=0,
        y1=0,
        x2=100,
        y2=100,
        area_fraction=1.0,
        embedding=b"",
        embedding_model="m",
        embedding_dim=0,
    )
    obj = Region.objects.create(
        image=image,
        kind="object",
        x1=10,
        y1=10,
        x2=50,
        y2=50,
        area_fraction=0.1,
        embedding=b"",
        embedding_model="m",
        embedding_dim=0,
    )
    hits = {whole.pk: 0.90, obj.pk: 0.85}
    assert [r.kind for r in best_per_image(hits, Region.objects.all(), threshold=0.2)] == ["global"]
    handicapped = best_per_image(hits, Region.objects.all(), threshold=0.2, handicap=0.1)
    assert [(r.kind, r.score) for r in handicapped] == [("object", 0.85)]
    # A whole image with no object to fall back on keeps its place, at the lowered score.
    alone = best_per_image({whole.pk: 0.90}, Region.objects.all(), threshold=0.2, handicap=0.1)
    assert [(r.kind, r.score) for r in alone] == [("global", pytest.approx(0.80))]
    # Searchable, its objects not found yet: nothing to give way to, so no handicap.
    Image.objects.filter(pk=image.pk).update(objects_status="waiting")
    unrefined = best_per_image({whole.pk: 0.90}, Region.objects.all(), threshold=0.2, handicap=0.1)
    assert [(r.kind, r.score) for r in unrefined] == [("global", pytest.approx(0.90))]


def test_more_like_this_is_not_handicapped_and_other_queries_are(owner, library, settings):
    source = library["owner-0"]

    def global_scores(query) -> dict[str, float]:
        page = search(user=owner, query=query, kind="global", min_score=-1)
        return {r.image.original_name: r.score for r in page.results}

    # A picture that is no copy of any of them (a copy of one would come first, not lowered: test_copies).
    picture = images.noise_png(seed=3)
    settings.WHOLE_IMAGE_HANDICAP = 0.0
    similar, by_image = global_scores(SimilarQuery(image_id=source.pk)), global_scores(ImageQuery(picture))
    settings.WHOLE_IMAGE_HANDICAP = 0.25
    assert global_scores(SimilarQuery(image_id=source.pk)) == pytest.approx(similar)
    assert global_scores(ImageQuery(picture)) == pytest.approx({n: s - 0.25 for n, s in by_image.items()})


def test_more_like_this_has_its_own_default_threshold(owner, library, settings):
    """The same photo as "more like this" and as an uploaded query scores the same, but each kind
    shows what clears its own floor (MIN_SIMILAR_SIMILARITY, MIN_IMAGE_SIMILARITY)."""
    source = library["owner-0"]

    def shown(query) -> set[str]:
        return {r.image.original_name for r in search(user=owner, query=query, kind="global").results}

    settings.WHOLE_IMAGE_HANDICAP = 0.0
    scores = {
        r.image.original_name: r.score
        for r in search(user=owner, query=SimilarQuery(image_id=source.pk), kind="global", min_score=-1).results
    }
    floor = sorted(scores.values())[len(scores) // 2]  # half of them clear it
    settings.MIN_IMAGE_SIMILARITY, settings.MIN_SIMILAR_SIMILARITY = -1.0, floor
    assert shown(SimilarQuery(image_id=source.pk)) == {name for name, score in scores.items() if score >= floor}
    assert len(shown(SimilarQuery(image_id=source.pk))) < len(scores)
    settings.MIN_IMAGE_SIMILARITY, settings.MIN_SIMILAR_SIMILARITY = floor, -1.0
    assert shown(SimilarQuery(image_id=source.pk)) == set(scores)
    settings.MIN_SIMILAR_SIMILARITY = None  # unset: the image floor holds for it too
    assert shown(SimilarQuery(image_id=source.pk)) == {name for name, score in scores.items() if score >= floor}


def test_more_like_this_by_objects_finds_a_photo_that_shares_an_object(owner, upload, colour_proposer, settings):
    """With SIMILAR_BY_OBJECTS the photo's objects search too: another photo holding the same object
    (pixel for pixel) matches it at 1.0, however different the rest; without, only the whole photos
    are compared."""
    from PIL import Image as PILImage

    def picture(shared_at: tuple[int, int], other_colour: tuple[int, int, int], background) -> bytes:
        pixels = np.full((120, 160, 3), background, dtype=np.uint8)
        x, y = shared_at
        pixels[y : y + 30, x : x + 30] = (230, 40, 40)  # the object both photos hold
        pixels[70:110, 100:150] = other_colour
        return images.encode(PILImage.fromarray(pixels))

    source = upload(owner, picture((10, 10), (40, 200, 240), (40, 60, 50)), name="source.png").image
    upload(owner, picture((60, 40), (250, 230, 30), (200, 190, 160)), name="shares-the-red-square.png")
    upload(owner, images.png(seed=5), name="unrelated.png")

    settings.SIMILAR_BY_OBJECTS, settings.SCORE_TIE_EPS = True, 0.0
    page = search(user=owner, query=SimilarQuery(image_id=source.pk), min_score=-1)
    first = page.results[0]
    assert first.image.original_name == "shares-the-red-square.png"
    assert (first.kind, first.box, first.score) == ("object", [60, 40, 90, 70], pytest.approx(1.0, abs=5e-3))
    settings.SIMILAR_BY_OBJECTS = False
    page = search(user=owner, query=SimilarQuery(image_id=source.pk), min_score=-1)
    assert all(r.score < 0.99 for r in page.results)


def test_search_sees_images_processed_after_the_index_was_loaded(owner, upload):
    upload(owner, images.png(seed=1), name="first.png")
    search(user=owner, query=TextQuery("x"), min_score=-1)  # loads the index
    upload(owner, images.png(seed=2), name="second.png")
    page = search(user=owner, query=ImageQuery(images.png(seed=2)), min_score=-1)
    assert names(page)[0] == "second.png"


def test_search_never_returns_a_deleted_image(owner, upload, django_capture_on_commit_callbacks):
    from gallery.services import image_delete

    image = upload(owner, images.png(seed=1), name="gone.png").image
    search(user=owner, query=TextQuery("x"), min_score=-1)
    with django_capture_on_commit_callbacks(execute=True):
        image_delete(image=Image.objects.get(pk=image.pk))
    assert search(user=owner, query=ImageQuery(images.png(seed=1)), min_score=-1).results == []


def test_the_database_recheck_hides_an_image_made_private_before_the_index_learnt_it(friend, library, settings):
    from search.index import Visibility, get_index

    public = library["owner-public"]
    vector = Region.objects.get(image=public, kind="global").vector
    assert "owner-public.png" in names(search(user=friend, query=TextQuery("anything"), min_score=-1))
    # Made private, and no indexer has applied it yet: the index still offers it to the friend ...
    settings.INDEX_INLINE_WRITER = False
    Image.objects.filter(pk=public.pk).update(is_public=False)
    offered = get_index().search(vector, k=10, visibility=Visibility(user_id=friend.pk))[1][0].tolist()
    assert set(offered) & set(public.regions.values_list("pk", flat=True))
    # ... and the search service's check against the database is what keeps it out.
    assert names(search(user=friend, query=TextQuery("anything"), min_score=-1)) == []


# --- Filters: inside the scan, not after it ---------------------------------------------------


@pytest.fixture
def dated(owner, stranger, upload, colour_proposer):
    """Owner's photos from two cameras and three days, one of them in an album and a favourite."""
    from gallery import albums

    made = {}
    for seed, (when, model) in enumerate(
        [
            ("2023:05:01 10:00:00", "Z 6"),
            ("2024:07:14 10:00:00", "Canon EOS R5"),
            ("2024:08:01 10:00:00", "Canon EOS R5"),
        ]
    ):
        made[when[:7]] = upload(
            owner,
            images.camera_jpeg(
                seed=seed, taken=when, offset="+00:00", model=model, make="Nikon" if model == "Z 6" else "Canon"
            ),
            f"{when[:7]}.jpg",
        ).image
    album = albums.album_create(owner=owner, name="Summer")
    albums.album_add_images(album=album, image_ids=[made["2024:07"].pk])
    albums.favourites_set(user=owner, image_ids=[made["2023:05"].pk], on=True)
    return made, album


def test_filters_leave_only_the_photos_they_name(owner, dated):
    from datetime import date

    made, album = dated

    def found(**filters) -> set[str]:
        return set(names(search(user=owner, query=TextQuery("x"), min_score=-1, filters=Filters(**filters))))

    assert found() == {"2023:05.jpg", "2024:07.jpg", "2024:08.jpg"}
    assert found(taken_from=date(2024, 1, 1)) == {"2024:07.jpg", "2024:08.jpg"}
    assert found(taken_from=date(2024, 7, 14), taken_to=date(2024, 7, 14)) == {"2024:07.jpg"}
    assert found(album_id=album.pk) == {"2024:07.jpg"}
    assert found(camera="Canon EOS R5", taken_to=date(2024, 7, 31)) == {"2024:07.jpg"}
    assert found(favourites=True) == {"2023:05.jpg"}
    with pytest.raises(SearchError, match="swap them"):
        found(taken_from=date(2024, 2, 1), taken_to=date(2024, 1, 1))


def test_a_filter_narrows_the_faiss_scan_itself(owner, dated, settings):
    from search.index import Visibility, get_index

    made, album = dated
    generation = get_index().current()
    every = sum(mask.sum() for mask in generation.allowed(Visibility(user_id=owner.pk)))
    kept_image = made["2024:07"]
    only = generation.allowed(Visibility(user_id=owner.pk, only_image_ids=np.array([kept_image.pk])))
    assert sum(mask.sum() for mask in only) == kept_image.regions.count() < every
    settings.FETCH_K = 1  # one hit per scan round: the filtered page still fills
    page = search(
        user=owner, query=ImageQuery(images.camera_jpeg(seed=0)), min_score=-1, filters=Filters(camera="Canon EOS R5")
    )
    assert set(names(page)) == {"2024:07.jpg", "2024:08.jpg"}


def test_an_album_filter_needs_an_album_you_may_open(owner, stranger, dated):
    _, album = dated
    with pytest.raises(SearchError, match="No such album"):
        search(user=stranger, query=TextQuery("x"), min_score=-1, filters=Filters(album_id=album.pk))


# --- Composed queries -----------------------------------------------------------------------------


def scores_of(owner, query, **kwargs) -> dict[str, float]:
    page = search(user=owner, query=query, min_score=-1, page_size=50, **kwargs)
    return {r.image.original_name: r.score for r in page.results}


def test_a_composed_query_scores_the_weighted_mean_of_its_terms(owner, library, settings):
    settings.WHOLE_IMAGE_HANDICAP = 0.0
    words, photo = TextQuery("a red circle"), ImageQuery(images.png(seed=1))
    by_words, by_photo = scores_of(owner, words, kind="global"), scores_of(owner, photo, kind="global")
    both = scores_of(owner, ComposedQuery(positive=(Term(words, 1.0), Term(photo, 3.0))), kind="global")
    assert both == pytest.approx({name: (by_words[name] + 3 * by_photo[name]) / 4 for name in by_words}, abs=1e-4)
    # Its default threshold is the same mean of the terms' thresholds.
    settings.MIN_SIMILARITY, settings.MIN_IMAGE_SIMILARITY = 0.0, 1.0
    page = search(user=owner, query=ComposedQuery(positive=(Term(words, 1.0), Term(photo, 3.0))), kind="global")
    assert {r.image.original_name for r in page.results} == {n for n, s in both.items() if s >= 0.75 - 1e-6}


def test_a_negative_term_lowers_exactly_the_images_that_match_it(owner, library, settings):
    """Only what matches the left-out term (its best region over that term's threshold) loses the
    excess times the weight; everything else keeps its score."""
    settings.WHOLE_IMAGE_HANDICAP, settings.SCORE_TIE_EPS, settings.MIN_IMAGE_SIMILARITY = 0.0, 0.0, 0.9
    wanted, unwanted = TextQuery("a red circle"), ImageQuery(images.png(seed=1))
    plain = scores_of(owner, wanted)
    match = scores_of(owner, unwanted)  # each image's best region against the left-out photo
    composed = ComposedQuery(positive=(Term(wanted),), negative=(Term(unwanted, 2.0),))
    lowered = scores_of(owner, composed)
    expected = {name: score - 2.0 * max(0.0, match.get(name, -1) - 0.9) for name, score in plain.items()}
    assert lowered == pytest.approx(expected, abs=1e-4)
    assert lowered["owner-1.png"] < plain["owner-1.png"] - 0.1  # the exact copy matched at 1.0
    assert list(lowered) == sorted(lowered, key=lambda name: -lowered[name])


def test_a_left_out_phrase_has_its_own_floor_when_one_is_set(owner, library, settings):
    """MIN_EXCLUDE_SIMILARITY: a strict show floor must not stop a left-out phrase from matching."""
    settings.WHOLE_IMAGE_HANDICAP, settings.SCORE_TIE_EPS = 0.0, 0.0
    wanted, unwanted = ImageQuery(images.png(seed=1)), TextQuery("a red circle")
    plain, match = scores_of(owner, wanted), scores_of(owner, unwanted)
    floor = sorted(match.values())[len(match) // 2]  # half the images match the phrase over it
    settings.MIN_SIMILARITY, settings.MIN_EXCLUDE_SIMILARITY = 1.0, floor
    lowered = scores_of(owner, ComposedQuery(positive=(Term(wanted),), negative=(Term(unwanted, 2.0),)))
    expected = {name: score - 2.0 * max(0.0, match.get(name, -1) - floor) for name, score in plain.items()}
    assert lowered == pytest.approx(expected, abs=1e-4) and lowered != pytest.approx(plain, abs=1e-4)
    settings.MIN_EXCLUDE_SIMILARITY = None  # unset: the show floor, which nothing reaches here
    assert scores_of(owner, ComposedQuery(positive=(Term(wanted),), negative=(Term(unwanted, 2.0),))) == pytest.approx(
        plain, abs=1e-4
    )


def test_pages_of_a_query_with_a_negative_term_neither_repeat_nor_skip(owner, library, upload, settings):
    """The positive terms' best matches are the ones the negative terms sink: FAISS returns them first,
    and they must not take a page before the images they now rank under have been fetched."""
    for seed in range(30, 34):
        upload(owner, images.png(seed=seed), name=f"more-{seed}.png")
    copies = [ImageQuery(images.png(seed=0)), ImageQuery(images.png(seed=1))]
    plain = sorted(scores_of(owner, copies[0]).values(), reverse=True)  # the copy itself, then the rest
    # Only each copy matches its left-out term; weight 10 sinks it under everything else.
    settings.MIN_IMAGE_SIMILARITY, settings.FETCH_K = (plain[0] + plain[1]) / 2, 1  # one hit in the first round
    composed = ComposedQuery(positive=tuple(Term(c) for c in copies), negative=tuple(Term(c, 10.0) for c in copies))
    everything = names(search(user=owner, query=composed, min_score=-1, page_size=50))
    assert len(everything) == 8 and set(everything[-2:]) == {"owner-0.png", "owner-1.png"}
    paged = []
    for number in range(1, len(everything) + 1):
        page = search(user=owner, query=composed, min_score=-1, page=number, page_size=1)
        paged += names(page)
        assert page.has_next == (number < len(everything))
    assert paged == everything


def test_words_and_a_photo_leave_the_photo_out_and_keep_privacy(owner, stranger, library):
    source = library["owner-0"]
    both = query_from(text="a red circle", image_id=source.pk, image_weight=2.0)
    assert both == ComposedQuery(positive=(Term(TextQuery("a red circle")), Term(SimilarQuery(source.pk), 2.0)))
    found = names(search(user=owner, query=both, min_score=-1, page_size=50))
    assert "owner-0.png" not in found and "stranger-secret.png" not in found and len(found) == 3
    with pytest.raises(SearchError, match="No such image"):
        search(user=stranger, query=both)
    secret_region = Region.objects.filter(image=library["stranger-secret"]).first()
    hidden = query_from(text="a red circle -x", region_id=secret_region.pk)
    with pytest.raises(SearchError, match="No such region"):
        search(user=owner, query=hidden)
    # A left-out photo must be one the person may see, too.
    with pytest.raises(SearchError, match="No such image"):
        search(
            user=owner,
            query=ComposedQuery(
                positive=(Term(TextQuery("a")),), negative=(Term(SimilarQuery(library["stranger-secret"].pk)),)
            ),
        )


@pytest.mark.parametrize(
    "text, expected",
    [
        ("beach -people", (["beach"], ["people"])),
        ("sunset + boat -people -a dog", (["sunset", "boat"], ["people", "a dog"])),
        ("a red t-shirt", (["a red t-shirt"], [])),
        ("+cat +dog", (["cat", "dog"], [])),
        ("- people", ([], ["people"])),
        ("  ", ([], [])),
    ],
)
def test_parse_words(text, expected):
    assert parse_words(text) == expected


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"text": "-people"}, "not only what to leave out"),
        ({"text": "cat", "image_id": 1, "region_id": 2}, "at most one photo"),
        ({"image": b"x", "region_id": 2}, "at most one photo"),
        ({}, "Send text"),
    ],
)
def test_query_from_says_what_to_send(kwargs, message):
    with pytest.raises(SearchError, match=message):
        query_from(**kwargs)


@pytest.mark.parametrize("weight", [0.0, -1.0, 11.0])
def test_weights_out_of_range_are_refused(owner, library, weight):
    with pytest.raises(SearchError, match="weight must be above 0"):
        search(user=owner, query=query_from(text="cat", image_id=library["owner-0"].pk, image_weight=weight))


def test_words_with_more_like_this_by_objects_mix_into_each_of_the_photos_rows(owner, library, settings):
    """With SIMILAR_BY_OBJECTS the photo is several rows (itself, its objects): each is mixed with the
    words, and a region scores its best mix."""
    settings.SIMILAR_BY_OBJECTS, settings.SCORE_TIE_EPS, settings.WHOLE_IMAGE_HANDICAP = True, 0.0, 0.0
    source = library["owner-0"]
    words, _ = TextQuery("a red circle").vector(owner)
    rows, _ = SimilarQuery(source.pk).vector(owner)
    assert len(rows) > 1
    mixed = (words[None, :] + 2.0 * rows) / 3.0
    expected = {}
    for region in Region.objects.exclude(image=source).filter(image__owner=owner).select_related("image"):
        score = float((mixed @ region.vector).max())
        name = region.image.original_name
        expected[name] = max(expected.get(name, -1.0), score)
    composed = ComposedQuery(positive=(Term(TextQuery("a red circle")), Term(SimilarQuery(source.pk), 2.0)))
    assert scores_of(owner, composed) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(
    "params",
    [
        {"q": "a red circle"},
        {"q": "sunset + boat -people -a dog", "exclude_weight": "2.5", "scope": "mine", "kind": "object"},
        {"q": "at night", "similar": "7", "image_weight": "1.5"},
        {"box_image": "3", "box": "1,2,30.5,40", "kind": "global"},
        {"q": "-people", "region": "12"},
        {
            "q": "cat",
            "taken_from": "2024-06-01",
            "taken_to": "2024-08-31",
            "album": "4",
            "camera": "Pixel 7",
            "favourites": "on",
            "tag": "holiday",
        },
    ],
)
def test_a_request_goes_to_the_page_parameters_and_back_unchanged(params):
    from search.request import SearchRequest

    request = SearchRequest.from_params(params)
    assert request.to_params() == params
    assert SearchRequest.from_params(request.to_params()) == request


@pytest.mark.parametrize(
    "params, message",
    [
        ({"q": "cat", "similar": "¹"}, "similar: Enter a whole number"),
        ({"q": "cat", "album": str(10**30)}, "album: Ensure this value is less than or equal to"),
        ({"q": "cat", "taken_from": "yesterday"}, "taken_from: Enter a valid date"),
        ({"q": "cat", "scope": "everyone"}, "scope: Select a valid choice"),
        ({"similar": "1", "region": "2"}, "at most one photo at a time"),
    ],
)
def test_page_parameters_that_cannot_be_run_say_which_and_why(params, message):
    from search.request import SearchRequest

    with pytest.raises(SearchError, match=message):
        SearchRequest.from_params(params)
