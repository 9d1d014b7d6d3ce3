"""``strangler parity record|generate|run|report``: corpora, replays and their reports."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from strangler.cli import CommandError
from strangler.compare import Comparison, RulesError, RuleSet, compare, load_rules
from strangler.parity.corpus import CorpusError, read_corpus, write_corpus
from strangler.parity.generate import GenerateError, generate_corpus
from strangler.parity.identity import IdentityError, fetch_tokens, identities_from
from strangler.parity.records import RecordError, read_records
from strangler.parity.replay import (
    ReplayConfig,
    StateError,
    StateFile,
    router_token_from_env,
    run_corpus,
)
from strangler.parity.report import (
    Report,
    build_report,
    render_html,
    render_json,
    render_junit,
    render_text,
)
from strangler.parity.results import PairResult


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "parity",
        help="replay traffic against the monolith and a service and compare the answers",
        description="Parity tests: record or generate a corpus, replay it against a primary "
        "and a candidate, and report per endpoint (exit 1 when a gate fails).",
    )
    verbs = parser.add_subparsers(dest="parity_verb", metavar="ACTION", required=True)
    _register_record(verbs)
    _register_generate(verbs)
    _register_run(verbs)
    _register_report(verbs)


def _rules(path: str | None) -> RuleSet:
    try:
        return load_rules(path)
    except RulesError as exc:
        raise CommandError(f"{exc}") from None


def _register_record(verbs: Any) -> None:
    p = verbs.add_parser(
        "record",
        help="record a corpus through a proxy, or from the router's shadow records",
        description="Record requests to a JSONL corpus, credentials replaced by the test "
        "identity and the rules' scrub fields blanked. Either listen as a proxy in front of "
        "--upstream (stop with Ctrl-C or --limit) or convert --from-shadow records.",
    )
    p.add_argument("--out", required=True, help="corpus file to write (JSONL)")
    p.add_argument(
        "--rules", help="plan or rules YAML whose parity.scrub fields are blanked"
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--from-shadow", metavar="FILE", help="router shadow records (JSONL)"
    )
    source.add_argument(
        "--listen", metavar="HOST:PORT", help="address for the recording proxy"
    )
    p.add_argument("--upstream", help="URL the recording proxy forwards to")
    p.add_argument("--limit", type=int, help="stop after recording this many requests")
    p.set_defaults(handler=_record)


def _record(args: argparse.Namespace) -> int:
    from strangler.parity.record import RecordingProxy, from_shadow_records

    rules = _rules(args.rules)
    if args.from_shadow:
        try:
            count = write_corpus(
                args.out, from_shadow_records(args.from_shadow, scrub=rules.scrub)
            )
        except RecordError as exc:
            raise CommandError(str(exc)) from None
        print(f"recorded {count} requests to {args.out}")
        return 0
    if not args.upstream:
        raise CommandError(
            "--listen needs --upstream URL (where requests are forwarded)"
        )
    host, _, port = args.listen.rpartition(":")
    if not port.isdigit():
        raise CommandError(
            f"--listen {args.listen!r}: expected HOST:PORT, e.g. 127.0.0.1:9100"
        )
    with open(args.out, "a") as out:
        proxy = RecordingProxy(
            (host or "127.0.0.1", int(port)),
            args.upstream,
            out,
            scrub=rules.scrub,
            limit=args.limit,
        )
        print(
            f"parity record: proxying {args.listen} -> {args.upstream}", file=sys.stderr
        )
        try:
            proxy.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            proxy.server_close()
    print(f"recorded {proxy.recorded} requests to {args.out}")
    return 0


def _register_generate(verbs: Any) -> None:
    p = verbs.add_parser(
        "generate",
        help="build a corpus from the OpenAPI schema and the seeded data",
        description="Build a corpus covering every operation in the schema: real ids found "
        "through the list endpoints, filters, pagination, bad input and auth failures.",
    )
    p.add_argument("--schema", required=True, help="schema URL (…/api/schema/) or file")
    p.add_argument("--base", required=True, help="base URL whose data is discovered")
    p.add_argument("--out", help="corpus file to write (default: stdout)")
    p.add_argument("--identity", default="default", help="test identity for writes")
    p.add_argument(
        "--ids", type=int, default=3, help="real ids per resource (default 3)"
    )
    p.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="[METHOD] PATH",
        help="only operations matching this pattern, e.g. '/api/votes/**' (repeatable)",
    )
    p.set_defaults(handler=_generate)


def _generate(args: argparse.Namespace) -> int:
    try:
        corpus = generate_corpus(
            args.schema,
            args.base,
            identity=args.identity,
            ids_per_resource=args.ids,
            include=args.include,
        )
    except GenerateError as exc:
        raise CommandError(str(exc)) from None
    if args.out:
        write_corpus(args.out, corpus)
        print(f"wrote {len(corpus)} requests to {args.out}", file=sys.stderr)
    else:
        from strangler.parity.corpus import iter_lines

        sys.stdout.writelines(iter_lines(corpus))
    return 0


def _add_report_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rules", help="plan or rules YAML with a parity: section")
    p.add_argument(
        "--json", action="store_true", help="print the JSON report on stdout"
    )
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML")
    p.add_argument("--html", metavar="FILE", help="write the static HTML report")
    p.add_argument("--report", metavar="FILE", help="write the JSON report to a file")
    p.add_argument(
        "--max-mismatch-rate",
        type=float,
        default=0.0,
        metavar="R",
        help="fail when an endpoint's mismatch rate is above R (0..1, default 0)",
    )
    p.add_argument(
        "--min-samples",
        type=int,
        default=1,
        metavar="N",
        help="fail when an endpoint has fewer than N compared requests (default 1)",
    )


def _register_run(verbs: Any) -> None:
    p = verbs.add_parser(
        "run",
        help="replay a corpus against primary and candidate and compare",
        description="Replay a corpus concurrently against --primary and --candidate, "
        "compare each pair under the noise rules and report. Unsafe methods are sent as "
        "dry runs (X-Strangler-Dry-Run with $STRANGLER_ROUTER_TOKEN), rolled back by the "
        "backends, unless --allow-writes. Exit 1 when an endpoint fails the gate.",
    )
    p.add_argument("--corpus", required=True, help="JSONL corpus")
    p.add_argument("--primary", required=True, help="the reference (monolith) base URL")
    p.add_argument("--candidate", required=True, help="the service base URL")
    p.add_argument("--baseline", help="a second primary: its differences are noise")
    p.add_argument(
        "--concurrency", type=int, default=8, help="requests in flight (default 8)"
    )
    p.add_argument(
        "--state", help="state file: resume from it and record progress in it"
    )
    p.add_argument(
        "--allow-writes",
        action="store_true",
        help="send unsafe methods for real (disposable databases only); writes run one at a time",
    )
    p.add_argument(
        "--token-url", help="token endpoint (default: PRIMARY/api/auth/token/)"
    )
    p.add_argument(
        "--username", help="default identity's username (or $STRANGLER_PARITY_USERNAME)"
    )
    p.add_argument(
        "--password", help="default identity's password (or $STRANGLER_PARITY_PASSWORD)"
    )
    p.add_argument(
        "--identity",
        action="append",
        default=[],
        metavar="NAME=USER:PASSWORD",
        help="a named test identity (repeatable)",
    )
    p.add_argument(
        "--host", help="X-Forwarded-Host sent to every backend (default: primary's)"
    )
    p.add_argument(
        "--timeout", type=float, default=30.0, help="per-request timeout, seconds"
    )
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    _add_report_options(p)
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        raise CommandError("--concurrency must be at least 1")
    rules = _rules(args.rules)
    try:
        corpus = read_corpus(args.corpus)
        needed = {r.identity for r in corpus if r.identity}
        identities = identities_from(
            args.identity, username=args.username, password=args.password
        )
        token_url = args.token_url or args.primary.rstrip("/") + "/api/auth/token/"
        tokens = fetch_tokens(needed, identities, token_url=token_url) if needed else {}
    except (CorpusError, IdentityError) as exc:
        raise CommandError(str(exc)) from None
    router_token = router_token_from_env()
    if (
        not args.allow_writes
        and not router_token
        and any(not r.is_safe for r in corpus)
    ):
        raise CommandError(
            "the corpus has unsafe requests: set STRANGLER_ROUTER_TOKEN so the backends run "
            "them as rolled-back dry runs, or pass --allow-writes for disposable databases"
        )
    config = ReplayConfig(
        primary=args.primary,
        candidate=args.candidate,
        baseline=args.baseline,
        rules=rules,
        concurrency=args.concurrency,
        allow_writes=args.allow_writes,
        tokens=tokens,
        router_token=router_token,
        host=args.host,
        timeout=args.timeout,
    )
    try:
        results = run_corpus(
            corpus,
            config,
            state_path=Path(args.state) if args.state else None,
            progress=not args.quiet,
        )
    except StateError as exc:
        raise CommandError(str(exc)) from None
    return _emit(results, args, rules, source="replay")


def _register_report(verbs: Any) -> None:
    p = verbs.add_parser(
        "report",
        help="render reports from the router's shadow records or a run's state file",
        description="Render the parity reports from router shadow records (--shadow) or "
        "from a replay's state file (--state). Exit 1 when an endpoint fails the gate.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--shadow", metavar="FILE", help="router shadow records (JSONL)"
    )
    source.add_argument("--state", metavar="FILE", help="state file of a parity run")
    _add_report_options(p)
    p.set_defaults(handler=_report)


def shadow_results(path: str, rules: RuleSet, *, recompare: bool) -> list[PairResult]:
    """Shadow records as replay results: the stored comparison, or a fresh one under
    ``rules`` when ``recompare`` (or when the record holds none)."""
    results = []
    for index, record in enumerate(read_records(path)):
        comparison: Comparison | None = None if recompare else record.comparison
        if comparison is None:
            comparison = compare(
                record.primary,
                record.shadow,
                method=record.method,
                path=record.path,
                rules=rules,
            )
        results.append(
            PairResult(
                index=index,
                method=record.method,
                target=record.path,
                comparison=comparison,
                primary=record.primary,
                candidate=record.shadow,
                route=record.route,
            )
        )
    return results


def _report(args: argparse.Namespace) -> int:
    rules = _rules(args.rules)
    try:
        if args.shadow:
            results = shadow_results(args.shadow, rules, recompare=bool(args.rules))
        else:
            results = StateFile(Path(args.state), {}).load(check=False)
    except (RecordError, StateError) as exc:
        raise CommandError(str(exc)) from None
    return _emit(results, args, rules, source="shadow" if args.shadow else "replay")


def _emit(
    results: list[PairResult], args: argparse.Namespace, rules: RuleSet, *, source: str
) -> int:
    report: Report = build_report(
        results,
        max_mismatch_rate=args.max_mismatch_rate,
        min_samples=args.min_samples,
        headers=rules.headers,
        source=source,
    )
    if args.json:
        sys.stdout.write(render_json(report))
    else:
        sys.stdout.write(render_text(report))
    for path, render in (
        (args.junit, render_junit),
        (args.html, render_html),
        (args.report, render_json),
    ):
        if path:
            _write_atomically(Path(path), render(report))
    return 0 if report.passed else 1


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
