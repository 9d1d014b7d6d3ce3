"""Route path patterns: matching, specificity and overlap."""

from __future__ import annotations

import pytest

from strangler.routing.patterns import Pattern, PatternError


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("/api/votes/**", "/api/votes", True),
        ("/api/votes/**", "/api/votes/", True),
        ("/api/votes/**", "/api/votes/12/", True),
        ("/api/votes/**", "/api/votesx/", False),
        ("/api/questions/*/results/", "/api/questions/7/results/", True),
        ("/api/questions/*/results/", "/api/questions//results/", False),
        ("/api/questions/*/results/", "/api/questions/7/results", False),
        ("/**", "/anything/at/all", True),
    ],
)
def test_pattern_matches(pattern, path, expected):
    assert Pattern.parse(pattern).match(path) is expected


@pytest.mark.parametrize("text", ["api/x", "/a/**/b", "/a/x*", "/a//b"])
def test_bad_patterns_are_refused(text):
    with pytest.raises(PatternError):
        Pattern.parse(text)


def test_more_literal_segments_are_more_specific():
    results = Pattern.parse("/api/questions/*/results/")
    questions = Pattern.parse("/api/questions/**")
    assert (
        results.specificity > questions.specificity > Pattern.parse("/**").specificity
    )


def test_overlap_and_cover():
    a, b = Pattern.parse("/api/*/x"), Pattern.parse("/api/y/*")
    assert a.overlaps(b)
    assert not Pattern.parse("/api/a").overlaps(Pattern.parse("/api/b"))
    assert Pattern.parse("/api/**").covers(Pattern.parse("/api/votes/*"))
    assert not Pattern.parse("/api/votes/*").covers(Pattern.parse("/api/**"))


def test_regex_matches_the_same_paths():
    import re

    for text, paths in {
        "/api/votes/**": ["/api/votes", "/api/votes/1/", "/api/votesx"],
        "/api/questions/*/results/": ["/api/questions/3/results/", "/api/questions/3/"],
    }.items():
        pattern = Pattern.parse(text)
        for path in paths:
            assert bool(re.match(pattern.regex(), path)) == pattern.match(path), path
