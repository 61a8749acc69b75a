"""Search: the vector index (search/index/), thresholds and ranking, near-duplicates, tags, search
history and page sizes. Profile-dependent defaults come from the model profile (settings/vision.py)."""

from pathlib import Path

from imgsearch.env import env_bool, env_float, env_int, env_str
from imgsearch.settings.core import BASE_DIR, VAR_DIR
from imgsearch.settings.vision import MODEL_PROFILE_DEFAULTS

# --- Vector index ---------------------------------------------------------------------------
# Segments, generations and the writer lock of each model's index (see search/index/).
INDEX_DIR = Path(env_str("INDEX_DIR", str(VAR_DIR / "index")))
# Threads that scan segments at once per query; one per core is right for a web process. A
# rebuild writes this many equal segments.
INDEX_SHARDS = env_int("INDEX_SHARDS", 2, minimum=1)
# Segments with at least this many vectors are inverted files (IVF) instead of an exhaustive scan:
# a query then reads INDEX_IVF_NPROBE of their sqrt(n) lists, so the index can outgrow RAM.
INDEX_IVF_MIN_SLOTS = env_int("INDEX_IVF_MIN_SLOTS", 2_000_000, minimum=1)
# Lists an IVF segment scans per query; 0 = an eighth of them (recall@10 in bench/README.md).
INDEX_IVF_NPROBE = env_int("INDEX_IVF_NPROBE", 0, minimum=0)
# How often `run_indexer` looks at the change feed: a change reaches searches within about this long.
INDEX_POLL_SECONDS = env_float("INDEX_POLL_SECONDS", 0.5)
# Applied change-feed rows are deleted after this long; an indexer left off for longer rebuilds.
INDEX_FEED_RETENTION_HOURS = env_int("INDEX_FEED_RETENTION_HOURS", 24, minimum=1)
# /readyz reports the index as not keeping up once a change has waited this long (a stopped
# run_indexer, a full or read-only INDEX_DIR): searches still answer, from the last generation.
INDEX_LAG_SECONDS = env_float("INDEX_LAG_SECONDS", 60.0)
# Each process applies the change feed itself before searching, instead of a separate
# `run_indexer` (tests and debugging, like Q_SYNC).
INDEX_INLINE_WRITER = env_bool("INDEX_INLINE_WRITER", False)

