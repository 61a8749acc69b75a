"""Pictures compared pixel for pixel: perceptual hashes, whether one picture is another cropped,
rescaled or re-encoded (same_picture), and where a piece of a photo lies in it (locate).

The near-duplicate rules that use them (thresholds, verdicts, groups) live in search.duplicates;
a search by an uploaded crop uses locate to show the photo it was cut from first (search.ranking).
"""

from dataclasses import dataclass

import numpy as np
from PIL import Image as PILImage


def perceptual_hash(picture: PILImage.Image) -> int:
    """The picture's 64-bit pHash as an unsigned int."""
    import imagehash

    bits = imagehash.phash(picture).hash.flatten()
    return int(np.packbits(bits).view(">u8")[0])


def signed_hash(picture: PILImage.Image) -> int:
    """perceptual_hash as the signed 64-bit int the database stores (Image.perceptual_hash)."""
    return int(np.array(perceptual_hash(picture), dtype=np.uint64).view(np.int64))


def hash_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) Hamming distances between two arrays of 64-bit hashes."""
    a = np.asarray(a).astype(np.int64).view(np.uint64)  # stored signed; the bits are what count
    b = np.asarray(b).astype(np.int64).view(np.uint64)
    return np.bitwise_count(a[:, None] ^ b[None, :]).astype(np.int64)


def hash_neighbours(hashes: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (i < j) of `hashes` at most `bits` apart, as two index arrays: FAISS's exhaustive
    binary range search (every pair is compared; 50,000 photos in about a second on 2 cores)."""
    import faiss

    codes = np.ascontiguousarray(np.asarray(hashes, dtype=np.int64)).view(np.uint8).reshape(-1, 8)
    index = faiss.IndexBinaryFlat(64)
    index.add(codes)
    limits, _, found = index.range_search(codes, bits + 1)  # distances strictly under the radius
    rows = np.repeat(np.arange(len(codes)), np.diff(limits.astype(np.int64)))
    keep = found > rows
    return rows[keep], found[keep].astype(np.int64)


# The pixel check for what the hash misses: a crop (of a rescale, of a re-encode) of another photo.
REGISTRATION_SIDE = 512  # both pictures are compared at most this wide or high
MIN_INLIERS = 25  # ORB matches that must agree on one scale + shift
MIN_COVERED = 0.9  # of the smaller picture, inside the other once registered
BLOCKS = 16  # per side of the overlap: the grid the pixels are compared on
# A block differs when its mean absolute grey difference (0-255, both lightly blurred) is over
# BLOCK_DIFFERENCE + BLOCK_TEXTURE x the block's own standard deviation: a busy texture survives a
# JPEG re-encode or a rescale less exactly than a flat sky, an object that came or went far less.
BLOCK_DIFFERENCE = 10.0
BLOCK_TEXTURE = 0.5
MAX_DIFFERENT_BLOCKS = 0.01  # share of the blocks that may differ (2 of 256): none did in bench/near_duplicates.py


@dataclass(frozen=True)
class Keypoints:
    """A picture ready for registration: grey, at most REGISTRATION_SIDE on its long side, with its
    ORB keypoints (x, y) and their binary descriptors. Made once per picture, compared with many."""

    grey: np.ndarray
    points: np.ndarray
    codes: np.ndarray | None


def keypoints(picture: PILImage.Image) -> Keypoints:
    import cv2

    factor = min(1.0, REGISTRATION_SIDE / max(picture.size))
    if factor < 1.0:
        picture = picture.resize(
            (max(1, round(picture.width * factor)), max(1, round(picture.height * factor))),
            PILImage.Resampling.BILINEAR,
        )
    grey = np.asarray(picture.convert("L"))
    if min(grey.shape) < 32:
        return Keypoints(grey=grey, points=np.zeros((0, 2), np.float32), codes=None)
    orb = cv2.ORB_create(nfeatures=1500, fastThreshold=5)  # 5, not 20: smooth pictures have few corners
    found, codes = orb.detectAndCompute(grey, None)
    return Keypoints(grey=grey, points=np.float32([point.pt for point in found]).reshape(-1, 2), codes=codes)


