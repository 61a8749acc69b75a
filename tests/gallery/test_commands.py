"""Management commands: ingest_folder, reprocess, rebuild_index, fetch_models."""

import hashlib

import pytest
from django.core.management import CommandError, call_command

from gallery.models import Image, Region
from search.index import get_index
from search.management.commands.fetch_models import download
from search.vision.registry import reset_models
from tests import images


@pytest.fixture
def run(django_capture_on_commit_callbacks, capsys):
    def _run(*args) -> tuple[str, str]:
        with django_capture_on_commit_callbacks(execute=True):
            call_command(*args)
        captured = capsys.readouterr()
        return captured.out, captured.err

    return _run


def test_ingest_folder_queues_images_skips_duplicates_and_reports_rejects(owner, run, tmp_path):
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    (folder / "a.png").write_bytes(images.png(seed=1))
    (folder / "nested" / "b.jpg").write_bytes(images.jpeg(seed=2))
    (folder / "copy-of-a.png").write_bytes(images.png(seed=1))
    (folder / "notes.txt").write_text("not a photo")
    out, err = run("ingest_folder", str(folder), "--user", "owner")
    assert "2 queued, 1 duplicates skipped, 1 rejected." in out
    assert "notes.txt" in err and "not an image" in err
    assert set(Image.objects.values_list("original_name", "status")) == {("a.png", "ready"), ("b.jpg", "ready")}


def test_ingest_folder_names_an_unknown_user(db, tmp_path):
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        call_command("ingest_folder", str(tmp_path), "--user", "ghost")


def test_reprocess_failed_retries_failed_images_with_a_fresh_attempt_budget(owner, upload, run, settings):
    ready = upload(owner, images.png(seed=1)).image
    failed = upload(owner, images.png(seed=2)).image
    Image.objects.filter(pk=failed.pk).update(status="failed", error="boom", attempts=settings.IMAGE_MAX_ATTEMPTS)
    before = Image.objects.get(pk=ready.pk).processed_at
    out, _ = run("reprocess", "--failed")
    assert "Queued 1 image(s)." in out
    assert dict(Image.objects.values_list("pk", "status")) == {ready.pk: "ready", failed.pk: "ready"}
    assert Image.objects.get(pk=failed.pk).attempts == 1  # counted afresh from the retry
    assert Image.objects.get(pk=ready.pk).processed_at == before  # left alone


def test_rebuild_index_writes_every_stored_vector(owner, upload, run, settings):
    upload(owner, images.png(seed=1))
    upload(owner, images.png(seed=2))
    settings.INDEX_INLINE_WRITER = False  # only the command writes
    out, _ = run("rebuild_index")
    generation = get_index().current()
    assert set(generation.ids().tolist()) == set(Region.objects.values_list("pk", flat=True))
    assert f"Indexed {generation.ntotal} vectors" in out


def test_fetch_models_offline_says_where_to_put_the_checkpoint(db, settings, tmp_path):
    settings.SAM_MODEL_TYPE = "vit_b"
    settings.SAM_CHECKPOINT = str(tmp_path / "sam_vit_b_01ec64.pth")
    with pytest.raises(CommandError, match="put it at .*sam_vit_b_01ec64.pth"):
        call_command("fetch_models", "--skip-clip")
    assert not (tmp_path / "sam_vit_b_01ec64.pth").exists()


def test_download_verifies_the_checksum(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"weights" * 1000)
    target = tmp_path / "models" / "weights.pth"
    with pytest.raises(CommandError, match="corrupted"):
        download(source.as_uri(), target, md5="0" * 32)
    assert not target.exists() and not list(target.parent.glob("*.part"))
    download(source.as_uri(), target, md5=hashlib.md5(source.read_bytes()).hexdigest())
    assert target.read_bytes() == source.read_bytes()


def test_ingest_folder_can_make_the_new_images_public(owner, run, tmp_path):
    (tmp_path / "a.png").write_bytes(images.png(seed=5))
    run("ingest_folder", str(tmp_path), "--user", "owner", "--public")
    assert list(Image.objects.values_list("is_public", flat=True)) == [True]


def test_fetch_models_if_missing_is_quiet_when_all_is_in_place(db, run):
    out, err = run("fetch_models", "--if-missing")
    assert "all in place" in out and err == ""


def test_fetch_models_if_missing_offline_prints_a_banner_and_lets_the_app_start(db, run, settings, tmp_path):
    settings.SAM_MODEL_TYPE = "vit_b"
    settings.SAM_CHECKPOINT = str(tmp_path / "sam_vit_b_01ec64.pth")
    out, err = run("fetch_models", "--if-missing")  # no CommandError: `make run` goes on
    assert "fetching them now" in out
    assert "could not be fetched" in err and "processes\n them by itself" in err and "sam_vit_b_01ec64.pth" in err
    assert "CLIP" not in err  # present (the tiny profile's random weights): not fetched


def test_fetch_models_if_missing_says_how_to_train_missing_objectness_weights(db, run, settings, tmp_path):
    settings.REGION_PROPOSER = "colour+objectness"
    settings.OBJECTNESS_WEIGHTS = str(tmp_path / "imgsearch-objectness.pt")
    out, err = run("fetch_models", "--if-missing")  # nothing to download: it is trained here
    assert "fetching them now" in out and "train_demo_proposer" in err and "imgsearch-objectness.pt" in err


@pytest.fixture
def fresh_models():
    reset_models()
    yield
    reset_models()


def test_the_worker_sweep_queues_images_that_waited_for_weights(owner, upload, run, settings, tmp_path, fresh_models):
    settings.SAM_MODEL_TYPE = "vit_b"
    settings.SAM_CHECKPOINT = str(tmp_path / "sam_vit_b_01ec64.pth")
    image = upload(owner, images.png(seed=4)).image

    def stages():
        image.refresh_from_db()
        return image.status, image.objects_status, image.waiting_for_models

    assert stages() == ("ready", "failed", True)  # searchable; its objects wait for SAM
    run("run_worker", "--recover-only")
    assert stages() == ("ready", "failed", True)  # still missing
    settings.SAM_MODEL_TYPE, settings.SAM_CHECKPOINT = "tiny", ""  # weights in place (the tiny SAM needs no file)
    out, _ = run("run_worker", "--recover-only")
    assert "queued 1 image(s) that waited" in out
    assert stages() == ("ready", "found", False)


@pytest.mark.parametrize(
    "name",
    [
        "ingest_folder",
        "reprocess",
        "rebuild_index",
        "fetch_models",
        "run_worker",
        "run_indexer",
        "load_demo",
        "train_demo_model",
        "train_demo_proposer",
        "check_duplicates",
    ],
)
def test_every_argument_of_our_commands_says_what_it_does(name):
    from django.core.management import load_command_class
    from django.core.management.base import BaseCommand

    app = "gallery" if name in {"ingest_folder", "reprocess"} else "search"
    command = load_command_class(app, name)
    parser = command.create_parser("manage.py", name)
    django_own = {action.dest for action in BaseCommand().create_parser("manage.py", "x")._actions}
    ours = [action for action in parser._actions if action.dest not in django_own]
    assert command.help
    assert [action.dest for action in ours if not action.help] == []
