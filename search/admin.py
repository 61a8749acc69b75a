from django.contrib import admin

from search.models import PixelVerdict


@admin.register(PixelVerdict)
class PixelVerdictAdmin(admin.ModelAdmin):
    """The near-duplicate pixel check's verdicts (search.duplicates). A curator may turn one over: it
    holds, since the check never judges a pair twice (`manage.py check_duplicates --again` forgets all)."""

    list_display = ("first", "second", "same")
    list_editable = ("same",)
    list_filter = ("same",)
    search_fields = ("first__original_name", "second__original_name", "first__owner__username")
    list_select_related = ("first__owner", "second__owner")
    raw_id_fields = ("first", "second")
