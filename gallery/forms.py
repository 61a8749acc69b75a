from django import forms
from django.contrib.auth.forms import UserCreationForm


class SignupForm(UserCreationForm):
    class Meta(UserCreationForm.Meta):
        fields = ("username",)


class ImageFilterForm(forms.Form):
    status = forms.ChoiceField(
        required=False,
        choices=[("", "Any status"), ("pending", "Pending"), ("processing", "Processing"), ("ready", "Ready"), ("failed", "Failed")],
    )
    visibility = forms.ChoiceField(
        required=False, choices=[("", "Any visibility"), ("private", "Private"), ("public", "Public")]
    )
