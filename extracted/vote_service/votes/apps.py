from django.apps import AppConfig


class VotesConfig(AppConfig):
    name = "extracted.vote_service.votes"
    label = "votes"
    default_auto_field = "django.db.models.BigAutoField"
