"""Include at the root of a consumer's urlconf: ``path("", include("strangler.consumer.urls"))``.
Keep the router from exposing it; it also requires the internal bearer token."""

from __future__ import annotations

from django.urls import path

from strangler.consumer import views
from strangler.events.http import PATH

urlpatterns = [path(PATH, views.receive_events, name="strangler-internal-events")]
