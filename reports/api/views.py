from rest_framework import permissions, viewsets

from accounts.permissions import PeopleOnly, managed_by_person
from reports.api.serializers import ReportScheduleSerializer
from reports.models import ReportSchedule
from reports.schedules import save_schedule


class ReportScheduleViewSet(viewsets.ModelViewSet):
    """Usage reports mailed weekly or monthly; the tenant's managers set them up and
    see them, another reseller's answer 404."""

    serializer_class = ReportScheduleSerializer
    permission_classes = [permissions.IsAuthenticated, PeopleOnly]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        managed = managed_by_person(self.request)
        return ReportSchedule.objects.filter(tenant__in=managed).select_related("tenant")

    def perform_create(self, serializer):
        serializer.instance = save_schedule(
            ReportSchedule(created_by=self.request.user), user=self.request.user,
            **serializer.validated_data,
        )  # fmt: skip

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        data.pop("tenant", None)  # a schedule stays with its tenant
        serializer.instance = save_schedule(serializer.instance, user=self.request.user, **data)
