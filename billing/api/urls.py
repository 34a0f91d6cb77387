from django.urls import path
from rest_framework.routers import SimpleRouter

from billing.api.views import (
    EntitlementView,
    MarginView,
    PlanViewSet,
    StatementViewSet,
    SubscriptionViewSet,
    UsageAlertViewSet,
    UsageView,
)

router = SimpleRouter()
router.register("plans", PlanViewSet, basename="plan")
router.register("subscriptions", SubscriptionViewSet, basename="subscription")
router.register("statements", StatementViewSet, basename="statement")
router.register("alerts", UsageAlertViewSet, basename="alert")

urlpatterns = [
    path("usage/", UsageView.as_view(), name="usage"),
    path("margin/", MarginView.as_view(), name="margin"),
    path("entitlements/", EntitlementView.as_view(), name="entitlements"),
    *router.urls,
]
