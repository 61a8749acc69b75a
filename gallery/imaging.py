"""Turning any accepted image file (gallery.formats) into the RGB pixels the models and thumbnails see."""

from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps

from gallery.formats import open_image


def to_rgb(image: PILImage.Image) -> PILImage.Image:
    """Convert any Pillow mode to 8-bit RGB without the usual surprises.

    16-bit and float greyscale are scaled to 0-255 (a plain convert clips them to white) and
    transparency is composited over white (a plain convert turns it black).
    """
    if image.mode in {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}:
        pixels = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16"):
            pixels = pixels / 257.0
        else:
            low, high = float(pixels.min()), float(pixels.max())
            pixels = (pixels - low) * (255.0 / (high - low)) if high > low else np.zeros_like(pixels)
        return PILImage.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L").convert("RGB")
    has_alpha = image.mode in {"RGBA", "LA", "PA", "RGBa", "La"} or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        background = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PILImage.alpha_composite(background, rgba).convert("RGB")
    if image.mode == "RGB":
        return image
    return image.convert("RGB")


def open_rgb(path: Path | str | BinaryIO, *, at_least: int | None = None) -> PILImage.Image:
    """Open a stored original, apply its EXIF orientation, take the first frame, return RGB.

    With `at_least`, a JPEG or a camera RAW may come out smaller, as long as its long side stays at
    least that: libjpeg decodes at 1/2, 1/4 or 1/8 of the size in a fraction of the time (Pillow's
    draft mode), LibRaw at half size; for callers that shrink the picture anyway.
    """
    source = path if hasattr(path, "read") else open(path, "rb")  # noqa: SIM115 (closed below)
    try:
        image = open_image(source, at_least=at_least)
    finally:
        if source is not path:
            source.close()
    with image:
        image.seek(0)
        if at_least is not None and image.format == "JPEG":
            long_side = max(image.size)
            image.draft("RGB", (-(-at_least * image.width // long_side), -(-at_least * image.height // long_side)))
        oriented = ImageOps.exif_transpose(image)
        oriented.load()
        return to_rgb(oriented)
