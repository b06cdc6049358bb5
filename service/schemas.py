"""The API's JSON shapes (pydantic), kept apart from the core types in :mod:`vision.types`.

Field names here are a contract with scanner workstations and the clerk page: add fields freely,
never rename or remove one. Conversion from core types happens in the ``from_core`` constructors,
at the edge, so core types never learn about HTTP.

Coordinates: ``box`` is ``[x1, y1, x2, y2]`` in pixels of the *uploaded* image (after EXIF
orientation), origin top-left. Similarities are calibrated percentages with two decimals.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, Field

from service.matching import Comparison, SpecimenMatch, SpecimenScore
from service.security import Role
from similarity.pairwise import Finding
from similarity.registry import SpecimenInfo
from similarity.verifier import Method
from vision.types import Detections, Modality, RiskLevel, Verdict

#: Kinds of registered marks, as the form field ``kind`` accepts them.
Kind = Literal["stamp", "signature"]

Box = Annotated[list[float], Field(min_length=4, max_length=4, description="[x1, y1, x2, y2] in image pixels")]


def as_utc(moment: datetime) -> datetime:
    """``moment`` with its UTC offset (SQLite hands back naive datetimes; everything stored is UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class ErrorOut(BaseModel):
    """Every 4xx/5xx body."""

    error: str = Field(description="machine-readable reason, e.g. 'unsupported_format'")
    detail: str = Field(description="what went wrong, in a sentence")


class WhoAmIOut(BaseModel):
    """The key a request was made with: the name the audit log records, and its role."""

    name: str = Field(description="the key's name, as recorded in the audit log")
    role: Role = Field(description="scanner (inspect), clerk (also compare and read), admin (also register)")


class DetectionOut(BaseModel):
    """One detection; ``box`` in uploaded-image pixels."""

    label: str
    confidence: float = Field(ge=0, le=1)
    box: Box
    class_id: int

    @classmethod
    def from_core(cls, detections: Detections) -> list[DetectionOut]:
        """One entry per detection, in the detector's order (descending confidence)."""
        return [
            cls(label=label, confidence=round(float(conf), 4), box=[round(float(v), 1) for v in box], class_id=int(c))
            for label, conf, box, c in zip(
                detections.labels, detections.confidence, detections.xyxy, detections.class_id, strict=True
            )
        ]


class FindingOut(BaseModel):
    """Something the questioned mark shows by itself, whatever it is compared with."""

    code: Literal["no_colour", "copy_like", "low_resolution"] = Field(
        description="no_colour (a greyscale stamp: print under it cannot be told from its ink, and a copy cannot "
        "be told from an impression), copy_like (the stamp's colour wanders like a colour photocopy's or print's), "
        "low_resolution (the questioned stamp and the specimen it was compared with were scanned at very different "
        "resolutions: compared at the coarser one, fine carving differences are lost)"
    )
    detail: str

    @classmethod
    def from_core(cls, findings: Sequence[Finding]) -> list[Self]:
        """From the verifier's findings (or a specimen's registration checks)."""
        return [cls(code=f.code, detail=f.detail) for f in findings]  # type: ignore[arg-type]


_FINDINGS = "what the questioned mark shows by itself (stamps compared directly only); empty when nothing"


class MatchOut(BaseModel):
    """A detected stamp or signature compared with one registered specimen."""

    detection: int = Field(description="index into 'detections'")
    kind: Kind
    specimen_id: str
    owner: str
    similarity: float = Field(ge=0, le=100, description="calibrated percent, two decimals")
    verdict: Verdict
    threshold: float = Field(description="decision threshold, percent")
    claimed: bool = Field(description="whether the request named this owner")
    method: Method = Field(
        "embedding",
        description="what scored it: 'aligned' (stamp aligned onto the owner's specimens), 'shape' (signature "
        "compared by shape with the owner's specimens) or 'embedding' (reports stored before direct scoring "
        "existed read as 'embedding')",
    )
    findings: list[FindingOut] = Field(default_factory=list, description=_FINDINGS)

    @classmethod
    def from_core(cls, m: SpecimenMatch) -> MatchOut:
        """From the matcher's result."""
        return cls(
            detection=m.match.detection,
            kind=m.kind,  # type: ignore[arg-type]
            specimen_id=m.match.specimen_id,
            owner=m.match.owner,
            similarity=round(m.match.similarity, 2),
            verdict=m.match.verdict,
            threshold=m.match.threshold,
            claimed=m.claimed,
            method=m.method,
            findings=FindingOut.from_core(m.findings),
        )


class ImageOut(BaseModel):
    """The inspected image: its size as uploaded and as stored with the report."""

    width: int
    height: int
    sha256: str
    format: str
    stored_width: int
    stored_height: int


class ReportOut(BaseModel):
    """An inspection report, as returned by the inspect routes and ``GET /v1/reports/{id}``."""

    id: str
    modality: Modality
    created_at: datetime
    detections: list[DetectionOut]
    risk: RiskLevel | None = Field(description="X-ray only: clear, review or alarm")
    matches: list[MatchOut] = Field(default_factory=list, description="documents only; claimed owners first")
    claimed_owners: list[str] = Field(default_factory=list)
    models: dict[str, str] = Field(description="model name -> version")
    timings_ms: dict[str, float]
    image: ImageOut
    annotated_url: str


class SpecimenOut(BaseModel):
    """A registered specimen (its image at ``image_url``)."""

    id: str
    kind: Kind
    owner: str
    label: str
    model_version: str
    created_at: datetime
    image_url: str

    @classmethod
    def from_core(cls, info: SpecimenInfo) -> SpecimenOut:
        """From the registry's metadata."""
        return cls(
            id=info.id,
            kind=info.kind,  # type: ignore[arg-type]
            owner=info.owner,
            label=info.label,
            model_version=info.model_version,
            created_at=as_utc(info.created_at),
            image_url=f"/v1/specimens/{info.id}/image.png",
        )


class SpecimenCheckOut(FindingOut):
    """A reason to doubt a newly registered specimen (it is registered all the same)."""

    code: Literal["no_colour", "copy_like", "no_ink"]  # type: ignore[assignment]


class SpecimenCreatedOut(SpecimenOut):
    """``POST /v1/specimens``: the registered specimen, and what the checks at registration found."""

    checks: list[SpecimenCheckOut] = Field(
        default_factory=list,
        description="stamps: no_colour (greyscale or black ink: print under it cannot be told from stamp ink), "
        "copy_like (colour wandering like a photocopy's or print's), no_ink (no stamp ink found); empty when "
        "none applies. Measured once, at registration; not listed by GET.",
    )


class SpecimenListOut(BaseModel):
    """``GET /v1/specimens``."""

    specimens: list[SpecimenOut]
    count: int


class SpecimenScoreOut(BaseModel):
    """One specimen's calibrated similarity with the uploaded crop."""

    specimen_id: str
    owner: str
    label: str
    similarity: float
    verdict: Verdict

    @classmethod
    def from_core(cls, s: SpecimenScore) -> SpecimenScoreOut:
        """From the matcher's result."""
        return cls(
            specimen_id=s.specimen_id,
            owner=s.owner,
            label=s.label,
            similarity=round(s.similarity, 2),
            verdict=s.verdict,
        )


class CompareOut(BaseModel):
    """``POST /v1/compare``: the uploaded crop against a specimen or an owner's specimens."""

    kind: Kind
    similarity: float = Field(
        ge=0,
        le=100,
        description="calibrated percent, two decimals: against the specimen, or against the owner "
        "(its specimens combined when compared directly)",
    )
    verdict: Verdict
    threshold: float
    band: float = Field(description="half-width of the inconclusive band, percentage points")
    specimen_id: str
    owner: str
    per_specimen: list[SpecimenScoreOut]
    method: Method = Field(description="what scored it (see MatchOut.method)")
    findings: list[FindingOut] = Field(default_factory=list, description=_FINDINGS)
    image_sha256: str
    models: dict[str, str]
    timings_ms: dict[str, float]

    @classmethod
    def from_core(
        cls, c: Comparison, *, image_sha256: str, models: dict[str, str], timings_ms: dict[str, float]
    ) -> CompareOut:
        """From the matcher's comparison plus the request's digest, models and timings."""
        return cls(
            kind=c.kind,  # type: ignore[arg-type]
            similarity=round(c.similarity, 2),
            verdict=c.verdict,
            threshold=c.threshold,
            band=c.band,
            specimen_id=c.specimen_id,
            owner=c.owner,
            per_specimen=[SpecimenScoreOut.from_core(s) for s in c.per_specimen],
            method=c.method,
            findings=FindingOut.from_core(c.findings),
            image_sha256=image_sha256,
            models=models,
            timings_ms=timings_ms,
        )


# Error responses listed in the OpenAPI schema of the routes (documentation only).
_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "missing, unknown or revoked API key"},
    403: {"model": ErrorOut, "description": "the key's role does not allow this"},
}
_UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "empty image"},
    413: {"model": ErrorOut, "description": "too many bytes, or too many pixels (decompression bomb)"},
    415: {"model": ErrorOut, "description": "not a supported image format"},
    422: {"model": ErrorOut, "description": "truncated or corrupt image, or a missing or invalid form field"},
}
_NOT_FOUND_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "unknown id or owner"},
    422: {"model": ErrorOut, "description": "a missing or invalid field or parameter"},
}
_UNAVAILABLE_ERRORS: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorOut, "description": "model loading, missing or overloaded (see Retry-After)"},
}

UPLOAD_ROUTE_ERRORS = {**_AUTH_ERRORS, **_UPLOAD_ERRORS, **_NOT_FOUND_ERRORS, **_UNAVAILABLE_ERRORS}
KEY_ROUTE_ERRORS: dict[int | str, dict[str, Any]] = {401: _AUTH_ERRORS[401]}
READ_ROUTE_ERRORS = {**_AUTH_ERRORS, **_NOT_FOUND_ERRORS, **_UNAVAILABLE_ERRORS}
PNG_RESPONSE: dict[int | str, dict[str, Any]] = {200: {"content": {"image/png": {}}, "description": "PNG image"}}
