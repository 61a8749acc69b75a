"""Upload rules: what we accept, and a clear sentence for everything we refuse."""

import pytest

from gallery.validation import UploadRejected, display_name, validate_image_bytes
from tests import images


def rejection(data: bytes) -> str:
    with pytest.raises(UploadRejected) as caught:
        validate_image_bytes(data)
    return str(caught.value)


def test_zero_bytes_is_rejected_as_empty():
    assert "empty" in rejection(b"")


def test_text_with_an_image_name_is_rejected_as_not_an_image():
    assert "not an image" in rejection(b"just some text pretending to be a jpeg")


def test_truncated_jpeg_is_rejected_as_truncated():
    assert "truncated or corrupt" in rejection(images.truncated_jpeg())


def test_corrupt_png_body_is_rejected():
    data = bytearray(images.png(64, 64))
    data[60:90] = b"\x00" * 30  # damage the compressed pixel data
    assert "corrupt" in rejection(bytes(data))


def test_file_over_the_size_cap_is_rejected_with_the_limit(settings):
    settings.MAX_UPLOAD_BYTES = 1000
    assert "limit" in rejection(images.noise_png(100, 100))


def test_decompression_bomb_is_rejected_before_decoding():
    message = rejection(images.png_bomb())
    assert "megapixel" in message


def test_image_over_the_pixel_cap_is_rejected_with_its_size(settings):
    settings.MAX_IMAGE_PIXELS = 100 * 100
    message = rejection(images.png(160, 120))
    assert "160x120" in message and "megapixel" in message


@pytest.mark.parametrize("markup", [images.SVG, images.HTML, b"\xef\xbb\xbf  <svg></svg>"])
def test_svg_and_html_are_rejected_by_name(markup):
    assert "SVG and HTML" in rejection(markup)


def test_formats_we_do_not_serve_are_rejected():
    from PIL import Image as PILImage

    assert "not accepted" in rejection(images.encode(PILImage.new("RGB", (8, 8)), "ICO"))


@pytest.mark.parametrize(
    "data, fmt, size",
    [
        (images.jpeg(160, 120), "JPEG", (160, 120)),
        (images.png(160, 120), "PNG", (160, 120)),
        (images.encode(images.scene(50, 40), "WEBP"), "WEBP", (50, 40)),
        (images.encode(images.scene(50, 40), "BMP"), "BMP", (50, 40)),
        (images.encode(images.scene(50, 40), "TIFF"), "TIFF", (50, 40)),
        (images.animated("GIF"), "GIF", (64, 48)),
        (images.animated("WEBP"), "WEBP", (64, 48)),
        (images.png(1, 300), "PNG", (1, 300)),
        (images.png(300, 1), "PNG", (300, 1)),
        (images.cmyk_jpeg(), "JPEG", (96, 64)),
        (images.png_16bit(), "PNG", (96, 64)),
        (images.palette_png(), "PNG", (96, 64)),
        (images.palette_png(transparent=True), "PNG", (96, 64)),
        (images.rgba_png(), "PNG", (96, 64)),
    ],
    ids=[
        "jpeg",
        "png",
        "webp",
        "bmp",
        "tiff",
        "animated-gif",
        "animated-webp",
        "1xN",
        "Nx1",
        "cmyk",
        "16-bit",
        "palette",
        "palette-transparent",
        "alpha",
    ],
)
def test_accepted_formats_and_modes(data, fmt, size):
    valid = validate_image_bytes(data)
    assert (valid.format, (valid.width, valid.height)) == (fmt, size)
    assert len(valid.sha256) == 64


def test_exif_rotated_jpeg_reports_its_upright_size():
    valid = validate_image_bytes(images.jpeg(160, 120, orientation=6))  # 90 degrees: stored landscape, shown portrait
    assert (valid.width, valid.height) == (120, 160)


@pytest.mark.parametrize(
    "name, shown",
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system32\\evil.png", "evil.png"),
        ("/absolute/path/photo.jpg", "photo.jpg"),
        ("   ", "upload"),
        (None, "upload"),
        (".hidden.png", "hidden.png"),
        ("фото кота 🐱.jpg", "фото кота 🐱.jpg"),
        ("bad\x00name\n.png", "badname.png"),
    ],
)
def test_display_names_lose_directories_and_control_characters(name, shown):
    assert display_name(name) == shown


def test_display_names_are_bounded_but_keep_their_extension():
    shown = display_name("a" * 500 + ".jpeg")
    assert len(shown) <= 200 and shown.endswith(".jpeg")
