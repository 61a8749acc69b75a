"""The timeline's order: shot_at, when a photo was taken or else uploaded (a generated column).

SQLite cannot add a stored generated column in place, so Django rebuilds gallery_image there, and a
rebuilt table loses its triggers: the change feed's image triggers (0003) are put back afterwards.
"""
import importlib

import django.db.models.functions.comparison
from django.conf import settings
from django.db import migrations, models


feed = importlib.import_module("gallery.migrations.0003_image_change_feed")
SQLITE_IMAGE_TRIGGERS = [statement for statement in feed.SQLITE if "ON gallery_image " in statement]


def restore_sqlite_image_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return  # PostgreSQL adds the column in place; its triggers stay
    for name in ("gallery_image_feed_update", "gallery_image_feed_delete"):
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")
    for statement in SQLITE_IMAGE_TRIGGERS:
        schema_editor.execute(statement)


class Migration(migrations.Migration):

    dependencies = [
        ('gallery', '0008_image_exif'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='image',
            name='shot_at',
            field=models.GeneratedField(db_persist=True, expression=django.db.models.functions.comparison.Coalesce('taken_at', 'created_at'), output_field=models.DateTimeField()),
        ),
        migrations.AddIndex(
            model_name='image',
            index=models.Index(fields=['owner', '-shot_at', '-id'], name='image_owner_timeline'),
        ),
        migrations.AddIndex(
            model_name='image',
            index=models.Index(fields=['is_public', '-shot_at', '-id'], name='image_public_timeline'),
        ),
        migrations.RunPython(restore_sqlite_image_triggers, migrations.RunPython.noop),
    ]
