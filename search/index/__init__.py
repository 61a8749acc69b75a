"""The vector index: a cache of the database's region vectors that searches scan.

One writer per machine (search.index.writer: `manage.py run_indexer`) applies the database's change
feed and publishes immutable generations; every process reads them (search.index.reader),
memory-mapped and without a lock; search.index.files is their layout on disk. This module is the
facade the rest of the project uses, as paperless-ngx keeps its index behind one module:

    get_index()    this process's reader for the configured model
    get_writer()   this process's writer (run_indexer, rebuild_index, INDEX_INLINE_WRITER)
    reset_index()  forget both (tests change INDEX_DIR and the model)

No torch here, however indirectly (tests/test_imports.py): the model is known by its name and
dimension (search.vision.identity).
"""

import threading

from django.conf import settings

from search.index.files import CorruptIndex
from search.index.reader import Generation, IndexReader, IndexUnavailable, Visibility, scan_pool
from search.index.writer import IndexWriter
from search.vision.identity import current_model

__all__ = [
    "CorruptIndex",
    "Generation",
    "IndexReader",
    "IndexUnavailable",
    "IndexWriter",
    "Visibility",
    "get_index",
    "get_writer",
    "reset_index",
    "scan_pool",
]

_lock = threading.Lock()
_reader: IndexReader | None = None
_writer: IndexWriter | None = None


def get_index() -> IndexReader:
    """This process's reader of the index for the configured model.

    With INDEX_INLINE_WRITER (tests, debugging) the process first applies the change feed itself,
    as `manage.py run_indexer` would; otherwise it only reads what the indexer published.
    """
    global _reader
    if settings.INDEX_INLINE_WRITER:
        get_writer().update()
    if _reader is None:
        with _lock:
            if _reader is None:
                model_name, dim = current_model()
                _reader = IndexReader(model_name=model_name, dim=dim, directory=settings.INDEX_DIR)
    return _reader


def get_writer() -> IndexWriter:
    """This process's writer for the configured model (run_indexer, rebuild_index, inline tests)."""
    global _writer
    if _writer is None:
        with _lock:
            if _writer is None:
                model_name, dim = current_model()
                _writer = IndexWriter(model_name=model_name, dim=dim, directory=settings.INDEX_DIR)
    return _writer


def reset_index() -> None:
    """Forget this process's reader and writer (tests change INDEX_DIR and the model)."""
    global _reader, _writer
    with _lock:
        _reader = None
        _writer = None
