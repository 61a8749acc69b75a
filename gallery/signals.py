"""File clean-up for deleted images, whatever deleted them.

An Image can disappear through `services.image_delete`, but also through a cascade (its owner's
account deleted in the admin) that no service sees. Django sends post_delete for each cascaded
row, so the files follow the row in every case, and only once the deletion has committed.
"""

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from gallery.models import Image
from gallery.services import derived_file_names, files_delete


@receiver(post_delete, sender=Image, dispatch_uid="gallery.image_files_delete")
def image_files_delete(sender, instance: Image, **kwargs) -> None:
    names = [instance.file, *derived_file_names(instance)]
    transaction.on_commit(lambda: files_delete(names=names), using=kwargs.get("using"))
