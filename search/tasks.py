"""django-q2 tasks: thin wrappers that take an id and call the service."""


def process_image(image_id: int) -> str:
    from search.ingest import image_process

    return image_process(image_id=image_id)
