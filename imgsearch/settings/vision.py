"""Models that see (search/vision/): the model profile, where weights live, how models run, CLIP, the
region proposers and SAM."""

from pathlib import Path

from imgsearch.env import ConfigError, env_bool, env_float, env_int, env_str
from imgsearch.settings.core import BASE_DIR, VAR_DIR

# "full": ViT-B-32 CLIP + SAM ViT-B with downloaded weights (fetch_models).
# "tiny": small configs with random weights, built by the same loading code; for tests only.
# "demo": the small CLIP we train on generated shapes (committed weights) + the colour proposer;
#         the whole app works offline on generated scenes (`make demo`).
MODEL_PROFILE = env_str("IMGSEARCH_MODEL_PROFILE", "full")
MODEL_PROFILES = {
    "full": {
        "CLIP_MODEL": "ViT-B-32",
        "CLIP_PRETRAINED": "laion2b_s34b_b79k",
        "SAM_MODEL_TYPE": "vit_b",
        "SAM_CHECKPOINT_NAME": "sam_vit_b_01ec64.pth",
        "SAM_POINTS_PER_SIDE": 16,
        "SAM_PRED_IOU_THRESH": 0.86,
        "SAM_STABILITY_SCORE_THRESH": 0.92,
    },
    "tiny": {
        "CLIP_MODEL": "imgsearch-tiny",
        "CLIP_PRETRAINED": "",
        "SAM_MODEL_TYPE": "tiny",
        "SAM_CHECKPOINT_NAME": "",
        "SAM_POINTS_PER_SIDE": 2,
        # Random weights predict low IoU and unstable masks; let them through to test the plumbing.
        "SAM_PRED_IOU_THRESH": 0.0,
        "SAM_STABILITY_SCORE_THRESH": 0.0,
    },
    "demo": {
        "CLIP_MODEL": "imgsearch-demo",
        "CLIP_PRETRAINED": "",
        "CLIP_CHECKPOINT": str(BASE_DIR / "search" / "vision" / "model_weights" / "imgsearch-demo.pt"),
        # The colour proposer, with the learned objectness map filling its gaps (search/vision/objectness.py).
        "REGION_PROPOSER": "colour+objectness",
        # Its shapes can be small (7% of the short side: 0.06% of a 640x480 picture).
        "REGION_MIN_AREA_FRACTION": 0.0005,
        # A twentieth of a region's size around it: a tight crop of a square is one flat colour, as like
        # background as a square (bench/README.md, "What CLIP sees of a region").
        "REGION_CROP_CONTEXT": 0.05,
        # The lowest thresholds at which about 80% of what is shown is right on the tuning photographs;
        # a left-out phrase keeps a lower floor so that it still matches what it names (how each
        # was chosen, and its history: bench/README.md, "Held-out quality").
        "MIN_SIMILARITY": 0.92,
        "MIN_EXCLUDE_SIMILARITY": 0.89,
        "MIN_IMAGE_SIMILARITY": 0.92,
        "MIN_SIMILAR_SIMILARITY": 0.97,
        "WHOLE_IMAGE_HANDICAP": 0.1,
        "SIMILAR_BY_OBJECTS": True,
        # Chosen on the tuning backgrounds (bench/README.md, "More like this by what a photo is about").
        "REPEATED_REGION_SIMILARITY": 0.95,
        # Words and a photo together: what scores near the query's own best (chosen on the tuning split).
        "COMPOSED_MARGIN": 0.005,
        "MIN_COMPOSED_SIMILARITY": 0.5,
        "NEAR_DUPLICATE_SIMILARITY": 0.95,
        "NEAR_DUPLICATE_CHECK_SIMILARITY": 0.6,
        "TAG_VOCABULARY": str(BASE_DIR / "search" / "vocabularies" / "demo.txt"),
        "TAG_PROMPT": "a {}",
        "TAG_MIN_PROBABILITY": 0.5,
        "SAM_MODEL_TYPE": "tiny",
        "SAM_CHECKPOINT_NAME": "",
        "SAM_POINTS_PER_SIDE": 2,
        "SAM_PRED_IOU_THRESH": 0.0,
        "SAM_STABILITY_SCORE_THRESH": 0.0,
    },
}
if MODEL_PROFILE not in MODEL_PROFILES:
    raise ConfigError(f"IMGSEARCH_MODEL_PROFILE={MODEL_PROFILE!r}; choose one of {sorted(MODEL_PROFILES)}.")
# The defaults the chosen profile gives to the model and search settings (an environment variable still wins).
MODEL_PROFILE_DEFAULTS = MODEL_PROFILES[MODEL_PROFILE]

MODEL_CACHE_DIR = Path(env_str("MODEL_CACHE_DIR", str(VAR_DIR / "models")))
# "auto" picks CUDA when torch sees a GPU, else the CPU.
MODEL_DEVICE = env_str("MODEL_DEVICE", "auto")
# Opt-in int8 dynamic quantisation of the Linear layers of SAM and CLIP on the CPU: faster encoders,
# slightly different masks and vectors (bench/quantization_deltas.py measures both).
MODEL_INT8 = env_bool("MODEL_INT8", False)
# Opt-in bfloat16 autocast for SAM and CLIP: for CUDA and for CPUs with AVX512-BF16 or AMX (elsewhere
# it is emulated and slower); bench/quantization_deltas.py measures speed and deltas.
MODEL_BF16 = env_bool("MODEL_BF16", False)
if MODEL_INT8 and MODEL_BF16:
    raise ConfigError("MODEL_INT8 and MODEL_BF16 are alternatives; turn one of them off.")
