"""Build a corpus from the OpenAPI schema and the seeded data behind it.

Every operation in the schema gets requests: list endpoints with each filter (a real
value, an unknown id, a wrong type) and pagination (a small page, the last page, a page
past the end, an oversized page size); detail endpoints with real ids found through the
list endpoints, an unknown id and a malformed one; writes as the test identity with a
body built from the schema and real ids, plus malformed JSON, wrong types, unknown ids,
a missing token and a bad token.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from strangler.compare.rules import EndpointPattern, parse_endpoint
from strangler.parity.corpus import (
    DEFAULT_IDENTITY,
    IDENTITY_PREFIX,
    CorpusRequest,
)

PAGE_PARAMS = {"page", "page_size"}
LIST_PAGE_SIZE = 100
BAD_TOKEN = "Bearer not-a-valid-token"  # noqa: S105 - a deliberately invalid token
MALFORMED_JSON = '{"broken": '
_PARAM = re.compile(r"\{[^}]+\}")


class GenerateError(ValueError):
    """A schema or base URL the generator cannot use; says which and why."""


def load_schema(source: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """An OpenAPI document (YAML or JSON) from a URL or a file."""
    if source.startswith(("http://", "https://")):
        try:
            response = requests.get(
                source, headers={"Accept": "application/json"}, timeout=timeout
            )
        except requests.RequestException as exc:
            raise GenerateError(f"{source}: cannot fetch the schema ({exc})") from None
        if response.status_code != 200:
            raise GenerateError(
                f"{source}: answered {response.status_code}, not a schema"
            )
        text = response.text
    else:
        try:
            text = Path(source).read_text()
        except OSError as exc:
            raise GenerateError(
                f"{source}: cannot read the schema ({exc.strerror})"
            ) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GenerateError(f"{source}: not YAML or JSON ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("paths"), dict):
        raise GenerateError(
            f"{source}: not an OpenAPI document (no 'paths' mapping); pass the URL of "
            "/api/schema/ or a file saved from it"
        )
    return document


@dataclass
class Collection:
    """What the generator learned from one list endpoint's data."""

    path: str
    ids: list[int] = field(default_factory=list)
    count: int = 0
    values: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def unknown_id(self) -> int:
        return max(self.ids, default=0) + 100_000


