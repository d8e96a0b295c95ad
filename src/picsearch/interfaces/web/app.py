"""The web app: a search page, a JSON API and id-only image serving, over any Searcher.

`create_app(searcher, thumbs_dir)` takes the searcher as a dependency, so the page, the API
and the tests share one code path. A request never names a file: images are looked up by id
through ``searcher.checked_file`` and nothing else, which refuses a file that is not the one the
index checked (the rule lives in the searcher; this module only turns its refusal into a 404).
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, AsyncIterator, Protocol, Sequence
from urllib.parse import quote, urlencode

import jinja2
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from fastapi_offline import FastAPIOffline
from pydantic import ValidationError

from picsearch import __version__
from picsearch.data.files import CheckedFile, UncheckedFileError
from picsearch.data.images import ImageReadError
from picsearch.index.stores import MilvusStoreError
from picsearch.interfaces.web.batcher import Overloaded, SearchBatcher
from picsearch.interfaces.web.head import HeadAsGet
from picsearch.interfaces.web.schemas import (
    DEFAULT_K,
    MAX_K,
    MAX_QUERY_CHARS,
    ErrorResponse,
    Health,
    ResultItem,
    SearchParams,
    SearchResponse,
    describe,
)
from picsearch.interfaces.web.i18n import LANGUAGES, catalogue, choose_language
from picsearch.interfaces.web.thumbs import ThumbnailCache
from picsearch.labels import MINOR_ASPECTS

HERE = Path(__file__).parent
log = logging.getLogger(__name__)
IMAGE_CACHE_CONTROL = "public, max-age=86400"
# The page loads nothing but its own CSS, JS and images.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
RETRY_AFTER_S = 1
OVERLOADED = {503: {"model": ErrorResponse, "description": "Too many searches waiting; retry after `Retry-After` s."}}
NOT_FOUND = {404: {"model": ErrorResponse, "description": "No indexed image has this id."}}
# Messages app.js needs to draw answers in the page's language.
SCRIPT_MESSAGES = ("photo_one", "photo_other", "result_alt", "error_unreachable", "error_status")


class SearcherLike(Protocol):
    """What the app needs from `picsearch.search.Searcher`."""

    def search(self, query: str, k: int = ..., min_score: float = ...) -> Any: ...

    def search_many(self, queries: Sequence[str], k: int = ..., min_score: float = ...) -> list[Any]: ...

    def checked_file(self, image_id: str) -> CheckedFile: ...

    def __len__(self) -> int: ...


@dataclass
class WebState:
    """Everything the request handlers share; kept on ``app.state.web``."""

    searcher: SearcherLike
    thumbs: ThumbnailCache
    templates: Jinja2Templates
    # Concurrent searches are micro-batched onto one worker thread: text encoders are not guaranteed
    # thread-safe, and the event loop stays free for health checks and files.
    batcher: SearchBatcher


def create_app(searcher: SearcherLike, thumbs_dir: Path, batcher: SearchBatcher | None = None) -> FastAPI:
    """Build the app over ``searcher``; thumbnails are cached in ``thumbs_dir``; searches go through ``batcher``
    (default: a :class:`SearchBatcher` over ``searcher`` with its default limits)."""
    batcher = batcher or SearchBatcher(searcher)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        batcher.close()

    # FastAPIOffline serves Swagger UI's and ReDoc's assets from its package: FastAPI's /docs loads them from a
    # CDN, and is a blank page on a machine without internet.
    app = FastAPIOffline(
        title="picsearch",
        summary="Text-to-image search with a relevance score in [0, 1] trained on human judgements.",
        description=(
            "Search the indexed gallery with words. A query about children is answered with a legal "
            "disclaimer instead of pictures, and pictures of children are never returned."
        ),
        version=__version__,
        lifespan=lifespan,
    )
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, trim_blocks=True, lstrip_blocks=True
    )
    app.state.web = WebState(searcher, ThumbnailCache(thumbs_dir), Jinja2Templates(env=environment), batcher)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(router)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(HeadAsGet)
    return app


router = APIRouter()


async def _state(request: Request) -> WebState:  # async: resolved on the event loop, not in the thread pool
    return request.app.state.web


State = Annotated[WebState, Depends(_state)]


def _language(request: Request, lang: str | None = None) -> str:
    """The page's language: ``?lang=`` (the switch on the page), else ``Accept-Language``, else English."""
    return choose_language(request.headers.get("accept-language"), lang)


Language = Annotated[str, Depends(_language)]


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page(request: Request, state: State, language: Language) -> Response:
    """The search page; works as a plain form GET, `static/app.js` makes it live."""
    raw = request.query_params
    messages = catalogue(language)
    context: dict[str, Any] = {
        "query": raw.get("q", ""),
        "k": raw.get("k", str(DEFAULT_K)),
        "min_score": raw.get("min_score", "0"),
        "max_k": MAX_K,
        "max_query_chars": MAX_QUERY_CHARS,
        "gallery_size": len(state.searcher),
        "lang": language,
        "lang_chosen": raw.get("lang") == language,  # the switch was used: searches keep that language
        "t": messages,
        "minor_aspects": MINOR_ASPECTS,
        "script_messages": {key: messages[key] for key in SCRIPT_MESSAGES},
        "switch": _language_links(raw),
        "language_names": {code: catalogue(code)["language_name"] for code in LANGUAGES},
        "answer": None,
        "error": None,
    }
    status = 200
    if "q" in raw:
        try:
            # An emptied number field falls back to its default instead of failing the search.
            params = SearchParams.model_validate({key: value for key, value in raw.items() if value or key == "q"})
        except ValidationError as exc:
            labels = {field: messages[f"label_{field}"] for field in ("q", "k", "min_score")}
            context["error"], status = describe(exc, labels), 422
        else:
            context.update(answer=await _search(state, params), k=str(params.k), min_score=f"{params.min_score:g}")
    headers = {**PAGE_HEADERS, "Content-Language": language, "Vary": "Accept-Language"}
    return state.templates.TemplateResponse(request, "index.html", context, status_code=status, headers=headers)


