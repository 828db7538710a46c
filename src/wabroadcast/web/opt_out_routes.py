"""Dashboard routes of the Opt-outs page: the list, adding numbers, importing a CSV file,
removing a number, and the stop words that opt an inbound sender out.

Every change goes through ``opt_outs.service``, the functions behind the API's
``/api/whatsapp/opt-outs`` routes, so a number typed here is read, stored and
applied to running broadcasts exactly as one sent to the API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.responses import Response

from wabroadcast.api.deps import Ctx
from wabroadcast.domain.errors import (
    CsvNotText,
    NoPhoneColumn,
    OptOutNotFound,
    ValidationFailed,
)
from wabroadcast.domain.opt_outs import MAX_STOP_WORD_CHARS, MAX_STOP_WORDS, stop_word_key
from wabroadcast.domain.phones import InvalidReason
from wabroadcast.domain.recipients import is_storable_text
from wabroadcast.opt_outs import service
from wabroadcast.opt_outs.schemas import (
    INVALID_LISTED,
    MAX_PHONES,
    OptOutAdded,
    OptOutCreate,
    OptOutOut,
    StopWords,
)
from wabroadcast.texts import Translator
from wabroadcast.web import session_pages
from wabroadcast.web.auth import SignedInView, checked_form
from wabroadcast.web.forms import MAX_UPLOAD_BYTES, split_pasted
from wabroadcast.web.rendering import DashboardRoute, PageView, see_other, url

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

OPT_OUTS_PER_PAGE = 50
MAX_REASON_CHARS = 500
Cursor = Annotated[str | None, Query(max_length=200)]
PhoneFilter = Annotated[str | None, Query(max_length=64)]
Count = Annotated[int | None, Query(ge=0, le=10**9)]
NOTICES = {
    "removed": "optouts.removed",
    "not_listed": "optouts.not_listed",
    "stop_words_saved": "stopwords.saved",
}
_KNOWN_REASONS = {reason.value for reason in InvalidReason}


@dataclass(frozen=True, slots=True)
class Result:
    """What adding or importing numbers changed, as the page after the redirect shows it."""

    added: int
    already: int
    invalid: int
    skipped: int
    # The first inputs that are not phone numbers: (input, reason code).
    examples: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a form was refused: a sentence in the page's language; which form it was."""

    form: str
    text: str


def _result_url(added: OptOutAdded) -> str:
    """The page's address carrying ``added``, so a reload shows the result again and
    posts nothing (the invalid inputs are each an ``x`` parameter ``reason:input``)."""
    params: list[tuple[str, str | int]] = [
        ("added", added.added_count),
        ("already", added.already_count),
        ("invalid", added.invalid_count),
        ("skipped", added.skipped_count),
    ]
    params += [("x", f"{item.reason}:{item.input}") for item in added.invalid[:INVALID_LISTED]]
    return f"/opt-outs?{urlencode(params)}"


def _examples(given: list[str]) -> list[tuple[str, str]]:
    """The ``x`` parameters read back; anything but a known reason is left out."""
    examples = []
    for item in given[:INVALID_LISTED]:
        reason, _, typed = item.partition(":")
        if reason in _KNOWN_REASONS:
            examples.append((typed[:64], reason))
    return examples


