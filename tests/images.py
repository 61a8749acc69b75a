"""Image files the tests make on the fly: every odd case the upload rules name."""

import io
import struct
import zlib

import numpy as np
from PIL import Image as PILImage


def encode(image: PILImage.Image, fmt: str = "PNG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def scene(width: int = 160, height: int = 120, *, seed: int = 0) -> PILImage.Image:
    """A background with two solid rectangles: content SAM and CLIP have something to work on."""
    rng = np.random.default_rng(seed)
    pixels = np.full((height, width, 3), rng.integers(20, 80, size=3), dtype=np.uint8)
    pixels[height // 6 : height // 2, width // 8 : width // 3] = rng.integers(150, 255, size=3)
    pixels[height // 2 : 5 * height // 6, width // 2 : 7 * width // 8] = rng.integers(100, 255, size=3)
    return PILImage.fromarray(pixels, "RGB")


def png(width: int = 160, height: int = 120, *, seed: int = 0) -> bytes:
    return encode(scene(width, height, seed=seed), "PNG")


def jpeg(width: int = 160, height: int = 120, *, seed: int = 0, orientation: int | None = None) -> bytes:
    image = scene(width, height, seed=seed)
    if orientation is None:
        return encode(image, "JPEG", quality=90)
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", quality=90, exif=exif.tobytes())


def truncated_jpeg() -> bytes:
    data = jpeg(320, 240, seed=3)
    return data[: len(data) // 2]


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG header promising width x height pixels, with a tiny body: a decompression bomb."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def animated(fmt: str) -> bytes:
    frames = [scene(64, 48, seed=seed) for seed in range(3)]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


def cmyk_jpeg() -> bytes:
    return encode(scene(96, 64).convert("CMYK"), "JPEG")


def png_16bit() -> bytes:
    gradient = (np.linspace(0, 65535, 96 * 64).reshape(64, 96)).astype(np.uint16)
    return encode(PILImage.fromarray(gradient), "PNG")  # uint16 arrays become mode I;16


def palette_png(transparent: bool = False) -> bytes:
    image = scene(96, 64).convert("P", palette=PILImage.Palette.ADAPTIVE, colors=8)
    return encode(image, "PNG", transparency=0) if transparent else encode(image, "PNG")


def rgba_png() -> bytes:
    image = scene(96, 64).convert("RGBA")
    image.putalpha(128)
    return encode(image, "PNG")


SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>'
HTML = b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>"


def noise_png(width: int = 200, height: int = 200, *, seed: int = 0) -> bytes:
    """Incompressible pixels: the file is about 3 bytes per pixel."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return encode(PILImage.fromarray(pixels, "RGB"), "PNG")


def camera_jpeg(
    *,
    seed: int = 0,
    taken: str | None = "2024:07:14 18:30:05",
    offset: str | None = "+02:00",
    gps: tuple | None = ((52, 31, 12), "N", (13, 24, 0), "E"),
    orientation: int | None = None,
    make: str = "Canon",
    model: str = "Canon EOS R5",
    size: tuple[int, int] = (160, 120),
) -> bytes:
    """A JPEG with the EXIF a camera writes: maker and model, date taken (with its offset), exposure,
    lens and GPS. Any of them can be left out, or given a malformed value."""
    from PIL.TiffImagePlugin import IFDRational

    exif = PILImage.Exif()
    exif[0x010F], exif[0x0110] = make, model
    if orientation is not None:
        exif[0x0112] = orientation
    details = exif.get_ifd(0x8769)
    if taken is not None:
        details[0x9003] = taken
    if offset is not None:
        details[0x9011] = offset
    details.update(
        {
            0x829A: IFDRational(1, 250),
            0x829D: IFDRational(28, 10),
            0x8827: 400,
            0x920A: IFDRational(50, 1),
            0xA434: "RF50mm F1.8 STM",
        }
    )
    if gps is not None:
        latitude, north, longitude, east = gps
        place = exif.get_ifd(0x8825)
        place[1], place[2] = north, tuple(IFDRational(part) for part in latitude)
        place[3], place[4] = east, tuple(IFDRational(part) for part in longitude)
    return encode(scene(*size, seed=seed), "JPEG", quality=90, exif=exif)


# --- What phones and cameras write (gallery/formats.py) -------------------------------------------
# Made by the real encoders: pillow-heif's libheif, Pillow's libavif, and Pillow's TIFF writer for a
# DNG (a TIFF of Bayer sensor data with DNG's tags), which LibRaw decodes like a camera's.

SHOT = {0x9003: "2025:09:28 00:13:05", 0x9011: "+01:00"}  # DateTimeOriginal, its offset


def camera_exif(*, position: bool = True) -> PILImage.Exif:
    from PIL.TiffImagePlugin import IFDRational

    exif = PILImage.Exif()
    exif[0x010F], exif[0x0110] = "Apple", "iPhone 15 Pro"
    exif.get_ifd(0x8769).update(SHOT)
    if position:
        exif.get_ifd(0x8825).update(
            {
                1: "N",
                2: (IFDRational(52), IFDRational(31), IFDRational(12)),
                3: "E",
                4: (IFDRational(13), IFDRational(24), IFDRational(0)),
            }
        )
    return exif


def heic(width: int = 160, height: int = 120, *, seed: int = 0, position: bool = True) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    return encode(scene(width, height, seed=seed), "HEIF", quality=90, exif=camera_exif(position=position).tobytes())


def avif(width: int = 160, height: int = 120, *, seed: int = 0, position: bool = True) -> bytes:
    return encode(scene(width, height, seed=seed), "AVIF", quality=90, exif=camera_exif(position=position).tobytes())


def jxl(width: int = 160, height: int = 120, *, seed: int = 0, position: bool = True) -> bytes:
    import pillow_jxl  # noqa: F401 (registers JPEG XL with Pillow)

    return encode(scene(width, height, seed=seed), "JXL", quality=90, exif=camera_exif(position=position).tobytes())


def mpo(*, seed: int = 6) -> bytes:
    """A phone's multi-picture JPEG (MPO: depth, or an Ultra HDR gain map after the photo), written by
    Pillow, which puts the camera's EXIF, GPS and all, into every picture."""
    return encode(
        scene(seed=seed),
        "MPO",
        save_all=True,
        append_images=[scene(80, 60, seed=seed + 1)],
        exif=camera_exif().tobytes(),
    )


def dng(
    width: int = 160, height: int = 120, *, seed: int = 0, position: bool = True, xmp: bytes | None = None
) -> bytes:
    """A camera RAW: the scene sampled through an RGGB Bayer filter, 12-bit, with DNG's tags, the
    camera's EXIF and (if asked) GPS and XMP in its first directory, as cameras write them."""
    from PIL.TiffImagePlugin import IFDRational, ImageFileDirectory_v2

    rgb = np.asarray(scene(width, height, seed=seed), dtype=np.uint16) * 16
    bayer = np.empty((height, width), dtype=np.uint16)
    bayer[0::2, 0::2] = rgb[0::2, 0::2, 0]  # R
    bayer[0::2, 1::2] = rgb[0::2, 1::2, 1]  # G
    bayer[1::2, 0::2] = rgb[1::2, 0::2, 1]  # G
    bayer[1::2, 1::2] = rgb[1::2, 1::2, 2]  # B
    tags = ImageFileDirectory_v2()
    tags[262] = 32803  # PhotometricInterpretation: CFA
    tags[33421], tags.tagtype[33421] = (2, 2), 3  # CFARepeatPatternDim
    tags[33422], tags.tagtype[33422] = b"\x00\x01\x01\x02", 1  # CFAPattern: RGGB
    tags[50706], tags.tagtype[50706] = b"\x01\x04\x00\x00", 1  # DNGVersion 1.4
    tags[50708] = "Canon EOS R6"  # UniqueCameraModel
    tags[50721], tags.tagtype[50721] = tuple(IFDRational(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1)), 10
    tags[50778] = 21  # CalibrationIlluminant1: D65
    tags[50717], tags.tagtype[50717] = 4095, 4  # WhiteLevel
    tags[0x010F], tags[0x0110] = "Canon", "Canon EOS R6"
    tags[0x8769] = dict(SHOT)
    if position:
        tags[0x8825] = dict(camera_exif().get_ifd(0x8825))
    if xmp is not None:
        tags[700], tags.tagtype[700] = xmp, 1
    return encode(PILImage.fromarray(bayer), "TIFF", tiffinfo=tags)
