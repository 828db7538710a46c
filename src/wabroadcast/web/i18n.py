"""How a dashboard request picks its language (the sentences are in ``wabroadcast.texts``)."""

from __future__ import annotations

from starlette.requests import Request

from wabroadcast.texts import Language

LANGUAGE_COOKIE = "wab_lang"


def language_of(request: Request) -> Language:
    """The language the visitor chose (cookie), else the first their browser prefers."""
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen == "he":
        return "he"
    if chosen == "en":
        return "en"
    accepted = request.headers.get("accept-language", "")
    first = accepted.split(",", 1)[0].split(";", 1)[0].strip().lower()
    return "he" if first.split("-", 1)[0] in {"he", "iw"} else "en"
