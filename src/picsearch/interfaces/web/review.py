"""The review page: operators clear false alarms of the child detector, or confirm them, from the keyboard.

Off by default. :func:`enable_review` adds the routes below to an app only when the server was given
a secret (`picsearch serve --review-token-file F`); without it, they do not exist (404), and the only
thumbnails served are those `Searcher.checked_file` returns, never a flagged photo's.

Every route needs the token, compared in constant time, presented either as
``Authorization: Bearer TOKEN`` (scripts) or as the ``picsearch_review`` cookie that the login form
sets (``HttpOnly; SameSite=Strict; Path=/review``; its value is an HMAC of the token, not the token).
Missing credentials get 401, wrong ones 403. The token never travels in a URL, so no access log
holds it. Decisions are JSON POSTs: a cross-site form cannot send one with the cookie.

| route | what |
|---|---|
| `GET /review` | the queue as a keyboard grid (the login form when not signed in) |
| `POST /review/login`, `POST /review/logout` | form `token` (+ `name`) -> cookie; clear it |
| `GET /review/api/queue` | `{"remaining", "groups", "reviewed", "items": [{"id", "path", "probability", "group", "thumb_url"}]}` |
| `POST /review/api/decisions` | `{"id", "decision": "clear" or "flag", "reason"?, "by"?}` -> the logged record |
| `GET /review/thumbs/{id}` | a thumbnail of any indexed photo, flagged ones included |
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol
from urllib.parse import parse_qs, quote, unquote

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from picsearch.data.images import ImageReadError
from picsearch.interfaces.web.app import PAGE_HEADERS, WebState, _cached_file, _state

COOKIE = "picsearch_review"
NAME_COOKIE = "picsearch_reviewer"
COOKIE_PATH = "/review"
MIN_TOKEN_CHARS = 16
DEFAULT_REASONS = {"clear": "no child in the photo (review page)", "flag": "a child, or unsure (review page)"}


class DeskLike(Protocol):
    """What the page needs from `picsearch.index.desk.ReviewDesk`."""

    def queue(self) -> Any: ...

    def decide(self, image_id: str, decision: str, why: str, who: str) -> Any: ...

    def progress(self) -> tuple[int, int]: ...

    def path_of(self, image_id: str) -> Path: ...


@dataclass
class ReviewAccess:
    """The desk behind the page and the secret that opens it; kept on ``app.state.review``."""

    desk: DeskLike
    token: str

    def session(self) -> str:
        """The cookie value: an HMAC of the token (the cookie never holds the token itself)."""
        return hmac.new(self.token.encode(), b"picsearch review session", hashlib.sha256).hexdigest()


class DecisionRequest(BaseModel):
    """A decision from the page or a script."""

    id: str = Field(min_length=1, max_length=200)
    decision: Literal["clear", "flag"]
    reason: str = Field("", max_length=500)
    by: str = Field("", max_length=100)


def load_token(path: Path) -> str:
    """The review token in ``path`` (surrounding whitespace dropped); ValueError when short or missing."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: review token file not found")
    token = path.read_text(encoding="utf-8").strip()
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(f"{path}: the review token must have at least {MIN_TOKEN_CHARS} characters")
    return token


def enable_review(app: FastAPI, desk: DeskLike, token: str) -> None:
    """Add the review page and its API to ``app``, behind ``token``."""
    app.state.review = ReviewAccess(desk, token)
    app.include_router(router)


def _access(request: Request) -> ReviewAccess:
    return request.app.state.review


def signed_in(request: Request, access: ReviewAccess) -> bool | None:
    """True for the right token (header or cookie), False for a wrong one, None when none was sent."""
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), access.token.encode())
    cookie = request.cookies.get(COOKIE)
    if cookie is None:
        return None
    return hmac.compare_digest(cookie.encode(), access.session().encode())


def require_token(request: Request, access: Annotated[ReviewAccess, Depends(_access)]) -> ReviewAccess:
    """401 without credentials, 403 with wrong ones; cross-site writes are refused too."""
    verdict = signed_in(request, access)
    if verdict is None:
        raise HTTPException(401, "review: sign in with the review token", headers={"WWW-Authenticate": "Bearer"})
    if not verdict:
        raise HTTPException(403, "review: wrong token")
    origin = request.headers.get("origin")
    if request.method == "POST" and origin and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise HTTPException(403, "review: cross-site request refused")
    return access