async def _page(
    ctx: Ctx,
    view: PageView,
    *,
    phone: str | None = None,
    cursor: str | None = None,
    result: Result | None = None,
    notice: str | None = None,
    problem: Problem | None = None,
    typed: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    """The Opt-outs page; a filter that is not a phone number is a sentence, not a 422."""
    tenant = view.signed_in.tenant
    wanted = phone.strip() if phone and phone.strip() else None
    rows: list[OptOutOut] = []
    next_cursor: str | None = None
    try:
        rows, next_cursor = await service.list_opt_outs(
            ctx, tenant, phone=wanted, cursor=cursor, limit=OPT_OUTS_PER_PAGE
        )
    except ValidationFailed as exc:
        reason = str(exc.details.get("reason", InvalidReason.INVALID_FORMAT.value))
        problem = problem or Problem(
            "filter", view.t("optouts.filter_invalid", reason=view.t.or_raw("reason.", reason))
        )
        status_code = 400 if status_code == 200 else status_code
    stop_words = await service.get_stop_words(ctx, tenant)
    return view.render(
        "opt_outs.html",
        status_code=status_code,
        **await session_pages.header(ctx, tenant),
        rows=rows,
        next_cursor=next_cursor,
        cursor=cursor or "",
        phone_filter=wanted or "",
        result=result,
        notice=notice,
        problem=problem,
        typed=typed or {},
        stop_words=stop_words,
        max_stop_words=MAX_STOP_WORDS,
        max_upload_mb=MAX_UPLOAD_BYTES // (1024 * 1024),
        region=tenant.default_region,
        now=ctx.clock.now(),
        nav="opt_outs",
    )


@router.get("/opt-outs")
async def opt_outs_page(
    ctx: Ctx,
    view: SignedInView,
    phone: PhoneFilter = None,
    cursor: Cursor = None,
    notice: Annotated[str | None, Query(max_length=40)] = None,
    added: Count = None,
    already: Count = None,
    invalid: Count = None,
    skipped: Count = None,
    x: Annotated[list[str] | None, Query(max_length=INVALID_LISTED)] = None,
) -> Response:
    result = None
    if added is not None:
        result = Result(added, already or 0, invalid or 0, skipped or 0, _examples(x or []))
    shown = view.t(NOTICES[notice]) if notice in NOTICES else None
    return await _page(ctx, view, phone=phone, cursor=cursor, result=result, notice=shown)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _reason(form: FormData) -> str | None:
    return _text(form, "reason").strip() or None


def _create_problem(exc: ValidationError, t: Translator, phones: list[str]) -> str:
    """The sentence for the first thing the API's body model refuses in the typed list."""
    first = exc.errors()[0]
    where = first.get("loc", ())
    if where and where[0] == "reason":
        return t("optouts.reason_invalid", max=MAX_REASON_CHARS)
    if len(where) > 1 and isinstance(where[1], int) and where[1] < len(phones):
        return t("optouts.line_invalid", input=phones[where[1]][:64])
    if first.get("type") == "too_long":
        return t("optouts.too_many", max=f"{MAX_PHONES:,}")
    return t("optouts.unstorable")


@router.post("/opt-outs")
async def add_opt_outs(request: Request, ctx: Ctx, view: SignedInView) -> Response:
    """Numbers typed or pasted, one per line or separated by commas (Post/Redirect/Get)."""
    form = await checked_form(request, view.signed_in)
    typed = {"phones": _text(form, "phones"), "reason": _text(form, "reason")[:MAX_REASON_CHARS]}
    phones = split_pasted(typed["phones"])
    if not phones:
        problem = Problem("add", view.t("optouts.none_typed"))
        return await _page(ctx, view, problem=problem, typed=typed, status_code=400)
    try:
        body = OptOutCreate(phones=phones, reason=_reason(form))
    except ValidationError as exc:
        problem = Problem("add", _create_problem(exc, view.t, phones))
        return await _page(ctx, view, problem=problem, typed=typed, status_code=422)
    added = await service.add_opt_outs(ctx, view.signed_in.tenant, body.phones, body.reason)
    return see_other(_result_url(added))


def _import_problem(exc: ValidationFailed, t: Translator) -> str:
    if isinstance(exc, CsvNotText):
        return t("error.csv_encoding")
    if isinstance(exc, NoPhoneColumn):
        columns = ", ".join(str(c) for c in exc.details.get("columns", [])) or "-"
        return t("error.csv_no_phone_column", columns=columns)
    if exc.details.get("field") == "file":
        return t("optouts.file_empty")
    return t("error.csv_unreadable", detail=str(exc.details.get("reason", exc.message)))


@router.post("/opt-outs/import")
async def import_opt_outs(request: Request, ctx: Ctx, view: SignedInView) -> Response:
    """A CSV file's phone column, read by the importer the broadcasts and the API use."""
    form = await checked_form(request, view.signed_in)
    typed = {"import_reason": _text(form, "reason")[:MAX_REASON_CHARS]}
    upload = form.get("csv_file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        problem = Problem("import", view.t("optouts.no_file"))
        return await _page(ctx, view, problem=problem, typed=typed, status_code=400)
    reason = _reason(form)
    if reason is not None and (len(reason) > MAX_REASON_CHARS or not is_storable_text(reason)):
        problem = Problem("import", view.t("optouts.reason_invalid", max=MAX_REASON_CHARS))
        return await _page(ctx, view, problem=problem, typed=typed, status_code=422)
    data = await upload.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        mb = MAX_UPLOAD_BYTES // (1024 * 1024)
        problem = Problem("import", view.t("error.csv_too_large", mb=mb))
        return await _page(ctx, view, problem=problem, typed=typed, status_code=413)
    try:
        added = await service.import_opt_outs(ctx, view.signed_in.tenant, data, reason)
    except ValidationFailed as exc:
        problem = Problem("import", _import_problem(exc, view.t))
        return await _page(ctx, view, problem=problem, typed=typed, status_code=exc.http_status)
    return see_other(_result_url(added))


@router.get("/opt-outs/import")
@router.get("/opt-outs/remove")
@router.get("/opt-outs/stop-words")
async def form_address(view: SignedInView) -> Response:
    """The address a refused form was posted to (the language switch, a reload)."""
    return see_other("/opt-outs")


@router.post("/opt-outs/remove")
async def remove_opt_out(request: Request, ctx: Ctx, view: SignedInView) -> Response:
    """Take one number off the list, confirmed by a tick: later broadcasts message it."""
    form = await checked_form(request, view.signed_in)
    phone = _text(form, "phone").strip()[:64]
    if form.get("confirm") != "yes":
        problem = Problem("remove", view.t("optouts.unconfirmed", phone=phone))
        return await _page(ctx, view, problem=problem, status_code=400)
    try:
        await service.remove_opt_out(ctx, view.signed_in.tenant, phone)
    except OptOutNotFound:
        return see_other(url("/opt-outs", notice="not_listed"))
    except ValidationFailed:
        problem = Problem("remove", view.t("optouts.not_listed"))
        return await _page(ctx, view, problem=problem, status_code=400)
    return see_other(url("/opt-outs", notice="removed"))


def _stop_words(form: FormData, t: Translator) -> StopWords | str:
    """The stop words in the form, or the sentence saying why they cannot be kept."""
    if form.get("defaults") == "yes":
        return StopWords(stop_words=None)
    lines = _text(form, "stop_words").splitlines()
    words = list(dict.fromkeys(line.strip() for line in lines if line.strip()))
    if len(words) > MAX_STOP_WORDS:
        return t("stopwords.too_many", max=MAX_STOP_WORDS)
    for word in words:
        if len(word) > MAX_STOP_WORD_CHARS:
            return t("stopwords.too_long", word=word[:MAX_STOP_WORD_CHARS], max=MAX_STOP_WORD_CHARS)
        if not stop_word_key(word):
            return t("stopwords.meaningless", word=word)
    try:
        return StopWords(stop_words=words)
    except ValidationError:
        return t("stopwords.unstorable")


@router.post("/opt-outs/stop-words")
async def save_stop_words(request: Request, ctx: Ctx, view: SignedInView) -> Response:
    """One word or phrase a line; the tick restores the defaults; empty turns them off."""
    form = await checked_form(request, view.signed_in)
    body = _stop_words(form, view.t)
    if isinstance(body, str):
        typed = {"stop_words": _text(form, "stop_words")}
        problem = Problem("stop_words", body)
        return await _page(ctx, view, problem=problem, typed=typed, status_code=422)
    await service.set_stop_words(ctx, view.signed_in.tenant, body)
    return see_other(url("/opt-outs", notice="stop_words_saved"))
