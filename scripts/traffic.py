#!/usr/bin/env python
"""Bounded demo and test traffic through the router: reads, votes cast and retracted.

Logs users in (``POST /api/auth/token/``), then for ``--seconds`` (or ``--votes`` accepted
casts) sends a mix of reads and writes from ``--workers`` threads, and reports every vote the
API accepted with a 2xx, so a test can check that each one exists exactly once in the owning
database. Traffic goes to the given base URL only (127.0.0.1 by default).

    python scripts/traffic.py --base http://127.0.0.1:8080 --seconds 30 --json
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import requests


@dataclass
class Tally:
    """What the load did; ``accepted`` holds the ids of votes answered with 201."""

    statuses: Counter = field(default_factory=Counter)
    accepted: set[int] = field(default_factory=set)
    retracted: set[int] = field(default_factory=set)
    errors: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, response: requests.Response) -> None:
        """Count the answer under "kind status", and a refusal (4xx) with its error code
        too ("POST /api/votes/ 409 owned_elsewhere"): a vote already cast and a write
        sent where its entity is no longer owned are both 409s."""
        key = f"{kind} {response.status_code}"
        if 400 <= response.status_code < 500:
            key += f" {error_code(response)}"
        with self.lock:
            self.statuses[key] += 1

    def as_dict(self) -> dict:
        return {
            "statuses": dict(self.statuses),
            "accepted_votes": sorted(self.accepted),
            "retracted_votes": sorted(self.retracted),
            "errors": dict(self.errors),
        }


def error_code(response: requests.Response) -> str:
    """The ``error.code`` of a JSON error answer, or "?"."""
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "?"


def login(base: str, username: str, password: str) -> str:
    response = requests.post(
        f"{base}/api/auth/token/",
        json={"username": username, "password": password},
        timeout=10,
    )
    if response.status_code != 200:
        raise SystemExit(
            f"traffic: cannot log in as {username}: {response.status_code} {response.text}"
        )
    return response.json()["access"]


def choice_ids(base: str, limit: int = 400) -> list[tuple[int, int]]:
    """(choice id, question id) pairs the votes will be cast for."""
    pairs: list[tuple[int, int]] = []
    url: str | None = f"{base}/api/choices/?page_size=100"
    while url and len(pairs) < limit:
        body = requests.get(url, timeout=10).json()
        pairs.extend((c["id"], c["question"]) for c in body["results"])
        url = body.get("next")
    if not pairs:
        raise SystemExit(
            f"traffic: {base}/api/choices/ lists no choices; seed data first"
        )
    return pairs


def worker(
    args, tokens: list[str], pairs, tally: Tally, stop: threading.Event, seed: int
) -> None:
    rng = random.Random(seed)
    session = requests.Session()
    # (token, vote id, when it was cast): a user retracts a vote cast a while ago, not one
    # cast milliseconds earlier, so retractions pick among votes at least
    # ``retract_after`` seconds old.
    mine: list[tuple[str, int, float]] = []
    retract_after = getattr(args, "retract_after", 0.0)
    while not stop.is_set():
        token = rng.choice(tokens)
        auth = {"Authorization": f"Bearer {token}"}
        roll = rng.random()
        try:
            if roll < args.write_ratio:
                choice, question = rng.choice(pairs)
                response = session.post(
                    f"{args.base}/api/votes/",
                    json={"choice": choice},
                    headers=auth,
                    timeout=10,
                )
                tally.record("POST /api/votes/", response)
                if response.status_code == 201:
                    vote_id = response.json()["id"]
                    with tally.lock:
                        tally.accepted.add(vote_id)
                    mine.append((token, vote_id, time.monotonic()))
                    if args.votes and len(tally.accepted) >= args.votes:
                        stop.set()
            elif roll < args.write_ratio + args.retract_ratio and (
                old := [
                    i
                    for i, v in enumerate(mine)
                    if time.monotonic() - v[2] >= retract_after
                ]
            ):
                token, vote_id, _ = mine.pop(rng.choice(old))
                response = session.delete(
                    f"{args.base}/api/votes/{vote_id}/",
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=10,
                )
                tally.record("DELETE /api/votes/{id}/", response)
                if response.status_code == 204:
                    with tally.lock:
                        tally.retracted.add(vote_id)
            else:
                _, question = rng.choice(pairs)
                path = rng.choice(
                    [f"/api/questions/{question}/results/", f"/api/votes/?question={question}",
                     f"/api/choices/?question={question}", "/api/questions/"]
                )  # fmt: skip
                response = session.get(f"{args.base}{path}", headers=auth, timeout=10)
                template = re.sub(r"/\d+/", "/{id}/", path.split("?")[0])
                tally.record(f"GET {template}", response)
        except requests.RequestException as exc:
            with tally.lock:
                tally.errors[exc.__class__.__name__] += 1


def run(args: argparse.Namespace) -> Tally:
    if (
        not args.base.startswith(("http://127.", "http://localhost", "http://[::1]"))
        and not args.allow_remote
    ):
        raise SystemExit(
            "traffic: refusing a non-local base URL without --allow-remote"
        )
    tokens = [
        login(args.base, f"user{n:04d}", args.password)
        for n in range(1, args.users + 1)
    ]
    pairs = choice_ids(args.base)
    tally = Tally()
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=worker, args=(args, tokens, pairs, tally, stop, args.seed + i)
        )
        for i in range(args.workers)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline and not stop.is_set():
        time.sleep(0.1)
    stop.set()
    for thread in threads:
        thread.join()
    return tally


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--base", default="http://127.0.0.1:8080")
    p.add_argument("--users", type=int, default=20, help="log in as user0001..userNNNN")
    p.add_argument("--password", default="demo-password")
    p.add_argument(
        "--seconds", type=float, default=10.0, help="upper bound on the run time"
    )
    p.add_argument(
        "--votes", type=int, default=0, help="stop after this many accepted votes"
    )
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--write-ratio", type=float, default=0.3)
    p.add_argument("--retract-ratio", type=float, default=0.05)
    p.add_argument(
        "--retract-after",
        type=float,
        default=2.0,
        help="only retract votes cast at least this many seconds earlier",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print the full tally as JSON")
    p.add_argument("--allow-remote", action="store_true", help=argparse.SUPPRESS)
    return p


def main() -> int:
    args = parser().parse_args()
    tally = run(args)
    if args.json:
        json.dump(tally.as_dict(), sys.stdout)
        sys.stdout.write("\n")
    else:
        for key, count in sorted(tally.statuses.items()):
            print(f"{count:7d}  {key}")
        print(
            f"accepted votes: {len(tally.accepted)}, retracted: {len(tally.retracted)}"
        )
    return 1 if tally.errors else 0


if __name__ == "__main__":
    sys.exit(main())
