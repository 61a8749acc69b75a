"""Issue 14 in a real browser: words added to a photo's results, words left out, and reviewing
near-duplicates down to the best copy."""

import io

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.db import transaction
from playwright.sync_api import expect

from gallery.models import Image
from gallery.services import image_create
from search.vision.training import demo
from tests.browser.conftest import PASSWORD, log_in, member, screenshot

pytestmark = [pytest.mark.slow]


def test_words_refine_a_photos_results_and_minus_words_leave_things_out(page, demo_scenes):
    owner, truth = demo_scenes
    source = next(iter(truth))
    log_in(page, "owner", PASSWORD)
    page.goto(f"/search/?similar={source}")
    expect(page.locator("label[for=id_q]")).to_have_text("Add words to this photo")
    colour, shape = truth[source][0].colour, truth[source][0].shape
    page.fill("#id_q", f"a {colour} {shape}")
    page.fill("#id_image_weight", "0.5")
    page.click("form[method=get] button[type=submit]")
    page.wait_for_url("**/search/?q=*")
    expect(page.locator(".searched h2")).to_have_text(
        f"Results for “a {colour} {shape}” + more like this photo (weight 0.5)"
    )
    assert "image_weight=0.5" in page.url and f"similar={source}" in page.url
    cards = page.locator(".results .card a.thumb")
    assert cards.count() >= 1 and all(
        f"/images/{source}/" != cards.nth(i).get_attribute("href") for i in range(cards.count())
    )
    screenshot(page, "composed-query")
    page.click("[data-drop-photo]")
    expect(page.locator(".searched h2")).to_have_text(f"Results for “a {colour} {shape}”")

    # Leave out a class that some scene holding the wanted one also holds: that scene drops down or out.
    page.fill("header input[name=q]", f"a {colour} {shape}")
    page.press("header input[name=q]", "Enter")
    page.wait_for_selector(".results .card")
    top = int(page.locator(".results .card a.thumb").first.get_attribute("href").strip("/").split("/")[-1])
    other = next(s for s in truth[top] if (s.colour, s.shape) != (colour, shape))
    page.fill("#id_q", f"a {colour} {shape} -a {other.colour} {other.shape}")
    page.click("form[method=get] button[type=submit]")
    expect(page.locator(".searched h2")).to_have_text(
        f"Results for “a {colour} {shape}” − “a {other.colour} {other.shape}”"
    )
    shown = [
        page.locator(".results .card a.thumb").nth(i).get_attribute("href")
        for i in range(page.locator(".results .card").count())
    ]
    assert not shown or shown[0] != f"/images/{top}/"


def test_review_near_duplicates_and_keep_the_best(page, demo_profile):
    owner = member("owner")
    picture, _ = demo.scene(640, 480, np.random.default_rng(11), count=3)
    other, _ = demo.scene(640, 480, np.random.default_rng(12), count=3)

    def save(image, name: str, fmt: str = "PNG", **params) -> Image:
        buffer = io.BytesIO()
        image.save(buffer, fmt, **params)
        with transaction.atomic():
            return image_create(owner=owner, upload=ContentFile(buffer.getvalue(), name=name)).image

    best = save(picture, "best.png")
    save(picture, "copy.jpg", "JPEG", quality=60)
    save(picture.resize((320, 240)), "small.png")
    save(other, "other.png")
    assert Image.objects.filter(status="ready").count() == 4
    log_in(page, "owner", PASSWORD)

    page.goto(f"/images/{best.pk}/")
    section = page.locator("section[aria-labelledby=near-duplicates]")
    expect(section.locator(".card")).to_have_count(2)
    assert "copy.jpg" in section.inner_text() and "small.png" in section.inner_text()
    section.locator("text=Review all and keep the best").click()

    page.wait_for_url("**/duplicates/")
    group = page.locator(".duplicate-group")
    expect(group).to_have_count(1)
    expect(group.locator(".card")).to_have_count(3)
    expect(page.locator("[data-bulk-count]")).to_have_text("2 selected")
    assert (
        "Keep" in group.locator(".card").first.inner_text() and "best.png" in group.locator(".card").first.inner_text()
    )
    screenshot(page, "near-duplicates")
    page.click("button[value=delete]")
    expect(page.locator("h1")).to_have_text("Delete 2 photos?")
    page.click("button.danger:has-text('Move 2 photos to the trash')")
    page.wait_for_url("**/duplicates/")
    expect(page.locator(".empty")).to_have_text("No near-duplicates among your processed photos.")
    assert sorted(Image.objects.values_list("original_name", flat=True)) == ["best.png", "other.png"]
    assert Image.all_objects.filter(trashed_at__isnull=False).count() == 2  # in the trash, restorable


def test_save_a_search_see_what_is_new_and_get_recent_words_offered(page, demo_scenes):
    owner, truth = demo_scenes
    colour, shape = next((s.colour, s.shape) for shapes in truth.values() for s in shapes)
    log_in(page, "owner", PASSWORD)
    page.fill("header input[name=q]", f"a {colour} {shape}")
    page.press("header input[name=q]", "Enter")
    page.wait_for_selector(".results .card")
    page.fill("#id_save_name", "my shapes")
    page.click(".save-search button")
    page.wait_for_url("**/saved/")
    expect(page.locator(".saved-searches li")).to_contain_text("nothing new")

    picture, _ = demo.scene(320, 240, np.random.default_rng(5), count=1)
    from PIL import ImageDraw

    demo.draw_shape(ImageDraw.Draw(picture), shape, colour, (100, 60, 220, 180))  # one more to find
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    with transaction.atomic():
        fresh = image_create(owner=owner, upload=ContentFile(buffer.getvalue(), name="fresh.png")).image
    page.reload()
    expect(page.locator(".saved-searches li")).to_contain_text("1 new")
    page.click("text=my shapes")
    new_card = page.locator(".results .card", has=page.locator(f"a[href='/images/{fresh.pk}/']"))
    expect(new_card.locator(".badge.new")).to_have_text("New")
    expect(page.locator(".results .badge.new")).to_have_count(1)
    screenshot(page, "saved-search-new")

    # The words come back as suggestions in the header's search box.
    options = page.locator("#recent-searches option")
    assert f"a {colour} {shape}" in [options.nth(i).get_attribute("value") for i in range(options.count())]
    assert page.locator("header input[name=q]").get_attribute("list") == "recent-searches"


def test_tags_show_as_chips_the_owner_corrects_them_and_a_chip_filters(page, demo_scenes):
    owner, truth = demo_scenes
    image_id, shapes = next(iter(truth.items()))
    labels = sorted({f"{s.colour} {s.shape}" for s in shapes})
    log_in(page, "owner", PASSWORD)
    page.goto(f"/images/{image_id}/")
    chips = page.locator(".chips .chip a")
    expect(chips).to_have_count(len(labels))
    assert sorted(chips.nth(i).inner_text() for i in range(chips.count())) == labels
    page.click(f"button[aria-label='Remove the tag {labels[0]}']")
    expect(page.locator(".messages")).to_contain_text(f"Removed the tag “{labels[0]}”")
    page.fill(".add-tag input[name=label]", "birthday")
    page.click(".add-tag button")
    expect(page.locator(".chips .chip.by-person a")).to_have_text("birthday")
    expect(page.locator(".chips .chip a")).to_have_count(len(labels))  # one off, one on
    screenshot(page, "tags")
    page.click(".chips .chip.by-person a")
    page.wait_for_url("**/images/?tag=birthday")
    expect(page.locator(".timeline .card")).to_have_count(1)
    expect(page.locator("#id_tag")).to_have_value("birthday")
