from django.core.management.base import BaseCommand
from tqdm import tqdm

from gallery.models import Region
from search.index import get_writer


class Command(BaseCommand):
    help = (
        "Rebuild the search index from the vectors stored in the database and publish it. Running "
        "web processes switch to it on their next search; a running indexer waits, then carries on from it."
    )

    def handle(self, *args, **options):
        writer = get_writer()
        total = Region.objects.filter(embedding_model=writer.model_name).count()
        with tqdm(total=total, desc="Indexing", unit="vec", disable=None) as bar:
            count = writer.rebuild(progress=bar.update)
        self.stdout.write(
            f"Indexed {count} vectors of {writer.model_name} as generation {writer.generation.number} in {writer.directory}."
        )
