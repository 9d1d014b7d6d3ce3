from __future__ import annotations

from django.apps import AppConfig


class ConsumerConfig(AppConfig):
    name = "strangler.consumer"
    label = "strangler_consumer"
    verbose_name = "Strangler event consumer"
    default_auto_field = "django.db.models.BigAutoField"
