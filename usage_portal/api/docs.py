"""The OpenAPI document and its interactive page, titled with the viewer's brand."""

from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts.brands import request_brand


def api_title(request) -> str:
    return f"{request_brand(request).name} API"


# Set in initial(), not get(): the library's get() carries its schema decorations.
class BrandedSchemaView(SpectacularAPIView):
    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.custom_settings = {"TITLE": api_title(request)}


class BrandedDocsView(SpectacularSwaggerSplitView):
    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.title = api_title(request)
