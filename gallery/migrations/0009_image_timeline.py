"""The timeline's order: shot_at, when a photo was taken or else uploaded (a generated column).

SQLite cannot add a stored generated column in place, so Django rebuilds gallery_image there, which
drops its triggers; gallery.apps puts the change feed's triggers back after every migrate.
"""
import django.db.models.functions.comparison
from django.conf import settings
from django.db import migrations, models


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
    ]
