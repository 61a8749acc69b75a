"""Where image bytes live: Django's default storage (settings.STORAGES["default"]).

The filesystem under MEDIA_ROOT is the default. Any Django storage works, such as an S3-compatible
object store through django-storages (README, "Storage"), so that workers on other machines read the
same originals. Every access goes through this module; nothing else builds a media path.

Writes are all or nothing: on the filesystem the bytes go to a `.part` file first and are renamed
into place; an object store receives the whole object in one request.
"""

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage
from PIL import Image as PILImage

from gallery.imaging import open_rgb

logger = logging.getLogger(__name__)


# A library's photo (gallery.models.Library) is named library/<id>/<path in its folder>: read from
# there, never written or deleted.
LIBRARY_PREFIX = "library/"


def library_source(name: str) -> Path | None:
    """The file a library photo's name stands for; None for a stored file. FileNotFoundError for a
    library that is gone or a name that would leave its folder."""
    if not name.startswith(LIBRARY_PREFIX):
        return None
    from gallery.models import Library

    library_id, _, relative = name[len(LIBRARY_PREFIX) :].partition("/")
    root = (
        Library.objects.filter(pk=int(library_id)).values_list("path", flat=True).first()
        if library_id.isdigit()
        else None
    )
    if root is None:
        raise FileNotFoundError(f"No library for {name}")
    base = Path(root).resolve()
    path = (base / relative).resolve()
    if not path.is_relative_to(base):
        raise FileNotFoundError(f"{name} leaves its library's folder")
    return path


def is_local() -> bool:
    """True when the media live on this machine's filesystem (sendfile and `.part` sweeps need it)."""
    return isinstance(default_storage, FileSystemStorage)


def local_path(name: str) -> Path:
    """The file behind a storage name, for the filesystem storage only."""
    return Path(default_storage.path(name))


@contextmanager
def opened(name: str) -> Iterator[IO[bytes]]:
    """The stored file (or a library's) for reading. Raises FileNotFoundError when it is missing."""
    source = library_source(name)
    if source is not None:
        with open(source, "rb") as handle:
            yield handle
        return
    if not default_storage.exists(name):
        raise FileNotFoundError(f"No stored file {name}")
    with default_storage.open(name, "rb") as handle:
        yield handle


def read_rgb(name: str, *, at_least: int | None = None) -> PILImage.Image:
    """A stored image as RGB pixels, EXIF orientation applied (see gallery.imaging.open_rgb)."""
    with opened(name) as handle:
        return open_rgb(handle, at_least=at_least)


class StagedWrite:
    """Bytes on their way to `name`: written aside first, put in place by `commit`, or `discard`ed.

    Raises OSError (a full or read-only disk) from the constructor on the filesystem, so a caller
    learns before it creates any database row.
    """

    def __init__(self, name: str, data: bytes):
        self.name = name
        self.data = data
        self.part: Path | None = None
        if is_local():
            final = local_path(name)
            final.parent.mkdir(parents=True, exist_ok=True)
            self.part = final.with_name(f"{final.name}.{os.getpid()}.part")
            try:
                self.part.write_bytes(data)
            except OSError:
                self.part.unlink(missing_ok=True)
                raise

    def commit(self) -> None:
        if self.part is not None:
            os.replace(self.part, local_path(self.name))
            return
        saved = default_storage.save(self.name, ContentFile(self.data))
        if saved != self.name:  # names are random; a clash means the store renamed ours
            default_storage.delete(saved)
            raise FileExistsError(f"{self.name} already exists in the media storage")

    def discard(self) -> None:
        """Remove whatever this write left, committed or not (a read-only disk is reported, not raised)."""
        try:
            if self.part is not None:
                self.part.unlink(missing_ok=True)
            delete(self.name)
        except OSError:
            logger.exception("Could not remove %s", self.name)


def write(name: str, data: bytes) -> None:
    staged = StagedWrite(name, data)
    try:
        staged.commit()
    except BaseException:
        staged.discard()
        raise


def delete(name: str) -> None:
    if name.startswith(LIBRARY_PREFIX):
        return  # a library's files are the person's own: never deleted
    default_storage.delete(name)  # a missing file is not an error


def exists(name: str) -> bool:
    try:
        source = library_source(name)
    except FileNotFoundError:
        return False
    return source.is_file() if source is not None else default_storage.exists(name)


def stored_files(folder: str) -> Iterator[tuple[str, str]]:
    """(owner id, storage name) of every file under `folder`/<owner id>/ (how originals and the files
    made from them are laid out), through the storage API: a directory walk on the filesystem, a
    listing by prefix on an object store. `.part` files are left to partial_files."""
    try:
        owners, _ = default_storage.listdir(folder)
    except FileNotFoundError:
        return
    for owner in owners:
        if not owner.isdigit():
            continue
        try:
            _, files = default_storage.listdir(f"{folder}/{owner}")
        except FileNotFoundError:
            continue
        for name in files:
            if not name.endswith(".part"):
                yield owner, f"{folder}/{owner}/{name}"


def modified_at(name: str):
    """When a stored file was last written (an aware datetime)."""
    return default_storage.get_modified_time(name)


def partial_files(*, older_than_seconds: float) -> Iterator[Path]:
    """`.part` files older than this under MEDIA_ROOT: writes whose process died (filesystem only)."""
    if not is_local():
        return
    cutoff = time.time() - older_than_seconds
    for path in Path(settings.MEDIA_ROOT).glob("*/*/*.part"):
        try:
            if path.stat().st_mtime < cutoff:
                yield path
        except FileNotFoundError:
            continue
