from accounts.brands import request_brand
from accounts.selectors import top_tenants


def user_tenants(request):
    """The signed-in user's entry tenants, for the navigation's tenant switcher."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"user_tenants": []}
    return {"user_tenants": top_tenants(user)}


def brand(request):
    """The brand the page shows (see `accounts.brands.request_brand`)."""
    return {"brand": request_brand(request)}
