"""``strangler parity`` verbs: exit codes and errors that name the file and key."""

from __future__ import annotations

import json

from strangler.cli import main
from strangler.compare import Exchange
from strangler.parity.records import ShadowRecord

JSON = {"Content-Type": "application/json"}


def shadow_file(tmp_path, bodies):
    path = tmp_path / "shadow.jsonl"
    lines = [
        ShadowRecord(
            route="GET /api/votes/**", method="GET", path=f"/api/votes/{i}/",
            primary=Exchange(200, JSON, json.dumps(a).encode()),
            shadow=Exchange(200, JSON, json.dumps(b).encode()),
        ).to_json()
        for i, (a, b) in enumerate(bodies, start=1)
    ]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def test_report_from_shadow_records_passes_and_fails_on_threshold(tmp_path, capsys):
    path = shadow_file(tmp_path, [({"n": 1}, {"n": 1})] * 3 + [({"n": 1}, {"n": 2})])
    html = tmp_path / "out" / "report.html"
    assert main(["parity", "report", "--shadow", str(path), "--html", str(html)]) == 1
    assert "GET /api/votes/{id}/" in capsys.readouterr().out and html.exists()
    assert (
        main(["parity", "report", "--shadow", str(path), "--max-mismatch-rate", "0.25"])
        == 0
    )
    capsys.readouterr()
    assert (
        main(
            [
                "parity",
                "report",
                "--shadow",
                str(path),
                "--min-samples",
                "5",
                "--max-mismatch-rate",
                "1",
            ]
        )
        == 1
    )
    assert "fewer than the 5 required" in capsys.readouterr().out


def test_bad_rules_file_exits_2_naming_file_and_key(tmp_path, capsys):
    rules = tmp_path / "vote.yaml"
    rules.write_text(
        "parity:\n  endpoints:\n    'GET /api/votes/':\n      tolerance: {/n: lots}\n"
    )
    path = shadow_file(tmp_path, [({"n": 1}, {"n": 1})])
    assert main(["parity", "report", "--shadow", str(path), "--rules", str(rules)]) == 2
    err = capsys.readouterr().err
    assert "vote.yaml: parity.endpoints.'GET /api/votes/'.tolerance./n" in err


def test_bad_corpus_line_exits_2_naming_the_line(tmp_path, capsys):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"method": "GET", "path": "/"}\n{"method": "GET"}\n')
    code = main(["parity", "run", "--corpus", str(corpus), "--primary", "http://127.0.0.1:9",
                 "--candidate", "http://127.0.0.1:9"])  # fmt: skip
    assert code == 2
    assert "corpus.jsonl:2: key 'path'" in capsys.readouterr().err


def test_missing_identity_is_named(tmp_path, capsys):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        '{"method": "GET", "path": "/", "headers": {"Authorization": "strangler-identity:bob"}}\n'
    )
    code = main(["parity", "run", "--corpus", str(corpus), "--primary", "http://127.0.0.1:9",
                 "--candidate", "http://127.0.0.1:9"])  # fmt: skip
    assert code == 2
    assert "--identity bob=USERNAME:PASSWORD" in capsys.readouterr().err
