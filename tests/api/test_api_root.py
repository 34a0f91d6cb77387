"""/api/v1/ lists the API's endpoints (each answers) and links its documentation."""

from tests.factories import PASSWORD


def test_the_api_root_lists_every_endpoint_and_the_docs(users, api, client):
    root = api(users["manager_a"]).get("/api/v1/")
    assert root.status_code == 200
    links = root.json()
    assert {"tenants", "events", "usage", "plans", "statements", "margin", "docs"} <= set(links)
    assert links["docs"].endswith("/api/docs/")
    for name in ("tenants", "events", "meters", "plans", "subscriptions", "statements", "alerts"):
        assert api(users["manager_a"]).get(links[name]).status_code == 200, name
    # The browsable page the portal's top bar links to.
    client.login(username=users["manager_a"].username, password=PASSWORD)
    page = client.get("/api/v1/", HTTP_ACCEPT="text/html")
    assert page.status_code == 200 and "/api/docs/" in page.content.decode()
    assert api().get("/api/v1/").status_code in (401, 403)
