from django import forms

from search.query import MATCH_KINDS, SCOPES


class SearchForm(forms.Form):
    q = forms.CharField(required=False, label="Search for", strip=True)
    image = forms.FileField(required=False, label="…or find photos like this one")
    similar = forms.IntegerField(required=False, widget=forms.HiddenInput)
    region = forms.IntegerField(required=False, widget=forms.HiddenInput)
    box_image = forms.IntegerField(required=False, widget=forms.HiddenInput)
    box = forms.CharField(required=False, widget=forms.HiddenInput)
    scope = forms.ChoiceField(
        required=False, choices=list(zip(SCOPES, ["Everything I may see", "My images", "Public images"]))
    )
    kind = forms.ChoiceField(
        required=False, label="Match", choices=list(zip(MATCH_KINDS, ["Whole images and objects", "Whole images", "Objects"]))
    )
