"""django-q2 tasks: thin wrappers that take an id and call the service."""


def process_image(image_id: int) -> str:
    """The first stage: make the photo searchable."""
    from search.ingest import image_process

    return image_process(image_id=image_id)


def find_objects(image_id: int) -> str:
    """The second stage: find the objects in a searchable photo."""
    from search.ingest import objects_find

    return objects_find(image_id=image_id)
