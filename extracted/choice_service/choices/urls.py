"""The choice service's slice of the polls API under /api/."""

from rest_framework.routers import SimpleRouter

from extracted.choice_service.choices.views import ChoiceViewSet

router = SimpleRouter()
router.register("choices", ChoiceViewSet, basename="choice")

urlpatterns = router.urls
