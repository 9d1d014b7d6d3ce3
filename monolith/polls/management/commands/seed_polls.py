"""``manage.py seed_polls``: fill the polls tables with realistic data, fast.

On PostgreSQL every table is loaded with ``COPY`` from in-memory chunks inside one
transaction, ids are assigned here (so votes can name their users, questions and choices
without reading anything back) and the sequences are moved past them afterwards. Other
databases take the ``bulk_create`` path. All users share one password hash, computed once.
"""

from __future__ import annotations

import io
import json
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.management.color import no_style
from django.db import connection, models, transaction
from django.db.models import Max

from monolith.polls.models import Choice, Question, Vote

CHUNK_ROWS = 100_000
BULK_BATCH = 2_000
TOPICS = (
    "editor", "framework", "database", "language", "breakfast", "holiday", "pet",
    "season", "sport", "board game", "city", "podcast", "keyboard", "coffee",
    "browser", "operating system", "film", "book", "band", "colour", "fruit",
    "dessert", "programming font", "commute", "meeting length", "deploy day",
)  # fmt: skip
TEMPLATES = (
    "What is your favourite {}?",
    "Which {} would you pick for the next project?",
    "Which {} do you use most often?",
    "What {} should the team try next?",
    "Which {} would you recommend to a newcomer?",
    "What is the most overrated {}?",
)
WORDS = (
    "alpha", "amber", "apple", "aurora", "basil", "birch", "blue", "bright", "cedar",
    "cherry", "citrus", "clover", "cobalt", "copper", "coral", "crimson", "daisy", "dawn",
    "delta", "ember", "fern", "fig", "frost", "garnet", "ginger", "granite", "harbor",
    "hazel", "indigo", "iris", "ivory", "jade", "jasmine", "juniper", "lemon", "lilac",
    "linen", "maple", "marble", "meadow", "mint", "mocha", "nova", "oak", "olive",
    "onyx", "orchid", "pearl", "pine", "plum", "quartz", "raven", "river", "ruby",
    "saffron", "sage", "sierra", "silver", "slate", "spruce", "storm", "summit",
    "tango", "teal", "thistle", "topaz", "tulip", "umber", "velvet", "willow", "zephyr",
)  # fmt: skip


