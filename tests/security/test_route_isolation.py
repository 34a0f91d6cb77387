"""Every route the URL resolver knows answers reseller A nothing of reseller B's.

Generated from the resolver: a route's object keys (slug, code, pk, period...) are
filled with B's objects and requested as A's manager (a session for pages, a user
token and an API key for the API), which must answer 404; lists must show nothing
of B, even when asked for B's tenant. A route this test cannot fill fails it, so a
new route cannot escape unnoticed; the few routes that serve no tenant's data are
skipped below, each with its reason.
"""

import re
from dataclasses import dataclass

import pytest
from django.urls import URLResolver, get_resolver, reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import ApiKey, Tenant
from billing.models import Statement
from metering.models import Meter
from tests.security.two_resellers import b_markers_in, two_resellers
from webhooks.models import WebhookAttempt

SKIPPED = {
    "": "the site root, a redirect to the reports home",
    "accounts/login/": "signing in; no tenant's data",
    "accounts/logout/": "signing out; no tenant's data",
    "api/v1/": "the list of the API's endpoints, the same for every caller",
    "api/v1/auth/token/": "exchanges a password for a token; no tenant's data",
    "api/schema/": "the OpenAPI document, the same for every caller",
    "api/docs/": "the API documentation page, the same for every caller",
    "healthz": "liveness probe; no tenant's data",
    "^brand/logo/(?P<digest>[0-9a-f]{64})/$": "logos are public (sign-in pages show them)",
    "reports/unsubscribe/<str:token>/": "a signed link is its own authority (tested with "
    "forged tokens in test_scheduled_reports)",
}
SKIPPED_PREFIXES = {
    "admin/": "walked from the admin registry by test_admin_scoping",
    "static/": "front-end assets",
}
# Routes over data that belongs to no tenant: the same for every caller.
PUBLIC_MODELS = {Meter: "the platform's meter catalog"}
WRITE_METHODS = ("post", "put", "patch", "delete")
A_MARKERS = re.compile(r"alpha|reseller-a|org-a|agent-a")


@dataclass(frozen=True)
class Route:
    path: str
    name: str | None
    keys: tuple[str, ...]
    callback: object

    @property
    def view_class(self):
        return getattr(self.callback, "cls", None) or getattr(self.callback, "view_class", None)

    @property
    def is_api(self) -> bool:
        return self.path.startswith("api/v1/")

    @property
    def is_page(self) -> bool:
        return self.path.startswith("reports/")

    def methods(self) -> list[str]:
        actions = getattr(self.callback, "actions", None)
        if actions is None:
            return ["get"]
        allowed = getattr(self.view_class, "http_method_names", actions)
        return [method for method in actions if method in allowed]


def walk(patterns, prefix: str = "", namespace: str | None = None):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = ":".join(filter(None, [namespace, pattern.namespace])) or None
            yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        else:
            name = f"{namespace}:{pattern.name}" if namespace and pattern.name else pattern.name
            keys = tuple(pattern.pattern.regex.groupindex)
            yield Route(prefix + str(pattern.pattern), name, keys, pattern.callback)


def skip_reason(route: Route) -> str | None:
    if route.path in SKIPPED:
        return SKIPPED[route.path]
    return next((why for p, why in SKIPPED_PREFIXES.items() if route.path.startswith(p)), None)


ALL_ROUTES = list(walk(get_resolver().url_patterns))
KEYED = [pytest.param(r, id=r.name) for r in ALL_ROUTES if not skip_reason(r) and r.keys]
UNKEYED = [pytest.param(r, id=r.name) for r in ALL_ROUTES if not skip_reason(r) and not r.keys]


def model_of(route: Route):
    """The model a route serves: a viewset's queryset or serializer, else a tenant
    (pages are keyed by a tenant's slug)."""
    view = route.view_class
    queryset = getattr(view, "queryset", None)
    if queryset is not None:
        return queryset.model
    serializer = getattr(view, "serializer_class", None)
    if serializer is not None and hasattr(serializer, "Meta"):
        return serializer.Meta.model
    return Tenant


def fill(route: Route, data) -> dict:
    """B's object behind each key of the route; an unknown key fails the test."""
    model, values = model_of(route), {}
    for key in route.keys:
        if key == "period":
            values[key] = f"{data.b[Statement][0].period:%Y-%m}"
        elif key == "format":
            values[key] = "json"
        elif key == "attempt_id":
            values[key] = data.b[WebhookAttempt][0].pk
        elif model in PUBLIC_MODELS and key in ("pk", "id", "code", "slug"):
            values[key] = getattr(model._default_manager.first(), "pk" if key == "id" else key)
        elif key in ("pk", "id", "code", "slug") and data.b.get(model):
            values[key] = getattr(data.b[model][0], "pk" if key == "id" else key)
        else:
            pytest.fail(f"{route.path}: cannot fill {key!r} with an object of reseller B")
    return values


def text_of(response) -> str:
    if response.streaming:
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


@pytest.fixture
def data(world, users):
    return two_resellers(world, users)


@pytest.fixture
def callers_a(data, users, client):
    """Reseller A's manager as every kind of caller, by the route kind it uses."""
    token = APIClient()
    token.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=users['manager_a'])}")
    _, key = ApiKey.objects.create_key(name="alpha-reader", tenant=data.a[Tenant][2],
                                       scopes=["read"])  # fmt: skip
    api_key = APIClient()
    api_key.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    client.force_login(users["manager_a"])
    return {"token": token, "api key": api_key, "session": client}


def clients_for(route: Route, callers: dict) -> dict:
    if route.is_api:
        return {k: v for k, v in callers.items() if k != "session"}
    return {"session": callers["session"]}


def test_every_route_is_walked_or_skipped_with_a_reason():
    for route in ALL_ROUTES:
        walked = route.is_api or route.is_page
        assert skip_reason(route) or walked, f"{route.path}: walk it here, or skip it with why"
        assert skip_reason(route) or route.name, f"{route.path}: name it so it can be reversed"


@pytest.mark.parametrize("route", KEYED)
def test_b_objects_answer_404_to_a(data, callers_a, route):
    url = reverse(route.name, kwargs=fill(route, data))
    public = model_of(route) in PUBLIC_MODELS
    for who, client in clients_for(route, callers_a).items():
        response = client.get(url)
        assert response.status_code == (200 if public else 404), (who, url)
        assert not b_markers_in(text_of(response)), (who, url)
    if public:
        return
    for method in route.methods():
        if method in WRITE_METHODS:
            response = getattr(callers_a["token"], method)(url, {"name": "x"}, format="json")
            assert response.status_code == 404, (method, url)


@pytest.mark.parametrize("route", UNKEYED)
def test_lists_show_nothing_of_b_even_when_asked(data, callers_a, route):
    b_slug = data.b[Tenant][0].slug
    probes = [{}, {"format": "csv"}, {"tenant": b_slug, "meter": "call_minutes"},
              {"within": b_slug}, {"tenant": b_slug, "format": "csv"}]  # fmt: skip
    for who, client in clients_for(route, callers_a).items():
        for params in probes:
            response = client.get(reverse(route.name), params)
            text = text_of(response)
            # An error may repeat the slug it was given; nothing else of B's, ever.
            echoed = [] if response.status_code == 200 else [b_slug]
            assert not set(b_markers_in(text)) - set(echoed), (who, params)
        listed = client.get(reverse(route.name))
        if model_of(route) in data.a and listed.status_code == 200 and route.is_api:
            assert A_MARKERS.search(text_of(listed)), f"{who}: the list shows none of A's own"
