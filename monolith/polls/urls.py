"""The polls API under /api/."""

from __future__ import annotations

from rest_framework.routers import SimpleRouter

from monolith.polls import views

router = SimpleRouter()
router.register("questions", views.QuestionViewSet, basename="question")
router.register("choices", views.ChoiceViewSet, basename="choice")
router.register("votes", views.VoteViewSet, basename="vote")

urlpatterns = router.urls
