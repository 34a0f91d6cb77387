from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts.views import GuardedLoginView
from usage_portal import views

admin.site.site_header = "Usage Portal administration"
admin.site.site_title = "Usage Portal admin"
admin.site.index_title = "Tenants, plans and billing"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="reports:home", permanent=False)),
    path("accounts/login/", GuardedLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("usage_portal.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("reports/", include("reports.urls")),
    path("healthz", views.healthz, name="healthz"),
]

handler404 = views.not_found
handler500 = views.server_error
