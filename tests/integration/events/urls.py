"""The monolith's URLs plus the consumer endpoint of the HTTP transport."""

from __future__ import annotations

from django.urls import include, path

from monolith.config.urls import urlpatterns as monolith_urlpatterns

urlpatterns = [
    path("", include("strangler.consumer.urls")),
    *monolith_urlpatterns,
]
