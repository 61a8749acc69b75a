"""Processing in two stages: `objects_status` (and `objects_at`) for the second, SAM's objects.
Photos processed before are `ready` with their objects found already."""

from django.db import migrations, models


def objects_found_for_ready(apps, schema_editor):
    Image = apps.get_model("gallery", "Image")
    Image._base_manager.filter(status="ready").update(objects_status="found", objects_at=models.F("processed_at"))


class Migration(migrations.Migration):
    dependencies = [
        ("gallery", "0019_libraries"),
    ]

    operations = [
        migrations.AddField(
            model_name="image",
            name="objects_at",
            field=models.DateTimeField(blank=True, help_text="When finding objects ended.", null=True),
        ),
        migrations.AddField(
            model_name="image",
            name="objects_status",
            field=models.CharField(
                choices=[
                    ("waiting", "Waiting"),
                    ("finding", "Finding objects"),
                    ("found", "Found"),
                    ("failed", "Failed"),
                ],
                db_index=True,
                default="waiting",
                max_length=8,
            ),
        ),
        migrations.AlterField(
            model_name="image",
            name="attempts",
            field=models.PositiveIntegerField(default=0, help_text="Claims in the current stage."),
        ),
        migrations.AlterField(
            model_name="image",
            name="error",
            field=models.TextField(
                blank=True,
                help_text="Why processing (or, for a searchable photo, finding its objects) failed, in words a person can act on.",
            ),
        ),
        migrations.AlterField(
            model_name="image",
            name="processed_at",
            field=models.DateTimeField(blank=True, help_text="When the first stage ended.", null=True),
        ),
        migrations.AlterField(
            model_name="image",
            name="progress",
            field=models.PositiveSmallIntegerField(default=0, help_text="0-100 over both stages."),
        ),
        migrations.RunPython(objects_found_for_ready, migrations.RunPython.noop),
    ]
