"""The review page and its API: absent without a token, 401/403 without the right one, decisions logged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from picsearch.index import image_id
from picsearch.index.desk import ReviewDesk
from picsearch.index.review import LOG_NAME
from picsearch.interfaces.cli import app as cli
from picsearch.interfaces.web import create_app
from picsearch.interfaces.web.review import COOKIE, enable_review, load_token
from review_gallery import build_review_index, copy_index, write_photo
from web_gallery import WordSearcher, write_gallery

TOKEN = "s3cret-review-token-0123456789"
A, B, E = image_id("a.png"), image_id("b.png"), image_id("e.png")
ROUTES = [
    ("get", "/review", {}),
    ("get", "/review/api/queue", {}),
    ("post", "/review/api/decisions", {"json": {"id": B, "decision": "clear"}}),
    ("get", f"/review/thumbs/{A}", {}),
]


@pytest.fixture()
def index_dir(tmp_path: Path) -> Path:
    return build_review_index(tmp_path)


def make_client(tmp_path: Path, index_dir: Path, token: str | None) -> TestClient:
    web = create_app(WordSearcher(write_gallery(tmp_path / "words")), tmp_path / "thumbs")
    if token:
        enable_review(web, ReviewDesk.open(index_dir), token)
    return TestClient(web)


@pytest.fixture()
def client(tmp_path: Path, index_dir: Path) -> TestClient:
    return make_client(tmp_path, index_dir, TOKEN)


def signed_in(client: TestClient, name: str = "ann") -> TestClient:
    response = client.post("/review/login", data={"token": TOKEN, "name": name}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/review"
    cookie = response.cookies[COOKIE]
    assert TOKEN not in cookie and TOKEN not in response.headers["set-cookie"]
    assert "httponly" in response.headers["set-cookie"].lower() and "samesite=strict" in response.headers["set-cookie"].lower()
    return client


@pytest.mark.parametrize(("method", "url", "kwargs"), ROUTES + [("post", "/review/login", {"data": {"token": TOKEN}})])
def test_without_a_token_configured_the_review_routes_do_not_exist(tmp_path, index_dir, method, url, kwargs):
    client = make_client(tmp_path, index_dir, None)
    assert getattr(client, method)(url, **kwargs).status_code == 404
    assert not (index_dir / LOG_NAME).exists()


@pytest.mark.parametrize(("method", "url", "kwargs"), ROUTES)
def test_missing_credentials_get_401_and_wrong_ones_403(client, index_dir, method, url, kwargs):
    assert getattr(client, method)(url, **kwargs).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token-at-all"}
    assert getattr(client, method)(url, headers=wrong, **kwargs).status_code == 403
    client.cookies.set(COOKIE, "forged", path="/review")
    assert getattr(client, method)(url, **kwargs).status_code == 403
    assert not (index_dir / LOG_NAME).exists()


def test_the_login_form_refuses_a_wrong_token(client):
    page = client.get("/review")
    assert page.status_code == 401 and 'name="token"' in page.text and TOKEN not in page.text
    wrong = client.post("/review/login", data={"token": "guess"}, follow_redirects=False)
    assert wrong.status_code == 403 and "Wrong token" in wrong.text and COOKIE not in wrong.cookies


def test_signed_in_the_page_shows_the_queue_grid(client):
    page = signed_in(client).get("/review")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert page.text.count('class="card review-card') == 4 and "4</strong> left to review" in page.text
    assert page.text.index(f'data-id="{B}"') < page.text.index(f'data-id="{A}"')  # most likely harmless first
    thumb = client.get(f"/review/thumbs/{A}")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert thumb.headers["cache-control"] == "private, no-store"


def test_a_decision_from_the_page_is_logged_with_the_reviewers_name(client, index_dir):
    response = signed_in(client, "ann").post("/review/api/decisions", json={"id": B, "decision": "clear"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["who"] == "ann" and body["decision"] == "clear" and body["remaining"] == 3 and body["reviewed"] == 1
    record = json.loads((index_dir / LOG_NAME).read_text())
    assert record["id"] == B and record["why"] == "no child in the photo (review page)"
    queue = client.get("/review/api/queue").json()
    assert B not in [item["id"] for item in queue["items"]] and queue["reviewed"] == 1


def test_a_script_uses_the_bearer_header(client, index_dir):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    body = {"id": E, "decision": "flag", "reason": "a toddler behind the car", "by": "audit-script"}
    response = client.post("/review/api/decisions", json=body, headers=headers)
    assert response.status_code == 200 and response.json()["who"] == "audit-script"
    assert [item["id"] for item in client.get("/review/api/queue", headers=headers).json()["items"]][0] == B


def test_bad_decisions_are_refused(client, index_dir):
    signed_in(client)
    assert client.post("/review/api/decisions", json={"id": "nope", "decision": "clear"}).status_code == 404
    assert client.post("/review/api/decisions", json={"id": B, "decision": "delete"}).status_code == 422
    write_photo(index_dir.parent / "gallery" / "b.png", seed=42)
    changed = client.post("/review/api/decisions", json={"id": B, "decision": "clear"})
    assert changed.status_code == 409 and "re-index" in changed.json()["detail"]
    cross_site = client.post("/review/api/decisions", json={"id": A, "decision": "clear"},
                             headers={"Origin": "https://evil.example"})
    assert cross_site.status_code == 403
    assert not (index_dir / LOG_NAME).exists()


def test_token_file_checks(tmp_path, index_dir):
    short = tmp_path / "short.txt"
    short.write_text("abc\n")
    with pytest.raises(ValueError, match="at least 16 characters"):
        load_token(short)
    good = tmp_path / "token.txt"
    good.write_text(f"  {TOKEN}\n")
    assert load_token(good) == TOKEN
    result = CliRunner().invoke(cli, ["serve", "--index", str(index_dir), "--review-token-file", str(short)])
    assert result.exit_code == 2 and "at least 16 characters" in result.output and "Traceback" not in result.output


def test_flagged_thumbnails_only_behind_the_token_and_a_clearance_serves_them_at_once(tmp_path, synthetic_index):
    from picsearch.search import Searcher

    searcher = Searcher.open(copy_index(synthetic_index, tmp_path))
    web = create_app(searcher, tmp_path / "thumbs")
    enable_review(web, ReviewDesk(searcher.index, searcher.moderation.log), TOKEN)
    client = TestClient(web)
    pink = image_id("pink-square.png")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get(f"/thumbs/{pink}").status_code == 404 and client.get(f"/images/{pink}").status_code == 404
    assert client.get(f"/review/thumbs/{pink}").status_code == 401
    assert client.get(f"/review/thumbs/{pink}", headers=headers).status_code == 200
    assert pink not in [r["id"] for r in client.get("/api/search", params={"q": "a pink square", "k": 50}).json()["results"]]
    decided = client.post("/review/api/decisions", json={"id": pink, "decision": "clear", "reason": "no child"},
                          headers=headers)
    assert decided.status_code == 200
    assert client.get(f"/thumbs/{pink}").status_code == 200
    assert pink in [r["id"] for r in client.get("/api/search", params={"q": "a pink square", "k": 50}).json()["results"]]
