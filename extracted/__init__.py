"""The services extracted from the polls monolith, each a Django project on its own database."""
