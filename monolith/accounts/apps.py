from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "monolith.accounts"
    label = "accounts"
    verbose_name = "Accounts and tokens"
