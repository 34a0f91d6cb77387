from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.permissions import PeopleOnly, managed_by_person
from webhooks.api.serializers import (
    CreatedWebhookSerializer,
    DeliveryAttemptSerializer,
    WebhookSerializer,
)
from webhooks.delivery import send_again
from webhooks.models import Webhook, WebhookAttempt
from webhooks.services import create_webhook, update_webhook


class WebhookViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Webhooks of the tenants the caller manages; another's answers 404."""

    serializer_class = WebhookSerializer
    permission_classes = [permissions.IsAuthenticated, PeopleOnly]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return Webhook.objects.filter(tenant__in=managed_by_person(self.request)).select_related(
            "tenant"
        )

    def http_method_not_allowed(self, request, *args, **kwargs):
        if "pk" in kwargs:
            self.get_object()  # another's webhook is not found, whatever the method
        return super().http_method_not_allowed(request, *args, **kwargs)

    @extend_schema(responses={201: CreatedWebhookSerializer})
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        webhook = create_webhook(user=request.user, **serializer.validated_data)
        body = CreatedWebhookSerializer(webhook, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        data.pop("tenant", None)  # a webhook stays with its tenant
        serializer.instance = update_webhook(
            user=self.request.user, webhook=serializer.instance, **data
        )

    @extend_schema(responses=DeliveryAttemptSerializer(many=True))
    @action(detail=True, methods=["get"])
    def deliveries(self, request, pk=None):
        """Every try, newest first: when, the answer's status and time, the next try."""
        webhook = self.get_object()
        attempts = WebhookAttempt.objects.filter(delivery__webhook=webhook).select_related(
            "delivery__event"
        )
        page = self.paginate_queryset(attempts)
        return self.get_paginated_response(DeliveryAttemptSerializer(page, many=True).data)

    @extend_schema(request=None, responses={202: DeliveryAttemptSerializer})
    @action(detail=True, methods=["post"], url_path=r"deliveries/(?P<attempt_id>\d+)/resend")
    def resend(self, request, pk=None, attempt_id=None):
        """Send that try's event to this webhook once more, now."""
        webhook = self.get_object()
        attempt = get_object_or_404(
            WebhookAttempt.objects.select_related("delivery__event"),
            pk=attempt_id,
            delivery__webhook=webhook,
        )
        send_again(attempt.delivery)
        return Response(
            {"event_id": attempt.delivery.event_id, "queued": True},
            status=status.HTTP_202_ACCEPTED,
        )
