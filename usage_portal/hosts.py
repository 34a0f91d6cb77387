"""The hosts the portal answers: the operator's own, and every brand's domain.

Django checks a request's Host header by iterating ALLOWED_HOSTS; this list adds
the brands' domains (cached) to the configured ones when iterated, so a tenant's
domain works as soon as it is saved and any other host is still refused (400).
"""

import logging

logger = logging.getLogger(__name__)


class AllowedHosts(list):
    def __init__(self, configured):
        configured = tuple(configured)
        super().__init__(configured)
        self.static = configured

    def __iter__(self):
        yield from super().__iter__()
        yield from brand_domains()


def brand_domains():
    from django.apps import apps

    if not apps.ready:
        return ()
    try:
        from accounts.brands import brand_domains as stored_domains

        return stored_domains()
    except Exception:  # noqa: BLE001 - an unreadable table must not refuse the operator's hosts
        logger.warning("Brand domains unavailable; answering the configured hosts only")
        return ()
