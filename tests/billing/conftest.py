from datetime import timedelta

import pytest

from billing.rollup import run_rollup
from metering.models import Meter


@pytest.fixture
def latest_meter(db):
    """The catalog has no `latest` meter; the rules must still hold for one."""
    return Meter.objects.create(
        code="queue_depth",
        name="Queue depth",
        category="communications",
        unit="count",
        aggregation="latest",
        group_by="queue",
    )


def rollup(**kwargs):
    return run_rollup(grace=timedelta(0), **kwargs)
