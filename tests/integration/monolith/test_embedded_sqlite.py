"""The embedded default (SQLite under var/) takes concurrent writes without 'database is locked'."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = textwrap.dedent(
    """
    import threading
    import django
    django.setup()
    from django.core.management import call_command
    from django.contrib.auth import get_user_model
    from django.db import connection
    from monolith.polls import services
    from monolith.polls.models import Vote
    from strangler.dualwrite.modes import set_mode

    call_command("migrate", verbosity=0)
    set_mode("vote", "forward")  # the outbox write makes each cast a longer transaction
    owner = get_user_model().objects.create(username="owner")
    question = services.question_create(created_by_id=owner.pk, question_text="q?")
    choice = services.choice_create(question=question, choice_text="a")
    users = [get_user_model().objects.create(username=f"u{i}").pk for i in range(64)]
    errors = []

    def cast(batch):
        try:
            for user_id in batch:
                services.vote_cast(user_id=user_id, choice_id=choice.pk)
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=cast, args=(users[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(Vote.objects.count(), errors)
    """
)


def test_concurrent_vote_casts_on_the_embedded_default_all_succeed(tmp_path):
    env = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SECRET_KEY"}
    }
    env.update(
        STRANGLER_VAR_DIR=str(tmp_path),
        DJANGO_SETTINGS_MODULE="monolith.config.settings",
        STRANGLER_DEV_DEFAULTS="1",
    )
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "64 []"
    assert (tmp_path / "monolith.sqlite3").exists()
