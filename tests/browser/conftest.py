"""Real Chromium (Debian's package) driven by Playwright against Django's live server."""

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does it)")
    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make around
    # it are ordinary synchronous code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import expect, sync_playwright

    # The first upload of a run loads CLIP inside the request (tasks run at commit in tests): seconds.
    expect.set_options(timeout=20_000)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    """A fresh browser tab. Every flow also checks the Content-Security-Policy: anything on our pages
    that the policy blocks (an inline script, a foreign source) fails the test that met it."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1200, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    blocked = []
    page.on(
        "console",
        lambda message: (
            blocked.append(f"{page.url}: {message.text}") if "Content Security Policy" in message.text else None
        ),
    )
    yield page
    context.close()
    assert not blocked, "the Content-Security-Policy blocked something:\n" + "\n".join(blocked)


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page, username: str, password: str) -> None:
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/images/")


PASSWORD = "a-long-pass-phrase-9"


def member(username: str):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(username=username, password=PASSWORD)


@pytest.fixture
def demo_scenes(demo_profile, django_capture_on_commit_callbacks):
    """Eight generated scenes for `owner`, processed by the real pipeline with the demo models."""
    from django.core.files.base import ContentFile
    from django.db import transaction

    from gallery.models import Image
    from gallery.services import image_create
    from search.vision.training import demo

    owner = member("owner")
    rng = np.random.default_rng(99)
    truth = {}
    for number in range(8):
        picture, shapes = demo.scene(320, 240, rng, count=2 + number % 2)
        buffer = io.BytesIO()
        picture.save(buffer, "PNG")
        name = f"scene-{number}.png"
        with transaction.atomic():
            outcome = image_create(owner=owner, upload=ContentFile(buffer.getvalue(), name=name))
        truth[outcome.image.pk] = shapes
    assert Image.objects.filter(status="ready").count() == 8
    return owner, truth
