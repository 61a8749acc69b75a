"""The change feed the search index consumes (gallery.models.ImageChange), written by triggers.

Triggers, not Python, so that no path can change what search sees without a feed row: services,
the admin, cascades (a user deleted), `QuerySet.update`, raw SQL.

PostgreSQL: the triggers are constraint triggers deferred to COMMIT. There each one takes the next
position from a one-row counter; the row lock is held until the commit completes, so positions
commit in order and without gaps (a rolled-back transaction rolls its counter update back too).
Taking that lock last, at commit, means a transaction never waits for it while holding it, so it
adds no deadlock. SQLite lets one transaction write at a time, so AUTOINCREMENT is commit order.
"""
from django.db import migrations, models
from django.db.models.functions import Now

POSTGRES = [
    """
    CREATE TABLE gallery_imagechange_counter (id integer PRIMARY KEY CHECK (id = 1), position bigint NOT NULL);
    INSERT INTO gallery_imagechange_counter VALUES (1, 0);
    """,
    """
    CREATE FUNCTION gallery_imagechange_append(changed bigint) RETURNS void LANGUAGE plpgsql AS $$
    DECLARE next_position bigint;
    BEGIN
        UPDATE gallery_imagechange_counter SET position = position + 1 WHERE id = 1
            RETURNING position INTO next_position;
        INSERT INTO gallery_imagechange (position, image_id, created_at) VALUES (next_position, changed, now());
    END $$;
    """,
    """
    CREATE FUNCTION gallery_region_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN PERFORM gallery_imagechange_append(OLD.image_id); END IF;
        IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.image_id <> OLD.image_id) THEN
            PERFORM gallery_imagechange_append(NEW.image_id);
        END IF;
        RETURN NULL;
    END $$;
    """,
    """
    CREATE FUNCTION gallery_image_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM gallery_imagechange_append(OLD.id);
        RETURN NULL;
    END $$;
    """,
    """
    CREATE CONSTRAINT TRIGGER gallery_region_feed AFTER INSERT OR UPDATE OR DELETE ON gallery_region
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION gallery_region_changed();
    """,
    """
    CREATE CONSTRAINT TRIGGER gallery_image_feed_update AFTER UPDATE ON gallery_image
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
        WHEN (OLD.owner_id IS DISTINCT FROM NEW.owner_id OR OLD.is_public IS DISTINCT FROM NEW.is_public
              OR OLD.status IS DISTINCT FROM NEW.status)
        EXECUTE FUNCTION gallery_image_changed();
    """,
    """
    CREATE CONSTRAINT TRIGGER gallery_image_feed_delete AFTER DELETE ON gallery_image
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION gallery_image_changed();
    """,
]
POSTGRES_REVERSE = [
    "DROP TRIGGER IF EXISTS gallery_region_feed ON gallery_region",
    "DROP TRIGGER IF EXISTS gallery_image_feed_update ON gallery_image",
    "DROP TRIGGER IF EXISTS gallery_image_feed_delete ON gallery_image",
    "DROP FUNCTION IF EXISTS gallery_region_changed()",
    "DROP FUNCTION IF EXISTS gallery_image_changed()",
    "DROP FUNCTION IF EXISTS gallery_imagechange_append(bigint)",
    "DROP TABLE IF EXISTS gallery_imagechange_counter",
]

_APPEND = "INSERT INTO gallery_imagechange (image_id) VALUES ({});"
SQLITE = [
    f"CREATE TRIGGER gallery_region_feed_insert AFTER INSERT ON gallery_region BEGIN {_APPEND.format('NEW.image_id')} END",
    f"CREATE TRIGGER gallery_region_feed_delete AFTER DELETE ON gallery_region BEGIN {_APPEND.format('OLD.image_id')} END",
    f"CREATE TRIGGER gallery_region_feed_update AFTER UPDATE ON gallery_region BEGIN "
    f"{_APPEND.format('OLD.image_id')} {_APPEND.format('NEW.image_id')} END",
    f"CREATE TRIGGER gallery_image_feed_update AFTER UPDATE ON gallery_image "
    f"WHEN OLD.owner_id IS NOT NEW.owner_id OR OLD.is_public IS NOT NEW.is_public OR OLD.status IS NOT NEW.status "
    f"BEGIN {_APPEND.format('OLD.id')} END",
    f"CREATE TRIGGER gallery_image_feed_delete AFTER DELETE ON gallery_image BEGIN {_APPEND.format('OLD.id')} END",
]
SQLITE_REVERSE = [
    f"DROP TRIGGER IF EXISTS {name}" for name in (
        "gallery_region_feed_insert", "gallery_region_feed_delete", "gallery_region_feed_update",
        "gallery_image_feed_update", "gallery_image_feed_delete",
    )
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        statements = statements_by_vendor.get(schema_editor.connection.vendor)
        if statements is None:
            raise NotImplementedError(
                f"The search change feed has triggers for PostgreSQL and SQLite, not {schema_editor.connection.vendor}."
            )
        for statement in statements:
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):

    dependencies = [
        ('gallery', '0002_image_updated_at_index'),
    ]

    operations = [
        migrations.CreateModel(
            name='ImageChange',
            fields=[
                ('position', models.BigAutoField(primary_key=True, serialize=False)),
                ('image_id', models.BigIntegerField()),
                ('created_at', models.DateTimeField(db_default=Now(), db_index=True)),
            ],
            options={
                'ordering': ['position'],
            },
        ),
        migrations.DeleteModel(
            name='RegionTombstone',
        ),
        migrations.RunPython(
            _run({"postgresql": POSTGRES, "sqlite": SQLITE}),
            _run({"postgresql": POSTGRES_REVERSE, "sqlite": SQLITE_REVERSE}),
        ),
    ]
