from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from accounts.views import GuardedLoginView, brand_logo
from usage_portal import views
from usage_portal.api.docs import BrandedDocsView, BrandedSchemaView

# The admin's header and title name the viewer's brand (templates/admin/base_site.html).
admin.site.index_title = "Tenants, plans and billing"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="reports:home", permanent=False)),
    path("accounts/login/", GuardedLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("usage_portal.api.urls")),
    path("api/schema/", BrandedSchemaView.as_view(), name="schema"),
    path("api/docs/", BrandedDocsView.as_view(url_name="schema"), name="api-docs"),
    path("reports/", include("reports.urls")),
    path("healthz", views.healthz, name="healthz"),
    re_path(r"^brand/logo/(?P<digest>[0-9a-f]{64})/$", brand_logo, name="brand-logo"),
]

handler404 = views.not_found
handler500 = views.server_error
