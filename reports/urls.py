from django.urls import path, re_path

from reports import schedule_views, views

app_name = "reports"

urlpatterns = [
    path("", views.home, name="home"),
    path("t/<slug:slug>/", views.tenant_report_page, name="tenant"),
    path("t/<slug:slug>/csv/", views.tenant_report_csv, name="tenant_csv"),
    path("t/<slug:slug>/chart/", views.ReportChartView.as_view(), name="chart"),
    path("t/<slug:slug>/records/", views.records_page, name="records"),
    path("t/<slug:slug>/records/csv/", views.records_csv, name="records_csv"),
    path("t/<slug:slug>/statements/", views.statements_page, name="statements"),
    path("t/<slug:slug>/statements/csv/", views.statements_csv, name="statements_csv"),
    path("t/<slug:slug>/schedules/", schedule_views.schedules_page, name="schedules"),
    path("unsubscribe/<str:token>/", schedule_views.unsubscribe_page, name="unsubscribe"),
    re_path(
        r"^t/(?P<slug>[-a-zA-Z0-9_]+)/statements/(?P<period>[0-9]{4}-[0-9]{2})/pdf/$",
        views.statement_pdf_download,
        name="statement_pdf",
    ),
]