# --- Search ---------------------------------------------------------------------------------
# Below this cosine similarity a text match is noise for ViT-B-32; the demo model scores higher overall.
MIN_SIMILARITY = env_float("MIN_SIMILARITY", MODEL_PROFILE_DEFAULTS.get("MIN_SIMILARITY", 0.2))
# Image-to-image similarities (query image, more like this, region, box) run on a higher scale
# than text-to-image ones, so they get their own floor.
MIN_IMAGE_SIMILARITY = env_float("MIN_IMAGE_SIMILARITY", MODEL_PROFILE_DEFAULTS.get("MIN_IMAGE_SIMILARITY", 0.5))
# "More like this" asks whether two photos are alike, a looser question than whether a photo holds a
# given thing: where a model rates unrelated photos of one kind of background close, it needs a higher floor.
# Unset (None): MIN_IMAGE_SIMILARITY's.
MIN_SIMILAR_SIMILARITY = env_float("MIN_SIMILAR_SIMILARITY", MODEL_PROFILE_DEFAULTS.get("MIN_SIMILAR_SIMILARITY"))
# A left-out phrase ("beach -people") lowers each image it matches by the excess over this floor;
# each phrase joined by "+" ("sunset + boat") must match a photo over it.
# Unset (None): MIN_SIMILARITY's. A show floor chosen for precision is too strict for it: the phrase
# would no longer match the thing it names.
MIN_EXCLUDE_SIMILARITY = env_float("MIN_EXCLUDE_SIMILARITY", MODEL_PROFILE_DEFAULTS.get("MIN_EXCLUDE_SIMILARITY"))
# A search by an uploaded photo looks for it, pixel for pixel, inside this many of its best results
# (a crop finds the photo it was cut from first); each costs reading that photo's file. 0: never.
SOURCE_CHECKED = env_int("SOURCE_CHECKED", 10, minimum=0)
# Regions fetched from FAISS per query before grouping by image; grown when filters leave too few.
FETCH_K = env_int("FETCH_K", 100, minimum=1)
# A whole-image match this close to the best object match wins: the whole photo is the better answer.
SCORE_TIE_EPS = env_float("SCORE_TIE_EPS", 0.02)
# Subtracted from whole-image scores for every query but "more like this" (which asks about a whole
# photo). 0 for real CLIP, where "a beach at sunset" should find whole photos; the demo profile
# searches for objects only and its small model rates busy scenes too close to the objects in them.
WHOLE_IMAGE_HANDICAP = env_float("WHOLE_IMAGE_HANDICAP", MODEL_PROFILE_DEFAULTS.get("WHOLE_IMAGE_HANDICAP", 0.0))
# "More like this" searches with the photo's whole-image vector and each of its objects' (a result
# scores its best match with any of them): photos that share an object with this one count as like
# it. On for the demo profile, where it was measured (bench/README.md); off by default until it is
# measured with real CLIP and SAM, whose many part and background masks may match too freely.
SIMILAR_BY_OBJECTS = env_bool("SIMILAR_BY_OBJECTS", MODEL_PROFILE_DEFAULTS.get("SIMILAR_BY_OBJECTS", False))
# With SIMILAR_BY_OBJECTS, an object region with another at least this alike in its own photo (a cell
# among cells, a tile among tiles: Region.twin_similarity) is texture, not a thing: it neither searches
# nor is found, or flat patches of unrelated photos, alike to 0.999, lead the results. Unset: kept.
REPEATED_REGION_SIMILARITY = env_float(
    "REPEATED_REGION_SIMILARITY", MODEL_PROFILE_DEFAULTS.get("REPEATED_REGION_SIMILARITY")
)
# Words and a photo together ("this photo, but red") score the mean of a text and a picture score,
# which has no scale of its own across queries: with COMPOSED_MARGIN set, such a query shows what
# scores within that margin of its own best result, over MIN_COMPOSED_SIMILARITY (unset: the mean
# of the terms' floors). Unset: the mean of the terms' floors alone, as for one term.
COMPOSED_MARGIN = env_float("COMPOSED_MARGIN", MODEL_PROFILE_DEFAULTS.get("COMPOSED_MARGIN"))
MIN_COMPOSED_SIMILARITY = env_float("MIN_COMPOSED_SIMILARITY", MODEL_PROFILE_DEFAULTS.get("MIN_COMPOSED_SIMILARITY"))
# Near-duplicates (search/duplicates.py): whole-image vectors at least this similar, and perceptual
# hashes at most this many bits (of 64) apart. Calibrated with bench/near_duplicates.py.
NEAR_DUPLICATE_SIMILARITY = env_float(
    "NEAR_DUPLICATE_SIMILARITY", MODEL_PROFILE_DEFAULTS.get("NEAR_DUPLICATE_SIMILARITY", 0.9)
)
NEAR_DUPLICATE_HASH_BITS = env_int("NEAR_DUPLICATE_HASH_BITS", 12, minimum=0)
# What the hash misses (a crop): the owner's NEAR_DUPLICATE_CHECKED nearest photos by whole-image
# vector, at least this similar, get the pixel check (search.duplicates.same_picture) in the
# background; a crop moves CLIP's whole-image vector more than a re-encode does, hence the lower floor.
NEAR_DUPLICATE_CHECK_SIMILARITY = env_float(
    "NEAR_DUPLICATE_CHECK_SIMILARITY", MODEL_PROFILE_DEFAULTS.get("NEAR_DUPLICATE_CHECK_SIMILARITY", 0.8)
)
NEAR_DUPLICATE_CHECKED = env_int("NEAR_DUPLICATE_CHECKED", 8, minimum=0)
NEAR_DUPLICATE_CHECK_HASH_BITS = env_int("NEAR_DUPLICATE_CHECK_HASH_BITS", 22, minimum=0)
# Automatic tags (search/tagging.py): the vocabulary file, the prompt each label goes into, and the
# zero-shot probability a region needs for a label.
TAG_VOCABULARY = env_str(
    "TAG_VOCABULARY",
    MODEL_PROFILE_DEFAULTS.get("TAG_VOCABULARY", str(BASE_DIR / "search" / "vocabularies" / "photos.txt")),
)
TAG_PROMPT = env_str("TAG_PROMPT", MODEL_PROFILE_DEFAULTS.get("TAG_PROMPT", "a photo of a {}"))
TAG_MIN_PROBABILITY = env_float("TAG_MIN_PROBABILITY", MODEL_PROFILE_DEFAULTS.get("TAG_MIN_PROBABILITY", 0.3))
# Each person's recent searches kept (suggestions in the header search box, the search page's list).
RECENT_SEARCHES_KEPT = env_int("RECENT_SEARCHES_KEPT", 50, minimum=1)
# CLIP reads 77 tokens; longer text is almost surely a paste accident.
SEARCH_MAX_QUERY_CHARS = env_int("SEARCH_MAX_QUERY_CHARS", 500, minimum=1)
SEARCH_PAGE_SIZE = env_int("SEARCH_PAGE_SIZE", 24, minimum=1)
SEARCH_MAX_PAGE_SIZE = env_int("SEARCH_MAX_PAGE_SIZE", 100, minimum=1)
