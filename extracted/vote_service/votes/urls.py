"""The vote service's slice of the polls API under /api/."""

from rest_framework.routers import SimpleRouter

from extracted.vote_service.votes.views import VoteViewSet

router = SimpleRouter()
router.register("votes", VoteViewSet, basename="vote")

urlpatterns = router.urls