def same_picture(first: PILImage.Image | Keypoints, second: PILImage.Image | Keypoints) -> bool | None:
    """Whether one picture is the other cropped, rescaled or re-encoded (or all three): True, False,
    or None when the two cannot be registered (too small, too few corners, or simply unrelated).

    Registration, then comparison: ORB keypoints of both, matched and fitted by RANSAC to one
    scale + shift (OpenCV's estimateAffinePartial2D; a crop or rescale neither turns nor shears);
    the fit must put nearly all of the smaller picture inside the larger. Then the two are compared
    block by block where they overlap: another shot of the same place registers too, but somewhere
    an object moved, came or went, and those blocks differ (False).
    """
    import cv2

    a = first if isinstance(first, Keypoints) else keypoints(first)
    b = second if isinstance(second, Keypoints) else keypoints(second)
    if a.codes is None or b.codes is None or min(len(a.points), len(b.points)) < MIN_INLIERS:
        return None
    if a.grey.size > b.grey.size:  # one direction for either order of the arguments: the same verdict
        a, b = b, a
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(a.codes, b.codes)
    if len(matches) < MIN_INLIERS:
        return None
    source = a.points[[m.queryIdx for m in matches]]
    target = b.points[[m.trainIdx for m in matches]]
    cv2.setRNGSeed(0)  # RANSAC draws at random: the same pair gets the same verdict every time
    transform, inliers = cv2.estimateAffinePartial2D(source, target, method=cv2.RANSAC, ransacReprojThreshold=3.0)
    if transform is None or int(inliers.sum()) < MIN_INLIERS:
        return None
    scale = float(np.hypot(transform[0, 0], transform[1, 0]))
    if abs(transform[1, 0]) > 0.02 * scale or not 0.1 < scale < 10:  # turned: not a crop
        return None
    if scale < 1:  # compare at the coarser picture's resolution: shrink the finer one, never enlarge
        a, b = b, a
        transform = cv2.invertAffineTransform(transform)
        scale = 1 / scale
    b_grey = cv2.resize(
        b.grey,
        (max(1, round(b.grey.shape[1] / scale)), max(1, round(b.grey.shape[0] / scale))),
        interpolation=cv2.INTER_AREA,
    )
    transform = transform / scale
    # b seen in a's frame (a's pixel p shows b at transform @ p), and where b has pixels at all.
    size = (a.grey.shape[1], a.grey.shape[0])
    seen = cv2.warpAffine(b_grey, transform, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    inside = (
        cv2.warpAffine(
            np.full(b_grey.shape, 255, np.uint8), transform, size, flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
        )
        > 0
    )
    if inside.sum() < MIN_COVERED * min(a.grey.size, b_grey.size):
        return None
    rows, columns = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(columns[0], columns[-1] + 1))
    reference = cv2.GaussianBlur(a.grey, (5, 5), 0)[box].astype(np.float32)
    difference = np.abs(reference - cv2.GaussianBlur(seen, (5, 5), 0)[box].astype(np.float32))
    different, compared = _differing_blocks(reference, difference, inside[box], BLOCKS)
    if compared == 0:
        return None
    return different == 0


def _differing_blocks(reference: np.ndarray, difference: np.ndarray, valid: np.ndarray, blocks: int) -> tuple[int, int]:
    """On a blocks x blocks grid over two aligned pictures (`reference`, and the absolute `difference`
    of the other from it; grey or colour, lightly blurred): how many blocks differ, of how many
    compared (those at least half `valid`). A block differs when its mean difference is over
    BLOCK_DIFFERENCE + BLOCK_TEXTURE x the reference block's standard deviation."""
    edges_y = np.linspace(0, difference.shape[0], blocks + 1).astype(int)
    edges_x = np.linspace(0, difference.shape[1], blocks + 1).astype(int)
    different = compared = 0
    for top, bottom in zip(edges_y[:-1], edges_y[1:], strict=True):
        for left, right in zip(edges_x[:-1], edges_x[1:], strict=True):
            mask = valid[top:bottom, left:right]
            if mask.sum() < 0.5 * mask.size:
                continue
            compared += 1
            allowed = BLOCK_DIFFERENCE + BLOCK_TEXTURE * float(reference[top:bottom, left:right][mask].std())
            different += float(difference[top:bottom, left:right][mask].mean()) > allowed
    return different, compared


