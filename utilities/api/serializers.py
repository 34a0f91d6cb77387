"""What serializers share: fields an update may not change."""

from rest_framework import serializers


class FrozenFieldsMixin:
    """Refuses an update that changes any of `frozen_fields`; creating sets them freely.

    Each changed field gets `frozen_message`, with `{field}` replaced by its name.
    A serializer that also validates calls `super().validate(attrs)` first.
    """

    frozen_fields: tuple[str, ...] = ()
    frozen_message = "cannot be changed."

    def validate(self, attrs):
        if self.instance is not None:
            changed = [
                field
                for field in self.frozen_fields
                if field in attrs and attrs[field] != getattr(self.instance, field)
            ]
            if changed:
                raise serializers.ValidationError(
                    {field: self.frozen_message.format(field=field) for field in changed}
                )
        return super().validate(attrs)
