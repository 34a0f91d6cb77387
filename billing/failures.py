"""One tenant's failure never stops another's: statement, finalization and alert
runs go tenant by tenant, each inside `FailureLog.guard`, which records what
failed (tenant, job, reason) where the operator sees it — the admin's tenant
failures — and lets the run go on. The next run tries the tenant again; a
success clears its record.
"""

import logging
import traceback
from contextlib import contextmanager

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Tenant
from billing.models import TenantFailure

logger = logging.getLogger(__name__)


class FailureLog:
    """The failures of one job during one run; reads the open records once."""

    def __init__(self, job: str):
        self.job = job
        self.failing = set(
            TenantFailure.objects.filter(job=job).values_list("tenant_id", flat=True)
        )
        self.failed = 0

    @contextmanager
    def guard(self, tenant: Tenant):
        """Run the block for `tenant` in a savepoint; an exception is recorded, not raised."""
        try:
            with transaction.atomic():
                yield
        except Exception as error:  # any failure is this tenant's alone
            self.failed += 1
            logger.exception("%s failed for tenant %s", self.job, tenant.slug)
            record_failure(tenant, self.job, error)
        else:
            if tenant.pk in self.failing:
                TenantFailure.objects.filter(tenant=tenant, job=self.job).delete()
                self.failing.discard(tenant.pk)


def record_failure(tenant: Tenant, job: str, error: BaseException) -> None:
    reason = "".join(traceback.format_exception_only(error)).strip()
    detail = f"{reason}\n\n{''.join(traceback.format_tb(error.__traceback__, limit=-5))}"
    now = timezone.now()
    with transaction.atomic():
        updated = TenantFailure.objects.filter(tenant=tenant, job=job).update(
            error=detail, attempts=F("attempts") + 1, last_failed_at=now
        )
        if not updated:
            TenantFailure.objects.create(
                tenant=tenant, job=job, error=detail, first_failed_at=now, last_failed_at=now
            )


def guarded(job: str, tenant: Tenant, action) -> None:
    """`action()` for one tenant outside any run (a signal's follow-up), guarded."""
    with FailureLog(job).guard(tenant):
        action()
