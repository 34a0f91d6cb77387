from django.urls import path

from reports import views

app_name = "reports"

urlpatterns = [
    path("", views.home, name="home"),
    path("t/<slug:slug>/", views.tenant_report, name="tenant"),
]
