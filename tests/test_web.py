"""The web app over a searcher: page, JSON API, id-only image serving, thumbnails, headers."""

from __future__ import annotations

import os
import re
from io import BytesIO
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from picsearch.interfaces.web import create_app
from picsearch.policy import DISCLAIMER
from web_gallery import WordSearcher, write_gallery

@pytest.fixture()
def gallery(tmp_path: Path) -> Path:
    folder = write_gallery(tmp_path / "gallery")
    (folder / "not-indexed.jpg").write_bytes((folder / "red-ball.jpg").read_bytes())
    return folder


@pytest.fixture()
def searcher(gallery: Path) -> WordSearcher:
    return WordSearcher(gallery)


@pytest.fixture()
def client(searcher: WordSearcher, tmp_path: Path) -> TestClient:
    return TestClient(create_app(searcher, tmp_path / "thumbs"))


def test_api_search_ranks_and_links(client: TestClient) -> None:
    response = client.get("/api/search", params={"q": "  blue sea ", "k": 3})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"query", "blocked", "disclaimer", "weak", "results"}
    assert body["query"] == "blue sea"  # surrounding spaces dropped before searching
    assert body["blocked"] is False and body["disclaimer"] is None and body["weak"] is False
    assert [r["id"] for r in body["results"]] == ["blue-sea.jpg", "yellow-sun.jpg", "green-field.png"]
    assert [r["score"] for r in body["results"]] == [1.0, 0.5, 0.0]
    first = body["results"][0]
    assert first["image_url"] == "/images/blue-sea.jpg" and first["thumb_url"] == "/thumbs/blue-sea.jpg"


def test_api_passes_k_and_min_score(client: TestClient, searcher: WordSearcher) -> None:
    body = client.get("/api/search", params={"q": "blue sea", "k": 50, "min_score": 0.5}).json()
    assert [r["id"] for r in body["results"]] == ["blue-sea.jpg", "yellow-sun.jpg"]
    assert searcher.calls[-1] == ("blue sea", 50, 0.5)
    assert client.get("/api/search", params={"q": "blue sea"}).status_code == 200
    assert searcher.calls[-1] == ("blue sea", 10, 0.0)  # the page's defaults


def test_blocked_query_shows_disclaimer_not_pictures(client: TestClient) -> None:
    body = client.get("/api/search", params={"q": "two little girls on the grass"}).json()
    assert body == {
        "query": "two little girls on the grass", "blocked": True, "disclaimer": DISCLAIMER, "weak": False, "results": [],
    }
    page = client.get("/", params={"q": "two little girls on the grass"})
    assert page.status_code == 200
    assert DISCLAIMER in page.text
    assert "/thumbs/" not in page.text.split("<template")[0]


def test_page_renders_results_without_javascript(client: TestClient) -> None:
    page = client.get("/", params={"q": "red ball grass", "k": "2", "min_score": "0.25"})
    assert page.status_code == 200
    html = page.text.split("<template")[0]  # the visible page, not the empty copies for app.js
    assert html.index('href="/images/red-ball.jpg"') < html.index('href="/images/green-field.png"')
    assert 'src="/thumbs/red-ball.jpg"' in html
    assert ">100%<" in html and ">33%<" in html and "yellow-sun" not in html
    assert 'alt="Result 1: 100% match"' in html
    assert 'value="2"' in html and 'value="0.25"' in html  # controls keep their values


def test_page_without_query_is_the_landing_page(client: TestClient, searcher: WordSearcher) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "Search 4 photos" in page.text
    assert searcher.calls == []
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp


