"""Which currency codes the portal accepts: ISO 4217, as Babel's data lists them.

Tenants (accounts) and plans (billing) hold currencies; both check them here.
"""

from babel.numbers import list_currencies
from django.core.exceptions import ValidationError


def validate_currency_code(code: str) -> None:
    if code not in list_currencies():
        raise ValidationError(f"{code!r} is not an ISO 4217 currency code (e.g. USD, EUR, JPY).")