def _language_links(raw: Any) -> dict[str, str]:
    """The page's URL in each language: the same search with ``lang`` set."""
    kept = [(key, value) for key, value in raw.multi_items() if key != "lang"]
    return {code: "/?" + urlencode([*kept, ("lang", code)]) for code in LANGUAGES}


@router.get(
    "/api/search",
    response_model=SearchResponse,
    responses={
        422: {"model": ErrorResponse, "description": "Empty or too long query, or k / min_score out of range."},
        **OVERLOADED,
    },
    summary="Search the gallery",
)
async def api_search(params: Annotated[SearchParams, Query()], state: State) -> SearchResponse:
    """Best images for the query, best first, each with its score in [0, 1].

    A blocked query (about children) returns `blocked: true`, the disclaimer and no results.
    """
    return await _search(state, params)


@router.get("/images/{image_id}", response_class=FileResponse, responses=NOT_FOUND, summary="A full image, by id")
def image(image_id: str, request: Request, state: State) -> Response:
    """The original file of an indexed image, while it holds the bytes the index checked."""
    checked = _checked_file(state, image_id)
    return _cached_file(request, checked.path, checked.identity.digest[:32])


@router.get("/thumbs/{image_id}", response_class=FileResponse, responses=NOT_FOUND, summary="A thumbnail, by id")
def thumbnail(image_id: str, request: Request, state: State) -> Response:
    """A JPEG preview of an indexed image (longest side 480 px), made once and cached on disk."""
    source = _checked_file(state, image_id)
    try:
        path, key = state.thumbs.get(source)
    except UncheckedFileError as exc:
        raise _unchecked(image_id, exc) from exc
    except (FileNotFoundError, ImageReadError) as exc:
        raise HTTPException(404, f"image {image_id!r} cannot be read") from exc
    return _cached_file(request, path, key, media_type="image/jpeg")


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz(state: State) -> Health:
    """`ok` and the number of indexed images; answered on the event loop, whatever the search load."""
    return Health(images=len(state.searcher))


async def _search(state: WebState, params: SearchParams) -> SearchResponse:
    try:
        result = await state.batcher.search(params.q, params.k, params.min_score)
    except Overloaded as exc:
        raise HTTPException(503, f"busy: {exc}; retry later", headers={"Retry-After": str(RETRY_AFTER_S)}) from exc
    except MilvusStoreError as exc:  # the Milvus server is down or refused: the page stays up, the search waits
        raise HTTPException(
            503, f"the vector store is unavailable ({exc}); retry later", headers={"Retry-After": str(RETRY_AFTER_S)}
        ) from exc
    # A blocked answer never carries pictures, whatever the searcher returned.
    hits: Sequence[Any] = [] if result.blocked else result.hits
    return SearchResponse(
        query=result.query,
        blocked=result.blocked,
        disclaimer=result.disclaimer if result.blocked else None,
        weak=bool(hits) and result.weak,
        results=[_item(hit) for hit in hits],
    )


def _item(hit: Any) -> ResultItem:
    image_id = str(hit.id)
    quoted = quote(image_id, safe="")
    return ResultItem(id=image_id, score=float(hit.score), image_url=f"/images/{quoted}", thumb_url=f"/thumbs/{quoted}")


def _checked_file(state: WebState, image_id: str) -> CheckedFile:
    """The checked file of an indexed image; 404 for any id the index does not hold or whose file
    is not the one it checked (the reason, which names the file, goes to the log only)."""
    try:
        return state.searcher.checked_file(image_id)
    except UncheckedFileError as exc:
        raise _unchecked(image_id, exc) from exc
    except (KeyError, ValueError, TypeError) as exc:
        raise HTTPException(404, f"no indexed image has the id {image_id!r}") from exc


def _unchecked(image_id: str, exc: UncheckedFileError) -> HTTPException:
    log.warning("image %s refused: %s", image_id, exc)
    return HTTPException(404, f"image {image_id!r} is not served: its file is not the one the index checked")


def _cached_file(request: Request, path: Path, key: str, media_type: str | None = None) -> Response:
    """The file with ETag and Cache-Control; 304 when the client already holds this version."""
    headers = {"ETag": f'"{key}"', "Cache-Control": IMAGE_CACHE_CONTROL, "X-Content-Type-Options": "nosniff"}
    if headers["ETag"] in _etags(request.headers.get("if-none-match", "")):
        return Response(status_code=304, headers=headers)
    return FileResponse(path, headers=headers, media_type=media_type)


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 with one readable line instead of FastAPI's nested error list."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": describe(list(exc.errors()))}, status_code=422)
