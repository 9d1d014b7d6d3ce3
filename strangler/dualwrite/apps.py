from __future__ import annotations

from django.apps import AppConfig


class DualwriteConfig(AppConfig):
    name = "strangler.dualwrite"
    label = "strangler_dualwrite"
    verbose_name = "Strangler dual-write"
    default_auto_field = "django.db.models.BigAutoField"
