"""The v1 API: each app contributes its routes under /api/v1/."""

from django.urls import include, path
from rest_framework.authtoken.views import obtain_auth_token

app_name = "api"

urlpatterns = [
    path("auth/token/", obtain_auth_token, name="auth-token"),
    path("", include("accounts.api.urls")),
    path("", include("metering.api.urls")),
    path("", include("billing.api.urls")),
]
