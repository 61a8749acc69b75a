"""The trash: Image.trashed_at, and the change feed told when a photo goes in or comes out of it
(the search index then drops or takes back its vectors, as for a deletion)."""

from django.db import migrations, models

_CHANGED = "OLD.owner_id IS DISTINCT FROM NEW.owner_id OR OLD.is_public IS DISTINCT FROM NEW.is_public OR OLD.status IS DISTINCT FROM NEW.status"


def _postgres(condition: str) -> list[str]:
    return [
        "DROP TRIGGER IF EXISTS gallery_image_feed_update ON gallery_image",
        f"""
        CREATE CONSTRAINT TRIGGER gallery_image_feed_update AFTER UPDATE ON gallery_image
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN ({condition})
            EXECUTE FUNCTION gallery_image_changed();
        """,
    ]


def _sqlite(condition: str) -> list[str]:
    condition = condition.replace("IS DISTINCT FROM", "IS NOT")
    return [
        "DROP TRIGGER IF EXISTS gallery_image_feed_update",
        "CREATE TRIGGER gallery_image_feed_update AFTER UPDATE ON gallery_image "
        f"WHEN {condition} BEGIN INSERT INTO gallery_imagechange (image_id) VALUES (OLD.id); END",
    ]


WITH_TRASH = _CHANGED + " OR OLD.trashed_at IS DISTINCT FROM NEW.trashed_at"


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for statement in statements_by_vendor[schema_editor.connection.vendor]:
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("gallery", "0015_camera_local_time")]

    operations = [
        migrations.AddField(
            model_name="image",
            name="trashed_at",
            field=models.DateTimeField(blank=True, db_index=True, null=True),
        ),
        migrations.RunPython(
            _run({"postgresql": _postgres(WITH_TRASH), "sqlite": _sqlite(WITH_TRASH)}),
            _run({"postgresql": _postgres(_CHANGED), "sqlite": _sqlite(_CHANGED)}),
        ),
    ]
