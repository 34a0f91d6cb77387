"""The v1 API: each app contributes its routes under /api/v1/."""

from django.urls import include, path

from accounts.views import GuardedTokenView
from usage_portal.api.root import ApiRootView

app_name = "api"

urlpatterns = [
    path("", ApiRootView.as_view(), name="root"),
    path("auth/token/", GuardedTokenView.as_view(), name="auth-token"),
    path("", include("accounts.api.urls")),
    path("", include("metering.api.urls")),
    path("", include("billing.api.urls")),
    path("", include("webhooks.api.urls")),
    path("", include("reports.api.urls")),
]
