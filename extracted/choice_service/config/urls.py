"""The choice service's URLs: its slice of the polls API, schema and operational endpoints."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from extracted.common.settings import HANDLERS

urlpatterns = [
    path("", include("strangler.web.urls")),
    path("", include("strangler.consumer.urls")),
    path("api/", include("extracted.choice_service.choices.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
]

handler400 = HANDLERS["handler400"]
handler403 = HANDLERS["handler403"]
handler404 = HANDLERS["handler404"]
handler500 = HANDLERS["handler500"]
