"""Libraries read in place: a folder on the server whose photos are found, processed and shown
without being copied, and never written or deleted (gallery.models.Library).

A scan walks the folder (include/exclude patterns, hidden files left out) and compares it with the
photos it gave before: a new file is checked like an upload and queued; a file whose size or time
changed is read again, and reprocessed if its bytes did; a file that is gone sends its photo to the
trash, and coming back takes it out again. The worker rescans each library every `rescan_minutes`,
and at once when its folder changes (`LibraryWatch`, where the platform tells); `manage.py library
scan` does it at once.
"""

import fnmatch
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from gallery import services, storage
from gallery.models import Image, Library
from gallery.validation import UploadRejected, validate_image_bytes
from gallery.work_queue import image_enqueue

logger = logging.getLogger(__name__)


@dataclass
class Scan:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    returned: list[str] = field(default_factory=list)
    unchanged: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    duplicates: list[str] = field(default_factory=list)
    left: int = 0  # files not read yet: the time budget ran out; the next scan goes on

    def __str__(self) -> str:
        return (
            f"{len(self.added)} new, {len(self.changed)} changed, {len(self.removed)} removed (to the trash), "
            f"{len(self.returned)} back, {self.unchanged} unchanged, {len(self.duplicates)} duplicates, "
            f"{len(self.rejected)} not photos" + (f"; {self.left} left for the next scan" if self.left else "")
        )


def library_name(library: Library, relative: str) -> str:
    return f"{storage.LIBRARY_PREFIX}{library.pk}/{relative}"


