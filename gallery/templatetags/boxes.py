from django import template

from gallery.models import Image

register = template.Library()


@register.filter
def box_style(box, image: Image) -> str:
    """CSS placing box [x1, y1, x2, y2] over a picture of `image`, in percent so it scales with the page."""
    x1, y1, x2, y2 = box
    w, h = image.width or 1, image.height or 1
    return (
        f"left:{100 * x1 / w:.2f}%;top:{100 * y1 / h:.2f}%;"
        f"width:{100 * (x2 - x1) / w:.2f}%;height:{100 * (y2 - y1) / h:.2f}%"
    )
