"""WSGIAdapter (sandbox/adapter.py): a WSGI app served to requests in-process."""
from __future__ import annotations

from typing import Any, Iterator

import pytest
import requests
from flask import Flask, Response, request

from flask_havn.sandbox.adapter import WSGIAdapter

BASE = "http://havn-sandbox.invalid"


def echo_app() -> Flask:
    app = Flask("echo")

    @app.route("/echo/<path:rest>", methods=["GET", "POST", "PUT", "DELETE"])
    def echo(rest: str) -> Any:
        return {
            "method": request.method,
            "path": request.path,
            "rest": rest,
            "args": request.args.to_dict(flat=False),
            "body": request.get_data(as_text=True),
            "content_type": request.content_type,
            "x_custom": request.headers.get("X-Custom"),
            "host": request.host,
            "timeout": request.environ.get("havn_sandbox.timeout"),
        }, 201, {"X-Answer": "yes"}

    @app.get("/text")
    def text() -> Response:
        return Response("héllo wörld", mimetype="text/plain", headers=[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])

    @app.get("/stream")
    def stream() -> Response:
        return Response((chunk for chunk in [b"one,", b"two,", b"three"]), mimetype="text/plain")

    return app


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.mount(BASE, WSGIAdapter(echo_app()))
        yield s


def test_a_real_response_comes_back(session: requests.Session) -> None:
    response = session.post(BASE + "/echo/a%20b/c?x=1&x=2&y=%C3%A9", data=b'{"k": "v"}',
                            headers={"Content-Type": "application/json", "X-Custom": "custom"})
    assert isinstance(response, requests.Response)
    assert response.status_code == 201 and response.ok and response.reason == "CREATED"
    assert response.headers["x-answer"] == "yes"
    assert response.url == BASE + "/echo/a%20b/c?x=1&x=2&y=%C3%A9"
    assert response.request.method == "POST"
    assert response.elapsed.total_seconds() >= 0
    body = response.json()
    assert body["method"] == "POST"
    assert body["rest"] == "a b/c"
    assert body["args"] == {"x": ["1", "2"], "y": ["é"]}
    assert body["body"] == '{"k": "v"}'
    assert body["content_type"] == "application/json"
    assert body["x_custom"] == "custom"
    assert body["host"] == "havn-sandbox.invalid"
    assert body["timeout"] is None


def test_text_encoding_and_repeated_headers(session: requests.Session) -> None:
    response = session.get(BASE + "/text")
    assert response.encoding == "utf-8"
    assert response.text == "héllo wörld"
    assert response.headers["Set-Cookie"] == "a=1, b=2"


def test_streaming_and_iterating(session: requests.Session) -> None:
    response = session.get(BASE + "/stream", stream=True)
    assert b"".join(response.iter_content(chunk_size=3)) == b"one,two,three"
    response.close()


@pytest.mark.parametrize("timeout, expected", [(2.5, 2.5), ((1, 4), 4.0), ((1, None), None), (None, None)])
def test_read_timeout_reaches_the_app(session: requests.Session, timeout: Any, expected: Any) -> None:
    assert session.get(BASE + "/echo/t", timeout=timeout).json()["timeout"] == expected


def test_bodies_of_every_kind(session: requests.Session) -> None:
    assert session.put(BASE + "/echo/s", data="plain text").json()["body"] == "plain text"
    assert session.post(BASE + "/echo/j", json={"a": [1, 2]}).json()["body"] == '{"a": [1, 2]}'
    gen = (part for part in [b"ab", b"cd"])
    assert session.post(BASE + "/echo/g", data=gen).json()["body"] == "abcd"
    assert session.delete(BASE + "/echo/d").json()["body"] == ""


def test_unknown_routes_are_answers_not_errors(session: requests.Session) -> None:
    assert session.get(BASE + "/nowhere").status_code == 404
