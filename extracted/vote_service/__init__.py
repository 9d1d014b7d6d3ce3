"""The vote service: votes cast on the polls, on its own database, with a local projection of choices."""