def count(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise CommandError(f"expected a whole number, got {value!r}") from None
    if number < 0:
        raise CommandError(f"expected zero or more, got {number}")
    return number


@dataclass
class Table:
    """One table to load: its model, columns in COPY order, and its row tuples."""

    model: type[models.Model]
    columns: tuple[str, ...]
    rows: Iterable[tuple[Any, ...]]
    total: int


class Progress:
    """Rows-per-second progress lines on stderr, about once a second per table."""

    def __init__(self, stream: Any, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled

    def start(self, table: Table) -> Callable[[int], None]:
        started = last = time.monotonic()

        def report(done: int) -> None:
            nonlocal last
            now = time.monotonic()
            if not self.enabled or (now - last < 1 and done < table.total):
                return
            last = now
            rate = done / max(now - started, 1e-6)
            eta = (table.total - done) / rate if rate else 0.0
            self.stream.write(
                f"seed_polls: {table.model._meta.db_table} {done:,}/{table.total:,}"
                f" ({100 * done // max(table.total, 1)}%) {rate:,.0f} rows/s,"
                f" ETA {eta:.0f}s\n"
            )
            self.stream.flush()

        return report


def _copy_value(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        return (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return str(value)


def _chunks(rows: Iterable[tuple[Any, ...]], size: int) -> Iterator[list[tuple]]:
    chunk: list[tuple] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def copy_table(table: Table, report: Callable[[int], None]) -> None:
    """Stream ``table`` into PostgreSQL with COPY, one in-memory chunk at a time."""
    quote = connection.ops.quote_name
    sql = (
        f"COPY {quote(table.model._meta.db_table)} "
        f"({', '.join(quote(column) for column in table.columns)}) FROM STDIN"
    )
    done = 0
    with connection.cursor() as cursor:
        for chunk in _chunks(table.rows, CHUNK_ROWS):
            text = "".join("\t".join(map(_copy_value, row)) + "\n" for row in chunk)
            cursor.cursor.copy_expert(sql, io.StringIO(text), size=1 << 20)
            done += len(chunk)
            report(done)


@contextmanager
def keys_and_indexes_built_once(model: type[models.Model]) -> Iterator[None]:
    """Drop the table's foreign keys, unique constraints and secondary indexes for the load,
    and build them again after it.

    Otherwise every row queues one deferred check per key (run row by row at commit) and
    lands in each index at a random spot; rebuilt, each key is one join and each index one
    sort. It all happens inside the caller's transaction, so a failure restores everything.
    """
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = %s::regclass AND contype IN ('u', 'f')"
            " ORDER BY contype = 'f', conname",
            [model._meta.db_table],
        )
        constraints = cursor.fetchall()
        cursor.execute(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid)"
            " FROM pg_index WHERE indrelid = %s::regclass AND NOT EXISTS ("
            "  SELECT 1 FROM pg_constraint"
            "  WHERE conindid = indexrelid AND contype IN ('p', 'u', 'x'))",
            [model._meta.db_table],
        )
        indexes = cursor.fetchall()
        for name, _ in reversed(constraints):
            cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {quote(name)}")
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {name}")
        yield
        for _, definition in indexes:
            cursor.execute(definition)
        for name, definition in constraints:
            cursor.execute(
                f"ALTER TABLE {table} ADD CONSTRAINT {quote(name)} {definition}"
            )


def bulk_create_table(table: Table, report: Callable[[int], None]) -> None:
    """The portable path: ``bulk_create`` in batches."""
    done = 0
    for chunk in _chunks(table.rows, BULK_BATCH):
        table.model.objects.bulk_create(
            [table.model(**dict(zip(table.columns, row, strict=True))) for row in chunk]
        )
        done += len(chunk)
        report(done)


@dataclass
class Plan:
    users: int
    questions: int
    choices_per_question: int
    votes: int
    password_hash: str
    rng: random.Random
    now: datetime

    def user_rows(self, base: int) -> Iterator[tuple]:
        width = max(4, len(str(self.users)))
        for n in range(1, self.users + 1):
            name = f"user{n:0{width}d}"
            joined = self.now - timedelta(days=self.rng.randint(30, 720))
            yield (base + n, name, self.password_hash, None, False, False, True,
                   "", "", f"{name}@example.com", joined)  # fmt: skip

    def usernames(self) -> list[str]:
        width = max(4, len(str(self.users)))
        return [f"user{n:0{width}d}" for n in range(1, self.users + 1)]

    def question_rows(self, base: int, first_user: int) -> Iterator[tuple]:
        for n in range(1, self.questions + 1):
            text = self.rng.choice(TEMPLATES).format(self.rng.choice(TOPICS))
            pub_date = self.now - timedelta(seconds=self.rng.randint(0, 90 * 86400))
            creator = first_user + self.rng.randrange(self.users)
            yield (base + n, text, pub_date, creator)

    def choice_rows(self, base: int, first_question: int) -> Iterator[tuple]:
        k = self.choices_per_question
        for q in range(self.questions):
            if k <= len(WORDS):
                texts = self.rng.sample(WORDS, k)
            else:
                texts = [f"{WORDS[i % len(WORDS)]} {i + 1}" for i in range(k)]
            for i, text in enumerate(texts):
                yield (base + q * k + i + 1, text.capitalize(), first_question + q)

    def vote_rows(
        self, base: int, first_user: int, first_question: int, first_choice: int
    ) -> Iterator[tuple]:
        """Distinct (user, question) pairs; early choices are more popular."""
        n, k = self.questions, self.choices_per_question
        pairs = self.rng.sample(range(self.users * n), self.votes)
        start = self.now.timestamp() - 30 * 86400
        step = 30 * 86400 / max(self.votes, 1)
        rand = self.rng.random
        for i, pair in enumerate(pairs):
            user, question = divmod(pair, n)
            choice = first_choice + question * k + int(k * rand() ** 1.6)
            yield (
                base + i + 1,
                choice,
                first_question + question,
                first_user + user,
                datetime.fromtimestamp(start + i * step, UTC),
            )


class Command(BaseCommand):
    help = (
        "Create seeded users (user0001…, all with --password), questions, choices and "
        "votes (each a distinct user/question pair). Uses COPY on PostgreSQL. Progress "
        "goes to stderr, a summary to stdout (--json for machines)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--users", type=count, default=50)
        parser.add_argument("--questions", type=count, default=10)
        parser.add_argument("--choices-per-question", type=count, default=4)
        parser.add_argument("--votes", type=count, default=200)
        parser.add_argument("--password", help="password every seeded user gets")
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="do nothing when any question already exists",
        )
        parser.add_argument("--seed", type=int, help="random seed, for repeatable data")
        parser.add_argument("--json", action="store_true", help="summary as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        self._validate(options)
        started = time.monotonic()
        if options["if_empty"] and Question.objects.exists():
            self._summary(options, dict.fromkeys(("users", "questions", "choices",
                          "votes"), 0), started, skipped=True)  # fmt: skip
            return
        plan = Plan(
            users=options["users"],
            questions=options["questions"],
            choices_per_question=options["choices_per_question"],
            votes=options["votes"],
            password_hash=make_password(options["password"])
            if options["users"]
            else "",
            rng=random.Random(options["seed"]),  # noqa: S311 - demo data, not secrets
            now=datetime.now(UTC),
        )
        progress = Progress(sys.stderr, options["verbosity"] > 0)
        created = self._load(plan, progress)
        if connection.vendor == "postgresql":
            tables = ", ".join(
                connection.ops.quote_name(model._meta.db_table)
                for model in (get_user_model(), Question, Choice, Vote)
            )
            with connection.cursor() as cursor:
                cursor.execute(f"ANALYZE {tables}")
        self._summary(options, created, started, skipped=False)

    def _validate(self, options: dict[str, Any]) -> None:
        users, questions = options["users"], options["questions"]
        if options["votes"] > users * questions:
            raise CommandError(
                f"--votes {options['votes']} is more than --users x --questions "
                f"= {users * questions}: each vote needs its own (user, question) pair"
            )
        if options["votes"] and not options["choices_per_question"]:
            raise CommandError("--votes needs --choices-per-question of at least 1")
        if questions and not users:
            raise CommandError("--questions needs --users of at least 1 to create them")
        if users and not options["password"]:
            raise CommandError("--password is required to create users")

    @transaction.atomic
    def _load(self, plan: Plan, progress: Progress) -> dict[str, int]:
        user_model = get_user_model()
        models_in_order = (user_model, Question, Choice, Vote)
        postgres = connection.vendor == "postgresql"
        if postgres:
            names = ", ".join(
                connection.ops.quote_name(model._meta.db_table)
                for model in models_in_order
            )
            with connection.cursor() as cursor:
                # Blocks concurrent inserts, so the ids chosen below stay free.
                cursor.execute(f"LOCK TABLE {names} IN SHARE ROW EXCLUSIVE MODE")
                # Runs checks still pending in an enclosing transaction now: PostgreSQL
                # refuses to drop a key (below) while it has pending checks.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        self._refuse_existing_usernames(user_model, plan.usernames())
        base = {
            model: model.objects.aggregate(top=Max("pk"))["top"] or 0
            for model in models_in_order
        }
        user_columns = ("id", "username", "password", "last_login", "is_superuser",
                        "is_staff", "is_active", "first_name", "last_name", "email",
                        "date_joined")  # fmt: skip
        tables = [
            Table(user_model, user_columns, plan.user_rows(base[user_model]),
                  plan.users),
            Table(Question, ("id", "question_text", "pub_date", "created_by_id"),
                  plan.question_rows(base[Question], base[user_model] + 1),
                  plan.questions),
            Table(Choice, ("id", "choice_text", "question_id"),
                  plan.choice_rows(base[Choice], base[Question] + 1),
                  plan.questions * plan.choices_per_question),
            Table(Vote, ("id", "choice_id", "question_id", "user_id", "created_at"),
                  plan.vote_rows(base[Vote], base[user_model] + 1,
                                 base[Question] + 1, base[Choice] + 1),
                  plan.votes),
        ]  # fmt: skip
        write = copy_table if postgres else bulk_create_table
        for table in tables:
            if not table.total:
                continue
            if postgres and table.model is Vote:
                with keys_and_indexes_built_once(table.model):
                    write(table, progress.start(table))
            else:
                write(table, progress.start(table))
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(no_style(), models_in_order):
                cursor.execute(sql)
        return {
            "users": plan.users,
            "questions": plan.questions,
            "choices": plan.questions * plan.choices_per_question,
            "votes": plan.votes,
        }

    def _refuse_existing_usernames(
        self, user_model: type[models.Model], usernames: list[str]
    ) -> None:
        for start in range(0, len(usernames), 500):
            taken = (
                user_model.objects.filter(username__in=usernames[start : start + 500])
                .values_list("username", flat=True)
                .first()
            )
            if taken:
                raise CommandError(
                    f"user {taken!r} already exists: seed an empty database, or pass "
                    "--if-empty to leave a seeded one alone"
                )

    def _summary(
        self,
        options: dict[str, Any],
        created: dict[str, int],
        started: float,
        *,
        skipped: bool,
    ) -> None:
        seconds = round(time.monotonic() - started, 3)
        if options["json"]:
            self.stdout.write(
                json.dumps({"skipped": skipped, **created, "seconds": seconds})
            )
        elif skipped:
            self.stdout.write("Questions already exist; nothing seeded (--if-empty).")
        else:
            self.stdout.write(
                f"Seeded {created['users']} users, {created['questions']} questions, "
                f"{created['choices']} choices and {created['votes']} votes "
                f"in {seconds:.1f} s."
            )
