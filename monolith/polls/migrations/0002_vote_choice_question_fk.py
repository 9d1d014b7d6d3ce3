"""Make the database keep ``vote.question_id`` equal to its choice's question.

Django has no composite foreign keys, so on PostgreSQL this adds one by hand:
``(choice_id, question_id) -> polls_choice (id, question_id)``. Together with the unique
``(user, question)`` constraint, the database alone guarantees one vote per user per question.
SQLite cannot add a foreign key to an existing table; there the service layer sets the column.
"""

from django.db import migrations

FORWARD = """
ALTER TABLE polls_vote
    ADD CONSTRAINT polls_vote_choice_matches_question
    FOREIGN KEY (choice_id, question_id) REFERENCES polls_choice (id, question_id)
    ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED
"""
BACKWARD = "ALTER TABLE polls_vote DROP CONSTRAINT polls_vote_choice_matches_question"


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("polls", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
