from django.core.management.base import BaseCommand
from tqdm import tqdm

from gallery.models import Region
from search.index import VectorIndex, current_model
from django.conf import settings


class Command(BaseCommand):
    help = "Rebuild the FAISS index file from the vectors stored in the database."

    def handle(self, *args, **options):
        model_name, dim = current_model()
        total = Region.objects.filter(embedding_model=model_name).count()
        index = VectorIndex(model_name=model_name, dim=dim, directory=settings.INDEX_DIR)
        with tqdm(total=total, desc="Indexing", unit="vec", disable=None) as bar:
            count = index.rebuild(progress=bar.update)
        self.stdout.write(f"Indexed {count} vectors of {model_name} into {index.index_path}.")
