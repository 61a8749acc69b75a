import importlib

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class GalleryConfig(AppConfig):
    name = "gallery"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from gallery import signals  # noqa: F401  (connects the file clean-up receiver)

        post_migrate.connect(
            restore_sqlite_feed_triggers, sender=self, dispatch_uid="gallery.restore_sqlite_feed_triggers"
        )


def restore_sqlite_feed_triggers(using: str = "default", **kwargs) -> None:
    """Put back any change-feed trigger SQLite dropped during migrate.

    SQLite cannot alter most columns in place, so Django rebuilds the table, and a rebuilt table has
    no triggers: without them the index would miss deletions and visibility changes. PostgreSQL alters
    in place and keeps them. The statements are migration 0003's own.
    """
    from django.db import connections

    connection = connections[using]
    if connection.vendor != "sqlite":
        return
    feed = importlib.import_module("gallery.migrations.0003_image_change_feed")
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        present = {name for (name,) in cursor.fetchall()}
        if "gallery_imagechange" not in connection.introspection.table_names(cursor):
            return  # migrated only part of the way: 0003 has not run yet
        for statement in feed.SQLITE:
            name = statement.split()[2]  # CREATE TRIGGER <name> ...
            if name not in present:
                cursor.execute(statement)