# 0 keeps torch's default (all cores); set it lower when several workers share a machine.
TORCH_THREADS = env_int("TORCH_THREADS", 0, minimum=0)
# Processes that load models keep freed memory for reuse (glibc mallopt) instead of page-faulting
# large tensors in fresh each time: ~1.5x faster SAM on a CPU, at the cost of keeping peak memory.
MALLOC_KEEP_FREED = env_bool("MALLOC_KEEP_FREED", True)

CLIP_MODEL = env_str("CLIP_MODEL", MODEL_PROFILE_DEFAULTS["CLIP_MODEL"])
# An OpenCLIP pretrained tag; empty means random weights (tests only).
CLIP_PRETRAINED = env_str("CLIP_PRETRAINED", MODEL_PROFILE_DEFAULTS["CLIP_PRETRAINED"])
# A local weights file; when set it wins over CLIP_PRETRAINED's download cache.
CLIP_CHECKPOINT = env_str("CLIP_CHECKPOINT", MODEL_PROFILE_DEFAULTS.get("CLIP_CHECKPOINT", ""))
CLIP_BATCH_SIZE = env_int("CLIP_BATCH_SIZE", 32, minimum=1)

# "sam": Segment Anything; "colour": weight-free colour segmentation (generated scenes, tests);
# "colour+objectness": that joined with the demo's small learned objectness map (search/vision/objectness.py).
REGION_PROPOSER = env_str("REGION_PROPOSER", MODEL_PROFILE_DEFAULTS.get("REGION_PROPOSER", "sam"))
OBJECTNESS_WEIGHTS = env_str(
    "OBJECTNESS_WEIGHTS", str(BASE_DIR / "search" / "vision" / "model_weights" / "imgsearch-objectness.pt")
)
SAM_MODEL_TYPE = env_str("SAM_MODEL_TYPE", MODEL_PROFILE_DEFAULTS["SAM_MODEL_TYPE"])
SAM_CHECKPOINT = env_str(
    "SAM_CHECKPOINT",
    str(MODEL_CACHE_DIR / MODEL_PROFILE_DEFAULTS["SAM_CHECKPOINT_NAME"])
    if MODEL_PROFILE_DEFAULTS["SAM_CHECKPOINT_NAME"]
    else "",
)
# 16x16 prompts instead of SAM's 32x32: 4x fewer mask decodes, and the objects worth a search
# result are large enough to be hit by a 16-point grid.
SAM_POINTS_PER_SIDE = env_int("SAM_POINTS_PER_SIDE", MODEL_PROFILE_DEFAULTS["SAM_POINTS_PER_SIDE"], minimum=1)
# Prompts decoded at once. The decoder copies the image embedding once per prompt, so big batches
# thrash memory on a CPU (bench/README.md: 16 and 64 tie, 256 is slower); try 64+ on a GPU.
SAM_POINTS_PER_BATCH = env_int("SAM_POINTS_PER_BATCH", 16, minimum=1)
SAM_PRED_IOU_THRESH = env_float("SAM_PRED_IOU_THRESH", MODEL_PROFILE_DEFAULTS["SAM_PRED_IOU_THRESH"])
SAM_STABILITY_SCORE_THRESH = env_float(
    "SAM_STABILITY_SCORE_THRESH", MODEL_PROFILE_DEFAULTS["SAM_STABILITY_SCORE_THRESH"]
)
SAM_BOX_NMS_THRESH = env_float("SAM_BOX_NMS_THRESH", 0.7)
# >0 runs SAM's hole/island clean-up (needs OpenCV); it is slow and rarely changes a box.
SAM_MIN_MASK_REGION_AREA = env_int("SAM_MIN_MASK_REGION_AREA", 0, minimum=0)
# SAM sees the image at 1024 px anyway; downscaling first keeps full-resolution masks of a
# 50 MP photo out of memory. Boxes are scaled back to original pixels.
SAM_MAX_SIDE = env_int("SAM_MAX_SIDE", 1024, minimum=32)

# Regions smaller than this fraction of the image are too small to be worth a search result.
REGION_MIN_AREA_FRACTION = env_float(
    "REGION_MIN_AREA_FRACTION", MODEL_PROFILE_DEFAULTS.get("REGION_MIN_AREA_FRACTION", 0.005)
)
# Boxes overlapping a better one by more than this IoU are the same object.
REGION_NMS_IOU = env_float("REGION_NMS_IOU", 0.8)
REGION_MAX_PER_IMAGE = env_int("REGION_MAX_PER_IMAGE", 24, minimum=0)
# What CLIP sees of a region or a drawn box: the box grown by this share of its width and height on
# each side (search.vision.proposers.with_context); the stored and shown box stays tight. Changing
# it changes what new vectors mean: `manage.py reprocess --all` re-embeds a library.
REGION_CROP_CONTEXT = env_float("REGION_CROP_CONTEXT", MODEL_PROFILE_DEFAULTS.get("REGION_CROP_CONTEXT", 0.0))
if not 0 <= REGION_CROP_CONTEXT <= 1:
    raise ConfigError(f"REGION_CROP_CONTEXT={REGION_CROP_CONTEXT} is a share of a box's size, from 0 to 1.")
