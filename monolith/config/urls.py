"""The monolith's URLs: the polls API, auth, admin, schema and the operational endpoints."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from monolith.accounts import views as accounts_views

urlpatterns = [
    path("", include("strangler.web.urls")),
    # The reverse path's HTTP transport (embedded default); internal token only.
    path("", include("strangler.consumer.urls")),
    path("admin/", admin.site.urls),
    path("api/", include("monolith.polls.urls")),
    path("api/auth/token/", accounts_views.token, name="auth-token"),
    path(".well-known/jwks.json", accounts_views.jwks, name="jwks"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
]

if settings.DEBUG:
    from debug_toolbar.toolbar import debug_toolbar_urls

    urlpatterns += debug_toolbar_urls()

handler400 = "strangler.api.errors.bad_request"
handler403 = "strangler.api.errors.permission_denied"
handler404 = "strangler.api.errors.not_found"
handler500 = "strangler.api.errors.server_error"
