"""A rule for every JSON body the API reads: values have the types the schema states.

DRF converts generously: `"share_location": 0` is False, `"remove": [0]` is the tag "0", `"text": 5`
is "5". The OpenAPI schema says boolean, string, integer, and a client that sends something else has
a bug it should hear about, so a JSON body whose values have other types is refused with a 400 that
says which field and what to send. Forms and multipart bodies carry only text; their values are
converted as DRF does, except an empty one where the schema allows none (`scope=` or `album_id=`):
DRF would take it as left out, and the request would silently mean something else.
"""

from collections.abc import Mapping

from django.http import QueryDict
from rest_framework import serializers

# Checked in this order: BooleanField before the number fields (True is an int in Python).
JSON_TYPES: list[tuple[type, tuple[type, ...], str]] = [
    (serializers.BooleanField, (bool,), "Send true or false."),
    (serializers.IntegerField, (int,), "Send a whole number."),
    (serializers.FloatField, (int, float), "Send a number."),
    (serializers.ListField, (list,), "Send a list."),
    (serializers.DictField, (dict,), "Send an object."),
    (serializers.CharField, (str,), "Send a string."),
    (serializers.ChoiceField, (str,), "Send one of the listed strings."),
    (serializers.DateField, (str,), "Send a date as a string, YYYY-MM-DD."),
    (serializers.DateTimeField, (str,), "Send a date and time as an ISO 8601 string."),
]


def json_type_problem(field: serializers.Field, value: object) -> str | None:
    """Why `value` cannot be `field`'s in a JSON body, or None. null is left to the field (allow_null)."""
    if value is None:
        return None
    for field_class, types, sentence in JSON_TYPES:
        if isinstance(field, field_class):
            if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
                return sentence
            if isinstance(field, serializers.ListField) and isinstance(value, list):
                problems = (json_type_problem(field.child, item) for item in value)
                return next((f"Item: {problem}" for problem in problems if problem), None)
            return None
    return None


class JsonTypedSerializer(serializers.Serializer):
    """Input serializers of the API: a JSON body's values must have the types the schema states."""

    def to_internal_value(self, data):
        if isinstance(data, QueryDict):
            blank = {
                name: ["Leave the field out, or send a value."]
                for name, field in self.fields.items()
                if not field.read_only
                and not isinstance(field, serializers.FileField)
                and not getattr(field, "allow_blank", False)
                and "" in data.getlist(name)
            }
            if blank:
                raise serializers.ValidationError(blank)
        elif isinstance(data, Mapping):
            problems = {
                name: [problem]
                for name, field in self.fields.items()
                if not field.read_only and name in data and (problem := json_type_problem(field, data[name]))
            }
            if problems:
                raise serializers.ValidationError(problems)
        return super().to_internal_value(data)