def library_files(library: Library) -> dict[str, os.stat_result]:
    """{path relative to the folder: its stat} for every file the library's patterns take."""
    root = Path(library.path)
    if not root.is_dir():
        raise FileNotFoundError(f"The library folder {root} is not there (unmounted?); nothing was changed.")
    include = [pattern.strip() for pattern in library.include.split(",") if pattern.strip()]
    exclude = [pattern.strip() for pattern in library.exclude.split(",") if pattern.strip()]
    found = {}
    for directory, folders, files in os.walk(root):
        folders[:] = sorted(folder for folder in folders if not folder.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(directory) / name
            relative = path.relative_to(root).as_posix()
            if include and not any(fnmatch.fnmatch(relative.lower(), pattern.lower()) for pattern in include):
                continue
            if any(fnmatch.fnmatch(relative.lower(), pattern.lower()) for pattern in exclude):
                continue
            try:
                found[relative] = path.stat()
            except OSError:  # gone meanwhile
                continue
    return found


def library_scan(library: Library, *, seconds: float | None = None) -> Scan:
    """Bring the library's photos in line with its folder (see the module). With `seconds`, files
    are read (new and changed ones: each is decoded) only until that much time has passed; the rest
    is left for the next scan, which is then due at once. The worker's sweep scans so, so that a first
    scan of 20,000 photos does not keep it from its other work (and /readyz from its beat) for hours."""
    deadline = None if seconds is None else time.monotonic() + seconds
    scan = Scan()
    files = library_files(library)
    known = {
        row["file"][len(library_name(library, "")) :]: row
        for row in Image.all_objects.filter(library=library).values(
            "pk", "file", "size_bytes", "source_mtime", "trashed_at", "sha256"
        )
    }
    for relative, stat in files.items():
        row = known.get(relative)
        unchanged = row is not None and row["size_bytes"] == stat.st_size and row["source_mtime"] == stat.st_mtime
        if deadline is not None and not unchanged and time.monotonic() >= deadline:
            scan.left += 1
            continue
        if row is None:
            _add(library, relative, stat, scan)
            continue
        if row["trashed_at"] is not None and row["source_mtime"] is None:  # its file went, and is back
            services.image_restore(image=Image.all_objects.get(pk=row["pk"]))
            scan.returned.append(relative)
        if row["size_bytes"] == stat.st_size and row["source_mtime"] == stat.st_mtime:
            scan.unchanged += 1
        else:
            _reread(library, relative, stat, row, scan)
    for relative, row in known.items():
        if relative not in files and row["trashed_at"] is None:
            # To the trash, marked as gone from the folder (no mtime): it comes back with its file.
            # (A photo its owner put in the trash stays there while its file is still in the folder.)
            Image.all_objects.filter(pk=row["pk"]).update(trashed_at=timezone.now(), source_mtime=None)
            scan.removed.append(relative)
    # Scanned now, unless files were left: then it is due again at the next sweep.
    scanned_at = timezone.now() if not scan.left else library.scanned_at
    Library.objects.filter(pk=library.pk).update(scanned_at=scanned_at, last_scan=str(scan)[:500])
    logger.info("Library %s scanned: %s.", library, scan)
    return scan


def _read(library: Library, relative: str, scan: Scan):
    try:
        data = (Path(library.path) / relative).read_bytes()
        return validate_image_bytes(data, decode=False)  # the first stage decodes it
    except UploadRejected as error:
        scan.rejected.append((relative, str(error)))
    except OSError as error:
        scan.rejected.append((relative, f"It cannot be read ({error.strerror})."))
    return None


def _add(library: Library, relative: str, stat: os.stat_result, scan: Scan) -> None:
    valid = _read(library, relative, scan)
    if valid is None:
        return
    try:
        with transaction.atomic():
            image = Image.objects.create(
                owner_id=library.owner_id,
                library=library,
                file=library_name(library, relative),
                original_name=Path(relative).name[:255],
                size_bytes=stat.st_size,
                source_mtime=stat.st_mtime,
                **valid.image_fields(),
            )
            image_enqueue(image_id=image.pk)
    except IntegrityError:  # the same photo, uploaded or in another folder of theirs
        scan.duplicates.append(relative)
        return
    scan.added.append(relative)


def _reread(library: Library, relative: str, stat: os.stat_result, row, scan: Scan) -> None:
    valid = _read(library, relative, scan)
    image = Image.all_objects.get(pk=row["pk"])
    if valid is None:
        return
    if valid.sha256 == row["sha256"]:  # touched, not changed
        Image.all_objects.filter(pk=image.pk).update(size_bytes=stat.st_size, source_mtime=stat.st_mtime)
        scan.unchanged += 1
        return
    fields = {"size_bytes": stat.st_size, "source_mtime": stat.st_mtime, **valid.image_fields()}
    try:
        with transaction.atomic():
            for name, value in fields.items():
                setattr(image, name, value)
            image.save()
    except IntegrityError:
        scan.duplicates.append(relative)
        return
    # What was made from the old bytes goes: thumbnail, screen-sized JPEG, the copy without GPS.
    services.files_delete(names=services.derived_file_names(image))
    if image.trashed_at is None:
        services.image_reprocess(image=image)
    scan.changed.append(relative)


def libraries_due() -> list[Library]:
    """Libraries whose rescan interval has passed (or never scanned)."""
    now = timezone.now()
    return [
        library
        for library in Library.objects.order_by("pk")
        if library.scanned_at is None or library.scanned_at + timedelta(minutes=library.rescan_minutes) <= now
    ]


def libraries_changed(paths: set[str]) -> list[int]:
    """Make the libraries whose folders hold any of `paths` due for a rescan at once (the worker's
    next sweep reads them); their ids."""
    due = [
        library.pk
        for library in Library.objects.only("pk", "path")
        if any(Path(path).is_relative_to(library.path) for path in paths)
    ]
    Library.objects.filter(pk__in=due).update(scanned_at=None)  # "never scanned": due now
    return due


class LibraryWatch:
    """Notices changes in the libraries' folders as they happen (inotify on Linux, through
    watchfiles) and makes each changed library due at once: the worker's next sweep, within
    RECOVERY_SWEEP_SECONDS, rescans it. Events are gathered for a second first, so a folder copied in
    is one rescan. Where no events come (a network share changed from another machine, a system
    without a watch API, the watch limit reached), the periodic rescans still find every change."""

    DEBOUNCE_MS = 1000

    def __init__(self) -> None:
        self.paths: tuple[str, ...] = ()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed = False

    def follow(self) -> None:
        """Watch the folders of every library now registered: start, or start again when a library
        was added or removed. Cheap enough for every sweep."""
        paths = tuple(sorted({path for path in Library.objects.values_list("path", flat=True) if Path(path).is_dir()}))
        running = self._thread is not None and self._thread.is_alive()
        if paths == self.paths and (running or self._failed):
            return
        self.stop()
        self.paths, self._failed = paths, False
        if paths:
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(paths, self._stop), name="library-watch", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self, paths: tuple[str, ...], stop: threading.Event) -> None:
        from watchfiles import watch

        try:
            logger.info("Watching %d library folder(s) for changes.", len(paths))
            for changes in watch(*paths, stop_event=stop, debounce=self.DEBOUNCE_MS, ignore_permission_denied=True):
                due = libraries_changed({path for _, path in changes})
                if due:
                    logger.info("Library folder(s) changed: libraries %s are rescanned at the next sweep.", due)
        except Exception as error:  # no watch API, the inotify limit, a folder gone: rescans go on
            self._failed = True
            logger.warning(
                "Library folders are not watched (%s: %s); each is still rescanned every rescan_minutes. On Linux, "
                "raise fs.inotify.max_user_watches if the limit was reached.",
                type(error).__name__,
                error,
            )
        finally:
            connections.close_all()  # this thread's connections only
