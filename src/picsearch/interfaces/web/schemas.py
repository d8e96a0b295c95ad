"""Request and response models of the web API (they also document it at `/docs`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_QUERY_CHARS = 500
MAX_K = 50
DEFAULT_K = 10


class SearchParams(BaseModel):
    """What a search asks for: shared by the page (`/`) and the API (`/api/search`)."""

    model_config = ConfigDict(extra="ignore")

    q: str = Field(
        description="The query, in plain words (surrounding spaces are dropped).",
        json_schema_extra={"minLength": 1, "maxLength": MAX_QUERY_CHARS},
        examples=["a dog runs on the beach"],
    )
    k: int = Field(DEFAULT_K, ge=1, le=MAX_K, description="Return at most this many images.")
    min_score: float = Field(
        0.0, ge=0.0, le=1.0, allow_inf_nan=False, description="Drop images that match less than this."
    )

    @field_validator("q")
    @classmethod
    def _query_length(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("The query is empty: type a few words describing the picture.")
        if len(value) > MAX_QUERY_CHARS:
            raise ValueError(f"The query is {len(value)} characters long; the limit is {MAX_QUERY_CHARS}.")
        return value


class ResultItem(BaseModel):
    """One image of the answer, best first."""

    id: str = Field(description="The image's id in the index.")
    score: float = Field(ge=0.0, le=1.0, description="How well text and picture match, in [0, 1].")
    image_url: str = Field(description="The full image.")
    thumb_url: str = Field(description="A small JPEG preview.")


class SearchResponse(BaseModel):
    """The answer to a query: images, or the disclaimer when the query is blocked."""

    query: str = Field(description="The query as it was searched.")
    blocked: bool = Field(description="True when the law forbids answering: `results` is then empty.")
    disclaimer: str | None = Field(description="The legal notice shown instead of pictures when blocked.")
    weak: bool = Field(
        description="True when even the best image scores under 1/3: by the model, experts would say the text "
        "describes none of the images, or minor aspects of them at most. False when blocked or empty."
    )
    results: list[ResultItem] = Field(description="Images whose score passed `min_score`, best first.")


class ErrorResponse(BaseModel):
    """A request the server refused, with the reason in words."""

    detail: str = Field(examples=["q: The query is empty: type a few words describing the picture."])


class Health(BaseModel):
    """Liveness and the size of the gallery being served."""

    status: str = "ok"
    images: int = Field(description="Number of images in the index.")


def describe(error: ValidationError | list[dict], labels: dict[str, str] | None = None) -> str:
    """One readable line for validation errors, naming each field ("k: ...; q: ...").

    ``labels`` renames fields for people (an empty label drops the prefix).
    """
    errors = error.errors() if isinstance(error, ValidationError) else error
    parts = []
    for item in errors:
        field = ".".join(str(part) for part in item["loc"] if part not in ("query", "body"))
        label = (labels or {}).get(field, field)
        reason = item.get("ctx", {}).get("error") or item["msg"]
        parts.append(f"{label}: {reason}" if label else str(reason))
    return "; ".join(parts)