Access = Annotated[ReviewAccess, Depends(require_token)]
State = Annotated[WebState, Depends(_state)]
router = APIRouter(prefix="/review", include_in_schema=False)


@router.get("")
def review_page(request: Request, state: State, access: Annotated[ReviewAccess, Depends(_access)]) -> Response:
    """The queue as a grid, or the login form (401 / 403) when not signed in."""
    verdict = signed_in(request, access)
    if not verdict:
        return _login_page(request, state, 401 if verdict is None else 403, "" if verdict is None else "Wrong token.")
    queue = access.desk.queue()
    context = {"queue": queue, "items": [_item_json(item) for item in queue.items],
               "reviewer": request.cookies.get(NAME_COOKIE, "")}
    return state.templates.TemplateResponse(request, "review.html", context, headers=_no_store())


@router.post("/login")
async def login(request: Request, state: State, access: Annotated[ReviewAccess, Depends(_access)]) -> Response:
    """Form POST of ``token`` and ``name``: sets the session cookie and goes to the queue."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    token = form.get("token", [""])[0].strip()
    if not hmac.compare_digest(token.encode(), access.token.encode()):
        return _login_page(request, state, 403, "Wrong token.")
    response = RedirectResponse("/review", status_code=303, headers=_no_store())
    secure = request.url.scheme == "https"
    response.set_cookie(COOKIE, access.session(), httponly=True, samesite="strict", path=COOKIE_PATH, secure=secure)
    name = form.get("name", [""])[0].strip()[:100]
    response.set_cookie(NAME_COOKIE, quote(name), httponly=True, samesite="strict", path=COOKIE_PATH, secure=secure)
    return response


@router.post("/logout")
def logout(_: Access) -> Response:
    """Forget the session cookie."""
    response = RedirectResponse("/review", status_code=303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response


@router.get("/api/queue")
def api_queue(access: Access) -> dict:
    """The photos left to review, most likely harmless first, near-duplicates together."""
    queue = access.desk.queue()
    return {**queue.to_json(), "items": [_item_json(item) for item in queue.items]}


@router.post("/api/decisions")
def api_decide(body: DecisionRequest, request: Request, access: Access) -> dict:
    """Log a decision about the photo's current content; search applies it to the next query."""
    who = body.by.strip() or _reviewer(request) or "review page"
    try:
        review = access.desk.decide(body.id, body.decision, body.reason.strip() or DEFAULT_REASONS[body.decision], who)
    except KeyError as exc:
        raise HTTPException(404, f"no indexed image has the id {body.id!r}") from exc
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from exc
    remaining, reviewed = access.desk.progress()
    return {**review.to_json(), "remaining": remaining, "reviewed": reviewed}


@router.get("/thumbs/{image_id}")
def review_thumbnail(image_id: str, request: Request, state: State, access: Access) -> Response:
    """A thumbnail of any indexed photo (flagged ones too: this is what reviewers look at)."""
    try:
        path, key = state.thumbs.get(access.desk.checked_file(image_id))
    except KeyError as exc:
        raise HTTPException(404, f"no indexed image has the id {image_id!r}") from exc
    except (FileNotFoundError, ImageReadError) as exc:
        raise HTTPException(404, f"image {image_id!r} cannot be read") from exc
    response = _cached_file(request, path, key, media_type="image/jpeg")
    response.headers["Cache-Control"] = "private, no-store"  # a flagged photo stays out of shared caches
    return response


def _item_json(item: Any) -> dict:
    return {**vars(item), "thumb_url": f"/review/thumbs/{quote(item.id, safe='')}"}


def _reviewer(request: Request) -> str:
    return unquote(request.cookies.get(NAME_COOKIE, "")).strip()


def _login_page(request: Request, state: WebState, status: int, error: str) -> Response:
    return state.templates.TemplateResponse(
        request, "review_login.html", {"error": error}, status_code=status, headers=_no_store()
    )


def _no_store() -> dict[str, str]:
    return {**PAGE_HEADERS, "Cache-Control": "no-store"}