def test_a_weak_answer_says_so_above_its_pictures(client: TestClient) -> None:
    """The best photo scores 0.2 (one word in five), under 1/3: the API says weak, the page says no good match
    and by how much; a best score of 1/3 or more is no weak answer."""
    body = client.get("/api/search", params={"q": "sea at night with stars"}).json()
    assert body["weak"] is True and body["results"][0]["score"] == 0.2
    html = client.get("/", params={"q": "sea at night with stars"}).text.split("<template")[0]
    assert html.index("No good match here") < html.index('class="grid"')
    assert '<strong data-slot="best">20%</strong>. Under 33%, a description fits' in html
    assert client.get("/api/search", params={"q": "red ball at noon"}).json()["weak"] is False  # 2 words of 4
    assert "No good match" not in client.get("/", params={"q": "red ball at noon"}).text.split("<template")[0]
    russian = client.get("/", params={"q": "sea at night with stars", "lang": "ru"}).text.split("<template")[0]
    assert "Хороших совпадений нет" in russian and "Ниже 33%" in russian


def test_empty_state_when_nothing_passes_min_score(client: TestClient) -> None:
    assert client.get("/api/search", params={"q": "purple cat", "min_score": 0.3}).json()["results"] == []
    page = client.get("/", params={"q": "purple cat", "min_score": "0.3"})
    assert page.status_code == 200
    assert "No photo matches well enough" in page.text
    assert "at least\n    <span data-slot=\"threshold\">30%</span>" in page.text


def test_query_is_escaped(client: TestClient) -> None:
    attack = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    page = client.get("/", params={"q": attack})
    assert page.status_code == 200
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
    api = client.get("/api/search", params={"q": attack})
    assert api.headers["content-type"] == "application/json"
    assert api.json()["query"] == attack


@pytest.mark.parametrize(
    ("params", "api", "page"),
    [
        ({"q": ""}, "q: The query is empty", "The query is empty"),
        ({"q": "   "}, "q: The query is empty", "The query is empty"),
        ({"q": "x" * 501}, "q: The query is 501 characters long; the limit is 500.", "The query is 501 characters long"),
        ({"q": "sea", "k": "0"}, "k: ", "Photos to show: "),
        ({"q": "sea", "k": "51"}, "k: ", "Photos to show: "),
        ({"q": "sea", "k": "many"}, "k: ", "Photos to show: "),
        ({"q": "sea", "min_score": "1.5"}, "min_score: ", "Minimum match: "),
        ({"q": "sea", "min_score": "-0.1"}, "min_score: ", "Minimum match: "),
        ({"q": "sea", "min_score": "nan"}, "min_score: ", "Minimum match: "),
    ],
)
def test_bad_requests_get_422_with_a_message(
    client: TestClient, searcher: WordSearcher, params: dict, api: str, page: str
) -> None:
    response = client.get("/api/search", params=params)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(api)
    html = client.get("/", params=params)
    assert html.status_code == 422
    assert "That search could not run" in html.text
    assert f'data-slot="message">{page}' in html.text
    assert searcher.calls == []


def test_api_without_query_is_422(client: TestClient) -> None:
    response = client.get("/api/search")
    assert response.status_code == 422
    assert response.json()["detail"].startswith("q: ")
    assert client.get("/api/search", params={"q": "sea", "k": ""}).status_code == 422


def test_page_treats_emptied_fields_as_defaults(client: TestClient, searcher: WordSearcher) -> None:
    assert client.get("/", params={"q": "sea", "k": "", "min_score": ""}).status_code == 200
    assert searcher.calls == [("sea", 10, 0.0)]


def test_longest_allowed_query_is_searched(client: TestClient) -> None:
    assert client.get("/api/search", params={"q": "sea " * 125}).status_code == 200


def test_images_are_served_by_id(client: TestClient, gallery: Path) -> None:
    response = client.get("/images/green-field.png")
    assert response.status_code == 200
    assert response.content == (gallery / "green-field.png").read_bytes()
    assert response.headers["content-type"] == "image/png"


