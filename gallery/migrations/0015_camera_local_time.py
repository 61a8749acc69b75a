"""Camera-local time: the camera's UTC offset, and the wall-clock time timelines sort and group by.

Photos already stored get the wall clock of their instant in TIME_ZONE (their offset was not kept).
shot_at (the instant, taken or uploaded), which timelines sorted by, goes: shot_local replaces it.
"""

from datetime import UTC
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import migrations, models


def fill_shot_local(apps, schema_editor):
    Image = apps.get_model("gallery", "Image")
    zone = ZoneInfo(settings.TIME_ZONE)
    for image in Image.objects.only("pk", "taken_at", "created_at").iterator(chunk_size=2000):
        moment = image.taken_at or image.created_at
        Image.objects.filter(pk=image.pk).update(shot_local=moment.astimezone(zone).replace(tzinfo=UTC))


class Migration(migrations.Migration):
    dependencies = [("gallery", "0014_file_to_delete")]

    operations = [
        migrations.AddField(
            model_name="image",
            name="taken_offset_minutes",
            field=models.SmallIntegerField(
                blank=True,
                help_text="The camera's UTC offset, when the photo records it (EXIF OffsetTimeOriginal).",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="image",
            name="shot_local",
            field=models.DateTimeField(editable=False, null=True),
        ),
        migrations.RunPython(fill_shot_local, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="image",
            name="shot_local",
            field=models.DateTimeField(editable=False),
        ),
        migrations.RemoveIndex(model_name="image", name="image_owner_timeline"),
        migrations.RemoveIndex(model_name="image", name="image_public_timeline"),
        migrations.RemoveField(model_name="image", name="shot_at"),
        migrations.AddIndex(
            model_name="image",
            index=models.Index(fields=["owner", "-shot_local", "-id"], name="image_owner_local_timeline"),
        ),
        migrations.AddIndex(
            model_name="image",
            index=models.Index(fields=["is_public", "-shot_local", "-id"], name="image_public_local_timeline"),
        ),
    ]