LOCATE_MATCH = 0.9  # normalised cross-correlation the best place for a picture inside another must reach
LOCATE_SIDE = 640  # the photo searched is shrunk to at most this (and the picture with it): 37 ms a 12-MP photo
LOCATE_MIN_SIDE = 24  # a smaller piece (once shrunk with the photo) is too little to tell where it lies


def locate(part: PILImage.Image, photo: PILImage.Image, photo_size: tuple[int, int] | None = None) -> list[int] | None:
    """Where `part` (a crop of some photo, saved at the size it was cut, perhaps re-encoded) lies in
    `photo`, pixel for pixel: its box in the photo's pixels, or None. `photo` may be a smaller copy
    of a photo of `photo_size` (width, height; read_rgb's at_least), which is then what the part
    was cut from and what the box is in. The best place by normalised
    cross-correlation (OpenCV's matchTemplate) must reach LOCATE_MATCH, then pass the same
    block-by-block comparison as same_picture, on a 4 x 4 grid.

    Only at the part's own size: a resized crop of a plain shape on a smooth background fits any
    such shape of that colour resized alike (our generator's scenes showed it), so it is left to CLIP.
    """
    import cv2

    full_width, full_height = photo_size or photo.size
    factor = min(1.0, LOCATE_SIDE / max(full_width, full_height))
    pixels = np.asarray(photo.convert("RGB"))  # in colour: a green shape on grass can be one grey
    template = np.asarray(part.convert("RGB"))
    working = (round(full_width * factor), round(full_height * factor))
    if photo.size != working:
        pixels = cv2.resize(pixels, working, interpolation=cv2.INTER_AREA)
    if factor < 1.0:
        template = cv2.resize(
            template,
            (max(1, round(part.width * factor)), max(1, round(part.height * factor))),
            interpolation=cv2.INTER_AREA,
        )
    height, width = template.shape[:2]
    if (
        min(width, height) < LOCATE_MIN_SIDE
        or width > pixels.shape[1]
        or height > pixels.shape[0]
        or template.reshape(-1, 3).std(axis=0).max() < 5
    ):
        return None  # too small to tell, larger than the photo, or flat (a flat patch matches every flat patch)
    _, score, _, (x, y) = cv2.minMaxLoc(cv2.matchTemplate(pixels, template, cv2.TM_CCOEFF_NORMED))
    if score < LOCATE_MATCH:
        return None
    found = cv2.GaussianBlur(pixels[y : y + height, x : x + width], (3, 3), 0).astype(np.float32)
    wanted = cv2.GaussianBlur(template, (3, 3), 0).astype(np.float32)
    different, _ = _differing_blocks(wanted, np.abs(found - wanted), np.ones((height, width), dtype=bool), 4)
    if different:
        return None
    return [round(x / factor), round(y / factor), round((x + width) / factor), round((y + height) / factor)]


def cut_from(part: PILImage.Image, photo: PILImage.Image, photo_size: tuple[int, int] | None = None) -> bool | None:
    """same_picture for pictures too smooth to register (too few corners for keypoints): whether
    `part` is `photo` cut at its own size (perhaps re-encoded). `locate` finds where it lies; then
    the two are compared block by block as same_picture compares (BLOCKS x BLOCKS), but no block may
    differ: a crop at its own size was never resampled, and a smooth picture has too little in it to
    tell another shot by otherwise. True, False (it lies there, but something in it differs:
    another shot), or None (it lies nowhere: no verdict). `photo` may be a smaller copy of a photo of
    `photo_size`, as for locate. A rescaled crop is not looked for: see locate."""
    import cv2

    box = locate(part, photo, photo_size)
    if box is None:
        return None
    full_width, _ = photo_size or photo.size
    factor = photo.width / full_width
    x1, y1, x2, y2 = (round(value * factor) for value in box)
    found = np.asarray(photo.convert("L"))[y1:y2, x1:x2]
    if min(found.shape) < 1:
        return None
    wanted = cv2.resize(np.asarray(part.convert("L")), (found.shape[1], found.shape[0]), interpolation=cv2.INTER_AREA)
    reference = cv2.GaussianBlur(wanted, (5, 5), 0).astype(np.float32)
    difference = np.abs(reference - cv2.GaussianBlur(found, (5, 5), 0).astype(np.float32))
    different, compared = _differing_blocks(reference, difference, np.ones(found.shape, dtype=bool), BLOCKS)
    if compared == 0:
        return None
    return different == 0
