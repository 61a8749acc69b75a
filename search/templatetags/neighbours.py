"""{% photo_neighbours image %}: the image page's "near-duplicates" and "similar, not identical"
strips. A template tag, so that the gallery's views need not import the search app."""

from django import template

from search.duplicates import neighbours

register = template.Library()


@register.inclusion_tag("search/_neighbours.html", takes_context=True)
def photo_neighbours(context, image) -> dict:
    return {"found": neighbours(image, context["request"].user)}