@pytest.mark.parametrize("route", ["images", "thumbs"])
@pytest.mark.parametrize(
    "name",
    [
        "not-indexed.jpg",  # a file beside the gallery's images, but not in the index
        "..%2Fgallery%2Fred-ball.jpg",
        "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "..%5C..%5Cetc%5Cpasswd",
        "%2Fetc%2Fpasswd",
        "red-ball.jpg%00.png",
    ],
)
def test_only_indexed_ids_are_served(client: TestClient, route: str, name: str) -> None:
    response = client.get(f"/{route}/{name}")
    assert response.status_code == 404
    assert "image/" not in response.headers["content-type"]


@pytest.mark.parametrize("url", ["/images/../../../etc/passwd", "/thumbs/..%2F..%2F..%2Fetc%2Fpasswd", "/images/"])
def test_traversal_urls_never_serve_files(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 404


def test_absolute_path_as_id_is_refused(client: TestClient, gallery: Path) -> None:
    from urllib.parse import quote

    assert client.get("/images/" + quote(str(gallery / "red-ball.jpg"), safe="")).status_code == 404


def test_thumbnail_is_made_once_and_cached(client: TestClient, tmp_path: Path) -> None:
    thumbs = client.app.state.web.thumbs
    first = client.get("/thumbs/red-ball.jpg")
    assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
    image = Image.open(BytesIO(first.content))
    assert image.format == "JPEG" and max(image.size) == 480 and image.size == (480, 320)
    files = list((tmp_path / "thumbs").glob("*.jpg"))
    assert len(files) == 1 and thumbs.generated == 1
    mtime = files[0].stat().st_mtime_ns

    second = client.get("/thumbs/red-ball.jpg")
    assert second.content == first.content
    assert thumbs.generated == 1 and files[0].stat().st_mtime_ns == mtime
    assert list((tmp_path / "thumbs").iterdir()) == files  # no temporary files left behind

    # A fresh app over the same cache folder reuses the file too.
    other = TestClient(create_app(client.app.state.web.searcher, tmp_path / "thumbs"))
    assert other.get("/thumbs/red-ball.jpg").content == first.content
    assert other.app.state.web.thumbs.generated == 0


def test_changed_image_gets_a_new_thumbnail(client: TestClient, gallery: Path) -> None:
    before = client.get("/thumbs/red-ball.jpg")
    Image.new("RGB", (300, 600), (0, 0, 0)).save(gallery / "red-ball.jpg")
    os.utime(gallery / "red-ball.jpg", ns=(1, 1))  # a different mtime, whatever the clock resolution
    after = client.get("/thumbs/red-ball.jpg")
    assert after.headers["etag"] != before.headers["etag"]
    assert Image.open(BytesIO(after.content)).size == (240, 480)
    assert client.app.state.web.thumbs.generated == 2


@pytest.mark.parametrize("url", ["/images/yellow-sun.jpg", "/thumbs/yellow-sun.jpg"])
def test_images_have_cache_headers_and_revalidate(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=86400"
    etag = response.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 10
    assert client.get(url).headers["etag"] == etag

    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    assert client.get(url, headers={"If-None-Match": f'W/{etag}, "other"'}).status_code == 304
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200


def test_unreadable_indexed_image_is_404_not_500(client: TestClient, gallery: Path) -> None:
    (gallery / "yellow-sun.jpg").write_bytes(b"not a jpeg")
    assert client.get("/thumbs/yellow-sun.jpg").status_code == 404
    (gallery / "blue-sea.jpg").unlink()
    assert client.get("/images/blue-sea.jpg").status_code == 404
    assert client.get("/thumbs/blue-sea.jpg").status_code == 404


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "images": 4}


def test_docs_and_openapi(client: TestClient) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', docs.text)
    assert len(assets) == 2 and all(url.startswith("/") for url in assets)  # served here, not from a CDN
    for url in assets:
        assert client.get(url).status_code == 200
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/api/search"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert set(params) == {"q", "k", "min_score"}
    assert params["q"]["required"] is True and params["q"]["schema"]["maxLength"] == 500
    assert params["k"]["schema"]["minimum"] == 1 and params["k"]["schema"]["maximum"] == 50
    assert params["min_score"]["schema"]["minimum"] == 0 and params["min_score"]["schema"]["maximum"] == 1
    schema = spec["components"]["schemas"]["SearchResponse"]
    assert set(schema["properties"]) == {"query", "blocked", "disclaimer", "weak", "results"}
    assert set(spec["components"]["schemas"]["ResultItem"]["properties"]) == {"id", "score", "image_url", "thumb_url"}
    assert {"/images/{image_id}", "/thumbs/{image_id}", "/healthz"} <= set(spec["paths"])
    assert "/" not in spec["paths"]


def test_static_assets_are_local(client: TestClient) -> None:
    page = client.get("/").text
    assert "http://" not in page and "https://" not in page
    for asset in ("/static/app.js", "/static/app.css", "/static/favicon.svg"):
        response = client.get(asset)
        assert response.status_code == 200 and len(response.content) > 100
        assert "http://" not in response.text.replace("http://www.w3.org/2000/svg", "")


# --- The app over a real index: the search layer's Searcher on the synthetic bundle (pink pictures flagged) ---


@pytest.fixture()
def real_client(synthetic_searcher, tmp_path: Path) -> TestClient:
    return TestClient(create_app(synthetic_searcher, tmp_path / "thumbs"))


def flagged_ids(searcher) -> list[str]:
    from synthetic_bundle import child_paths

    rows = dict(zip(searcher.index.paths, searcher.index.ids))
    return [rows[path] for path in child_paths(searcher.index)]


def test_real_index_end_to_end(real_client: TestClient, synthetic_searcher) -> None:
    query = "a big blue square"
    body = real_client.get("/api/search", params={"q": query, "k": 4}).json()
    expected = synthetic_searcher.search(query, k=4).hits
    assert [r["id"] for r in body["results"]] == [hit.id for hit in expected] and len(expected) == 4
    assert [r["score"] for r in body["results"]] == pytest.approx([hit.score for hit in expected])
    assert {hit.path.name for hit in expected[:2]} == {"blue-circle.png", "blue-square.png"}
    for result in body["results"]:
        image = real_client.get(result["image_url"])
        assert image.status_code == 200 and image.content == synthetic_searcher.path_of(result["id"]).read_bytes()
        assert Image.open(BytesIO(real_client.get(result["thumb_url"]).content)).format == "JPEG"

    page = real_client.get("/", params={"q": query, "k": "4"}).text.split("<template")[0]
    assert [page.index(f'href="/images/{hit.id}"') for hit in expected] == sorted(
        page.index(f'href="/images/{hit.id}"') for hit in expected
    )


def test_real_index_blocks_and_filters(real_client: TestClient) -> None:
    for query in ("Мальчик на велосипеде", "two little girls on a red square"):
        blocked = real_client.get("/api/search", params={"q": query}).json()
        assert blocked["blocked"] is True and blocked["disclaimer"] == DISCLAIMER and blocked["results"] == []
        page = real_client.get("/", params={"q": query}).text
        assert DISCLAIMER in page and "/thumbs/" not in page.split("<template")[0]
    best = real_client.get("/api/search", params={"q": "blue sky", "k": 1}).json()["results"][0]["score"]
    strict = real_client.get("/api/search", params={"q": "blue sky", "min_score": min(1.0, best + 1e-6)}).json()
    assert strict["results"] == []


def test_child_flagged_images_are_never_served_counted_or_listed(real_client: TestClient, synthetic_searcher) -> None:
    hidden = flagged_ids(synthetic_searcher)
    visible = len(synthetic_searcher.index) - len(hidden)
    assert len(hidden) == 2
    for image_id in hidden:
        assert real_client.get(f"/images/{image_id}").status_code == 404
        assert real_client.get(f"/thumbs/{image_id}").status_code == 404
    for query in ("pink", "a pink square", "a photo"):
        shown = {r["id"] for r in real_client.get("/api/search", params={"q": query, "k": 50}).json()["results"]}
        assert len(shown) == visible and not shown & set(hidden)
        page = real_client.get("/", params={"q": query, "k": "50"}).text
        assert page.count('href="/images/') == visible and not any(image_id in page for image_id in hidden)
    assert real_client.get("/healthz").json() == {"status": "ok", "images": visible}
    assert f"Search {visible} photos" in real_client.get("/").text
    assert real_client.get(f"/images/{synthetic_searcher.search('red', k=1).hits[0].id}").status_code == 200


def test_serve_command_wires_the_index(
    synthetic_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stub_uvicorn: dict
) -> None:
    served = serve_with_stub_uvicorn(synthetic_index, tmp_path / "thumbs", monkeypatch, stub_uvicorn)
    assert served["host"] == "127.0.0.1" and served["port"] == 8123 and served["threads"] == 1 and served["ran"]
    client = TestClient(served["app"])
    assert client.get("/healthz").json()["images"] == 12  # 14 indexed, the 2 pink ones flagged
    greens = client.get("/api/search", params={"q": "a green field", "k": 2}).json()["results"]
    assert [client.get(r["image_url"]).status_code for r in greens] == [200, 200]
    assert served["app"].state.web.thumbs.folder == tmp_path / "thumbs"


def serve_with_stub_uvicorn(index_dir: Path, thumbs: Path, monkeypatch: pytest.MonkeyPatch, served: dict) -> dict:
    """Run `picsearch serve --index INDEX_DIR --port 8123` with uvicorn's Server recording (``stub_uvicorn``)."""
    from typer.testing import CliRunner

    from picsearch.interfaces.cli import app as cli
    from picsearch import runtime

    monkeypatch.setattr(runtime, "set_threads", lambda n: served.update(threads=n))
    result = CliRunner().invoke(cli, ["serve", "--index", str(index_dir), "--port", "8123", "--thumbs", str(thumbs)])
    assert result.exit_code == 0, result.output
    return served


@pytest.mark.data
@pytest.mark.slow
def test_serve_command_on_the_real_models(
    real_data: Path, real_artifacts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stub_uvicorn: dict
) -> None:
    from picsearch.index import build_index

    # Real photos: the real detector flags most drawn shapes, so a drawn gallery may show nothing.
    build_index(real_data / "test_images", real_artifacts, tmp_path / "index", progress=False)
    served = serve_with_stub_uvicorn(tmp_path / "index", tmp_path / "thumbs", monkeypatch, stub_uvicorn)
    client = TestClient(served["app"])
    shown = client.get("/healthz").json()["images"]
    results = client.get("/api/search", params={"q": "a dog runs through the snow", "k": 50}).json()["results"]
    assert 0 < len(results) == shown < 100 and client.get(results[0]["thumb_url"]).status_code == 200
    assert client.get("/api/search", params={"q": "Мальчик на велосипеде"}).json()["disclaimer"] == DISCLAIMER


def test_serve_command_names_a_missing_index(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from picsearch.interfaces.cli import app as cli

    result = CliRunner().invoke(cli, ["serve", "--index", str(tmp_path / "absent")])
    assert result.exit_code == 2
    assert "no index here" in result.output and "Traceback" not in result.output


def test_an_unreachable_vector_store_is_a_503_naming_it(client: TestClient, searcher: WordSearcher, monkeypatch) -> None:
    from picsearch.index.stores import MilvusStoreError

    def down(*args, **kwargs):
        raise MilvusStoreError("http://milvus:19530: Milvus search on 'picsearch_x' failed: server unavailable")

    monkeypatch.setattr(searcher, "search_many", down)
    monkeypatch.setattr(searcher, "search", down)
    response = client.get("/api/search", params={"q": "blue sea"})
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert "vector store is unavailable" in response.json()["detail"] and "http://milvus:19530" in response.json()["detail"]
    assert client.get("/healthz").status_code == 200  # the server itself stays up
