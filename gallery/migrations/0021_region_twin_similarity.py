"""Region.twin_similarity: each object's likeness to the most alike other object of its photo,
computed for the regions stored before from their vectors."""

import numpy as np
from django.db import migrations, models


def twin_similarities(vectors: np.ndarray) -> np.ndarray:
    """search.ingest.twin_similarities as it was when this migration was written."""
    if len(vectors) < 2:
        return np.full(len(vectors), np.nan)
    similarities = vectors @ vectors.T
    np.fill_diagonal(similarities, -np.inf)
    return similarities.max(axis=1)


def measure(apps, schema_editor):
    Region = apps.get_model("gallery", "Region")
    objects = Region.objects.filter(kind="object").order_by("image_id", "pk")
    rows = objects.values_list("pk", "image_id", "embedding").iterator(chunk_size=2000)
    batch: list[tuple[int, bytes]] = []
    image_id = None

    def flush() -> None:
        if len(batch) < 2:
            return
        vectors = np.stack([np.frombuffer(bytes(e), dtype=np.float16).astype(np.float32) for _, e in batch])
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        for (pk, _), twin in zip(batch, twin_similarities(vectors), strict=True):
            Region.objects.filter(pk=pk).update(twin_similarity=float(twin))

    for pk, owner, embedding in rows:
        if owner != image_id:
            flush()
            batch, image_id = [], owner
        batch.append((pk, embedding))
    flush()


class Migration(migrations.Migration):
    dependencies = [
        ("gallery", "0020_two_stages"),
    ]

    operations = [
        migrations.AddField(
            model_name="region",
            name="twin_similarity",
            field=models.FloatField(
                blank=True,
                help_text="Cosine similarity to the most alike other object region of the same photo (empty: none).",
                null=True,
            ),
        ),
        migrations.RunPython(measure, migrations.RunPython.noop),
    ]
