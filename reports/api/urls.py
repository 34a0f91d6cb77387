from rest_framework.routers import SimpleRouter

from reports.api.views import ReportScheduleViewSet

router = SimpleRouter()
router.register("report-schedules", ReportScheduleViewSet, basename="report-schedule")

urlpatterns = router.urls
