#!/usr/bin/env python
"""Django's command-line utility for the vote service."""

import os
import sys
from pathlib import Path


def main() -> None:
    # Run as a script from anywhere: the repository root must be importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    os.environ.setdefault(
        "DJANGO_SETTINGS_MODULE", "extracted.vote_service.config.settings"
    )
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
