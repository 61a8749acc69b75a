import re
import unicodedata

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm

from gallery.places import NAME_CHARS
from gallery.tokens import LIFETIME_CHOICES

# Names that would pass for the site or its staff in a list of public photos.
RESERVED_USERNAMES = frozenset(
    {
        "admin",
        "administrator",
        "root",
        "staff",
        "support",
        "help",
        "security",
        "system",
        "moderator",
        "imgsearch",
        "api",
        "static",
        "media",
        "login",
        "logout",
        "signup",
        "accounts",
        "settings",
        "www",
    }
)
USERNAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,28}[a-z0-9])?$")
USERNAME_RULE = "1-30 letters a-z, digits, dots, dashes or underscores, starting and ending with a letter or digit"


class SignupForm(UserCreationForm):
    """Sign-up with names people cannot confuse: ASCII letters, digits and . _ - (NFKC-normalised and
    compared without case), never a reserved name."""

    email = forms.EmailField(required=False, help_text="Optional: where a password reset link is sent.")

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")
        help_texts = {"username": f"{USERNAME_RULE[0].upper()}{USERNAME_RULE[1:]}; not case-sensitive."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["username"].widget.attrs["maxlength"] = "30"

    def clean_username(self) -> str:
        username = unicodedata.normalize("NFKC", self.cleaned_data["username"]).strip()
        folded = username.casefold()
        if not USERNAME_PATTERN.match(folded):
            raise forms.ValidationError(
                f"Use {USERNAME_RULE} (look-alike letters from other alphabets are not allowed)."
            )
        if folded in RESERVED_USERNAMES:
            raise forms.ValidationError("That name is reserved; choose another.")
        if get_user_model().objects.filter(username__iexact=folded).exists():
            raise forms.ValidationError("That name is taken; choose another.")
        return folded


class ImageFilterForm(forms.Form):
    status = forms.ChoiceField(
        required=False,
        choices=[
            ("", "Any status"),
            ("pending", "Pending"),
            ("processing", "Processing"),
            ("ready", "Ready"),
            ("failed", "Failed"),
        ],
    )
    visibility = forms.ChoiceField(
        required=False, choices=[("", "Any visibility"), ("private", "Private"), ("public", "Public")]
    )
    tag = forms.CharField(required=False, max_length=64)
    # A place's name, as the Places page links say it ("Paris, Île-de-France, France"; gallery.places.images_at).
    place = forms.CharField(required=False, max_length=NAME_CHARS)


class TokenForm(forms.Form):
    name = forms.CharField(required=False, max_length=100, help_text="What it is for, e.g. “backup script”.")
    days = forms.TypedChoiceField(
        label="Expires after", coerce=int, choices=[(days, f"{days} days") for days in LIFETIME_CHOICES]
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["days"].initial = settings.API_TOKEN_DAYS if settings.API_TOKEN_DAYS in LIFETIME_CHOICES else 90