class Generator:
    def __init__(
        self,
        schema: Mapping[str, Any],
        base: str,
        *,
        identity: str = DEFAULT_IDENTITY,
        ids_per_resource: int = 3,
        page_size: int = 2,
        timeout: float = 10.0,
        include: Sequence[str] = (),
    ) -> None:
        self.schema = schema
        self.base = base.rstrip("/")
        self.auth = f"{IDENTITY_PREFIX}{identity}"
        self.ids_per_resource = ids_per_resource
        self.page_size = page_size
        self.timeout = timeout
        self.collections: dict[str, Collection] = {}
        self.include = [_include_pattern(text) for text in include]

    def operations(self) -> list[tuple[str, str, dict[str, Any]]]:
        found = []
        for path, item in sorted(self.schema["paths"].items()):
            for method, op in item.items():
                if method.upper() in {"GET", "POST", "PUT", "PATCH", "DELETE"}:
                    found.append((method.upper(), path, op or {}))
        return found

    def collection(self, path: str) -> Collection:
        """The data behind a list path, fetched once from the base URL."""
        if path in self.collections:
            return self.collections[path]
        found = Collection(path)
        try:
            response = requests.get(
                f"{self.base}{path}",
                params={"page_size": LIST_PAGE_SIZE},
                timeout=self.timeout,
            )
            data = response.json() if response.status_code == 200 else {}
        except (requests.RequestException, ValueError):
            data = {}
        items = data.get("results", data) if isinstance(data, dict | list) else []
        if isinstance(items, list):
            for item in items:
                if not isinstance(item, dict):
                    continue
                if isinstance(item.get("id"), int):
                    found.ids.append(item["id"])
                for key, value in item.items():
                    if isinstance(value, int) and not isinstance(value, bool):
                        found.values.setdefault(key, []).append(value)
        found.count = (
            data.get("count", len(found.ids))
            if isinstance(data, dict)
            else len(found.ids)
        )
        self.collections[path] = found
        return found

    def sample_ids(self, collection: Collection) -> list[int]:
        ids = sorted(set(collection.ids))
        if len(ids) <= self.ids_per_resource:
            return ids or [1]
        step = (len(ids) - 1) / (self.ids_per_resource - 1)
        return sorted({ids[round(i * step)] for i in range(self.ids_per_resource)})

    def related(self, name: str) -> Collection | None:
        """The collection a foreign-key field names (``question`` → ``/api/questions/``)."""
        for method, path, _ in self.operations():
            if method == "GET" and "{" not in path:
                last = path.rstrip("/").rsplit("/", 1)[-1]
                if last in {name, f"{name}s", f"{name}es"}:
                    return self.collection(path)
        return None

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in schema:
            node: Any = self.schema
            for part in schema["$ref"].lstrip("#/").split("/"):
                node = node[part]
            schema = node
        return schema

    def body_schema(self, op: Mapping[str, Any]) -> Mapping[str, Any] | None:
        content = (op.get("requestBody") or {}).get("content") or {}
        media = content.get("application/json") or next(iter(content.values()), None)
        if not media or "schema" not in media:
            return None
        return self.resolve(media["schema"])

    def example_body(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {}
        for name, prop in (schema.get("properties") or {}).items():
            prop = self.resolve(prop)
            if prop.get("readOnly"):
                continue
            kind = prop.get("type")
            if kind == "integer":
                related = self.related(name)
                body[name] = self.sample_ids(related)[0] if related else 1
            elif kind == "number":
                body[name] = 1.5
            elif kind == "boolean":
                body[name] = True
            elif prop.get("format") == "date-time":
                body[name] = "2026-01-01T00:00:00Z"
            elif kind == "string":
                body[name] = f"parity {name}"
        return body

    def included(self, method: str, template: str) -> bool:
        return not self.include or any(
            pattern.matches(method, template) for pattern in self.include
        )

    def generate(self) -> list[CorpusRequest]:
        """Requests for every included operation; related collections outside the
        filter are still read for real foreign-key ids."""
        out: list[CorpusRequest] = []
        for method, template, op in self.operations():
            if not self.included(method, template):
                continue
            endpoint = f"{method} {template}"
            params = [self.resolve(p) for p in op.get("parameters", [])]
            if "{" in template:
                paths = self.detail_paths(template, params)
            else:
                paths = [(template, "real")]
            if method == "GET":
                out += self.reads(endpoint, template, paths, params)
            else:
                out += self.writes(method, endpoint, paths, op)
        if not out and self.include:
            wanted = ", ".join(p.text for p in self.include)
            raise GenerateError(
                f"--include {wanted}: no operation in the schema matches"
            )
        return out

    def detail_paths(
        self, template: str, params: list[Mapping[str, Any]]
    ) -> list[tuple[str, str]]:
        collection = self.collection(template[: template.index("{")])

        def fill(value: object) -> str:
            return _PARAM.sub(str(value), template, count=1)

        paths = [(fill(i), "real") for i in self.sample_ids(collection)]
        paths.append((fill(collection.unknown_id), "unknown"))
        path_param = next((p for p in params if p.get("in") == "path"), {})
        if (path_param.get("schema") or {}).get("type") == "integer":
            paths.append((fill("not-a-number"), "malformed"))
        return paths

    def reads(self, endpoint, template, paths, params) -> list[CorpusRequest]:
        out = [CorpusRequest("GET", path, endpoint=endpoint) for path, _ in paths]
        if "{" in template:
            return out
        listing = self.collection(template)
        names = {p.get("name") for p in params if p.get("in") == "query"}
        for param in params:
            name = param.get("name")
            if param.get("in") != "query" or name in PAGE_PARAMS:
                continue
            seen = listing.values.get(name, [])
            related = self.related(name)
            real = seen[0] if seen else (self.sample_ids(related)[0] if related else 1)
            unknown = (related or listing).unknown_id
            for value in (str(real), str(unknown), "abc"):
                out.append(
                    CorpusRequest(
                        "GET", template, query={name: value}, endpoint=endpoint
                    )
                )
        if names >= PAGE_PARAMS:
            size = self.page_size
            last = max(1, math.ceil(listing.count / size))
            for query in (
                {"page_size": str(size)},
                {"page": "2", "page_size": str(size)},
                {"page": str(last), "page_size": str(size)},
                {"page": str(last + 5), "page_size": str(size)},
                {"page": "abc"},
                {"page_size": "1000"},
            ):
                out.append(
                    CorpusRequest("GET", template, query=query, endpoint=endpoint)
                )
        return out

    def writes(self, method, endpoint, paths, op) -> list[CorpusRequest]:
        schema = self.body_schema(op)
        body = self.example_body(schema) if schema else None
        authed = {"Authorization": self.auth}
        out: list[CorpusRequest] = []
        for path, _ in paths[:1] + [p for p in paths if p[1] != "real"]:
            out.append(
                CorpusRequest(
                    method, path, headers=authed, body=body, endpoint=endpoint
                )
            )
        path = paths[0][0]
        out.append(CorpusRequest(method, path, body=body, endpoint=endpoint))
        out.append(
            CorpusRequest(
                method,
                path,
                headers={"Authorization": BAD_TOKEN},
                body=body,
                endpoint=endpoint,
            )
        )
        if schema is None:
            return out
        out.append(
            CorpusRequest(
                method,
                path,
                headers={**authed, "Content-Type": "application/json"},
                body_raw=MALFORMED_JSON,
                endpoint=endpoint,
            )
        )
        for name, value in (body or {}).items():
            if isinstance(value, int) and not isinstance(value, bool):
                related = self.related(name)
                for bad in ("abc", (related.unknown_id if related else 999_999)):
                    out.append(
                        CorpusRequest(
                            method,
                            path,
                            headers=authed,
                            body={**body, name: bad},
                            endpoint=endpoint,
                        )
                    )
            elif isinstance(value, str):
                too_long = "x" * 1000
                out.append(
                    CorpusRequest(
                        method,
                        path,
                        headers=authed,
                        body={**body, name: too_long},
                        endpoint=endpoint,
                    )
                )
        return out


def _include_pattern(text: str) -> EndpointPattern:
    try:
        return parse_endpoint(text)
    except ValueError as exc:
        raise GenerateError(
            f"--include {text!r}: {exc}; e.g. '/api/votes/**' or 'GET /api/votes/{{id}}/'"
        ) from None


def generate_corpus(
    schema_source: str, base: str, **options: Any
) -> list[CorpusRequest]:
    """A corpus for every operation in the schema, with data discovered at ``base``."""
    return Generator(load_schema(schema_source), base, **options).generate()
