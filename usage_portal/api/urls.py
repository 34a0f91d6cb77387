"""The v1 API: each app contributes its routes under /api/v1/."""

from django.urls import include, path

from accounts.views import GuardedTokenView

app_name = "api"

urlpatterns = [
    path("auth/token/", GuardedTokenView.as_view(), name="auth-token"),
    path("", include("accounts.api.urls")),
    path("", include("metering.api.urls")),
    path("", include("billing.api.urls")),
]
