from rest_framework.routers import SimpleRouter

from metering.api.views import MeterViewSet, UsageEventViewSet

router = SimpleRouter()
router.register("meters", MeterViewSet, basename="meter")
router.register("events", UsageEventViewSet, basename="event")

urlpatterns = router.urls
