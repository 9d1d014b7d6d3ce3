from django.apps import AppConfig


class ChoicesConfig(AppConfig):
    name = "extracted.choice_service.choices"
    label = "choices"
    default_auto_field = "django.db.models.BigAutoField"
