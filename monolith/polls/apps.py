from django.apps import AppConfig


class PollsConfig(AppConfig):
    name = "monolith.polls"
    label = "polls"
    verbose_name = "Polls"
