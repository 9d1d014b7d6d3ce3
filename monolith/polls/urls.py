"""The polls API under /api/."""

urlpatterns: list = []
