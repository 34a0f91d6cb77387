"""Sign-in endpoints with the password-guessing guard in front."""

from django.contrib.auth import views as auth_views
from django.http import Http404, HttpResponse
from django.views.decorators.http import require_GET
from rest_framework import status
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.response import Response
from rest_framework.settings import api_settings

from accounts.login_guard import clear_failures, locked_for, record_failure
from accounts.models import Brand

LOCKED = "Too many failed sign-ins for this account from your address; try again in {} minutes."


class GuardedLoginView(auth_views.LoginView):
    def post(self, request, *args, **kwargs):
        username = request.POST.get("username", "")
        wait = locked_for(request, username)
        if wait:
            # An unbound form: binding it would run authenticate() with the guess.
            context = self.get_context_data(
                form=self.form_class(request), locked_message=LOCKED.format(wait // 60)
            )
            response = self.render_to_response(context, status=429)
            response["Retry-After"] = str(wait)
            return response
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        record_failure(self.request, self.request.POST.get("username", ""))
        return super().form_invalid(form)

    def form_valid(self, form):
        clear_failures(self.request, form.get_user().get_username())
        return super().form_valid(form)


class GuardedTokenView(ObtainAuthToken):
    """POST username and password for an API token; guarded like the login page."""

    # DRF's view names its own parsers; these are every endpoint's checked ones.
    parser_classes = api_settings.DEFAULT_PARSER_CLASSES

    def post(self, request, *args, **kwargs):
        data = request.data if hasattr(request.data, "get") else {}
        username = str(data.get("username", ""))
        wait = locked_for(request, username)
        if wait:
            response = Response(
                {"detail": LOCKED.format(wait // 60)}, status=status.HTTP_429_TOO_MANY_REQUESTS
            )
            response["Retry-After"] = str(wait)
            return response
        serializer = self.get_serializer(data=request.data)
        if not serializer.is_valid():
            record_failure(request, username)
        serializer.is_valid(raise_exception=True)
        clear_failures(request, username)
        return super().post(request, *args, **kwargs)


@require_GET
def brand_logo(request, digest: str):
    """A brand's logo, by the hash of its bytes: public (sign-in pages show it), and
    cached for good since new bytes get a new address."""
    brand = Brand.objects.filter(logo_hash=digest).only("logo", "logo_type").first()
    if brand is None or not brand.logo:
        raise Http404("No such logo.")
    response = HttpResponse(bytes(brand.logo), content_type=brand.logo_type)
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    response["Content-Security-Policy"] = "default-src 'none'"
    return response
