"""The WhatsApp-session form: its fields come from the provider's config model.

(These are a tenant's WhatsApp numbers; ``web.sessions`` is the sign-in session.)

A provider's ``config_model`` is the form's only description: a field's label is
its name made readable, its help text its description, its default the value
filled in. Secret fields are password inputs that are never filled in: nothing
read from one is kept to show the form again, and no message repeats it.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from starlette.datastructures import FormData

from wabroadcast.domain.errors import (
    AppError,
    SessionExists,
    SessionInUse,
    ValidationFailed,
    WebhookKeyInUse,
)
from wabroadcast.providers.plugin import ProviderPlugin
from wabroadcast.sessions.config import validate_config
from wabroadcast.sessions.schemas import SessionCreate, SessionOut, SessionUpdate
from wabroadcast.texts import Translator
from wabroadcast.web.rendering import plain_number

CONFIG_PREFIX = "config."
SESSION_ID = "session_id"
DEFAULT = "default"
MAX_CONCURRENCY = "max_concurrency"
RATE_PER_MINUTE = "rate_per_minute"
JITTER_MS = "jitter_ms"
# The limits form (``/sessions/{id}/limits``): whole numbers, then decimals, then a choice.
LIMIT_WHOLE = ("daily_cap", "warmup_days", "warmup_start_cap")
LIMIT_DECIMAL = ("warmup_growth", "pause_error_rate")
CHECK_NUMBERS = "check_numbers"
LIMIT_INPUTS = (*LIMIT_WHOLE, *LIMIT_DECIMAL, CHECK_NUMBERS)
CHECKED = "on"
ModelT = TypeVar("ModelT", bound=BaseModel)
# Words a readable label spells the way people write them.
_SPELLED = {"id": "ID", "api": "API", "url": "URL", "http": "HTTP", "ms": "ms", "sms": "SMS"}


def readable(name: str) -> str:
    """``phone_number_id`` → ``Phone number ID``."""
    words = [_SPELLED.get(word.lower(), word.lower()) for word in name.split("_") if word]
    if not words:
        return name
    first = words[0]
    words[0] = first if first in _SPELLED.values() else first[:1].upper() + first[1:]
    return " ".join(words)


def _plain_type(annotation: Any) -> Any:
    """``int | None`` → ``int``; anything else as it is."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        given = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(given) == 1:
            return given[0]
    return annotation


@dataclass(frozen=True, slots=True)
class ConfigField:
    """One input of the provider's settings."""

    name: str
    label: str
    help: str | None
    secret: bool
    required: bool
    kind: Literal["text", "checkbox"]
    inputmode: str | None
    # What a new session's form shows filled in (never for a secret).
    default: str | None
    # The value the model takes when the input is left empty (editing resets to it).
    default_value: Any

    @property
    def input_name(self) -> str:
        return CONFIG_PREFIX + self.name

    @property
    def input_id(self) -> str:
        return "config-" + self.name


def _config_field(plugin: ProviderPlugin, name: str, info: FieldInfo) -> ConfigField:
    secret = name in plugin.secret_fields
    required = info.is_required()
    default_value = None if required else info.get_default(call_default_factory=True)
    kind_of = _plain_type(info.annotation)
    checkbox = kind_of is bool
    if checkbox:
        shown = CHECKED if default_value is True else ""
    elif secret or default_value is None:
        shown = None
    else:
        shown = str(default_value)
    return ConfigField(
        name=name,
        label=info.title or readable(name),
        help=info.description,
        secret=secret,
        required=required,
        kind="checkbox" if checkbox else "text",
        inputmode="numeric" if kind_of is int else "decimal" if kind_of is float else None,
        default=shown,
        default_value=default_value,
    )


def config_fields(plugin: ProviderPlugin) -> list[ConfigField]:
    """The provider's settings in its ``form_fields`` order (all of them when it names none)."""
    model_fields = plugin.config_model.model_fields
    names = [name for name in plugin.form_fields if name in model_fields] or list(model_fields)
    return [_config_field(plugin, name, model_fields[name]) for name in names]


def initial_values(plugin: ProviderPlugin) -> dict[str, str]:
    """A new session's form: the provider's defaults, secrets left empty."""
    return {f.input_name: f.default for f in config_fields(plugin) if f.default}


def stored_values(plugin: ProviderPlugin, session: SessionOut) -> dict[str, str]:
    """An existing session's form: its settings as stored, its secrets left empty."""
    values: dict[str, str] = {MAX_CONCURRENCY: str(session.max_concurrency)}
    if not session.pace_is_default:
        values[RATE_PER_MINUTE] = plain_number(session.rate_per_minute)
        values[JITTER_MS] = str(session.jitter_ms)
    for f in config_fields(plugin):
        value = session.config.get(f.name)
        if f.secret or value is None:
            continue
        if f.kind == "checkbox":
            values[f.input_name] = CHECKED if value is True else ""
        else:
            values[f.input_name] = str(value)
    return values


def stored_secrets(plugin: ProviderPlugin, session: SessionOut) -> dict[str, str]:
    """The masked form (``…1234``) of each secret the session has stored."""
    return {
        name: str(session.config[name])
        for name in plugin.secret_fields
        if session.config.get(name) is not None
    }


# --- reading it back ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """What is wrong with one input: a validator's words, or a text of ours to translate."""

    input_name: str
    message: str = ""
    text_key: str | None = None


class SessionFormProblem(AppError):
    """Inputs a person must fix before the session can be saved."""

    error_code = "FORM_INVALID"
    http_status = 422

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("the session form has invalid fields")
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Submission:
    """The posted form: what goes to the service, and what may be shown again."""

    config: dict[str, Any]
    # Input name → text to put back in the form; never a secret's.
    kept: dict[str, str]
    session_id: str | None
    default: bool
    max_concurrency: int | None
    rate_per_minute: float | None
    jitter_ms: int | None
    problems: list[FieldProblem] = field(default_factory=list)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _number(
    form: FormData, name: str, *, whole: bool, problems: list[FieldProblem]
) -> int | float | None:
    text = _text(form, name)
    if not text:
        return None
    try:
        value: int | float = int(text) if whole else float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        key = "form.error.whole_number" if whole else "form.error.number"
        problems.append(FieldProblem(name, text_key=key))
        return None
    return value


def read_submission(plugin: ProviderPlugin, form: FormData, *, editing: bool) -> Submission:
    """The session form as posted.

    Creating, an empty input is left out (the provider's default applies). Editing,
    an empty secret is left out, so the stored one stays; an empty setting with a
    default goes back to that default.
    """
    problems: list[FieldProblem] = []
    config: dict[str, Any] = {}
    kept: dict[str, str] = {}
    for f in config_fields(plugin):
        if f.kind == "checkbox":
            checked = bool(_text(form, f.input_name))
            config[f.name] = checked
            kept[f.input_name] = CHECKED if checked else ""
            continue
        text = _text(form, f.input_name)
        if not f.secret:
            kept[f.input_name] = text
        if text:
            config[f.name] = text
        elif f.required and not (f.secret and editing):
            problems.append(FieldProblem(f.input_name, text_key="form.error.required"))
        elif editing and not f.secret:
            config[f.name] = f.default_value
    for name in (SESSION_ID, MAX_CONCURRENCY, RATE_PER_MINUTE, JITTER_MS):
        kept[name] = _text(form, name)
    default = bool(_text(form, DEFAULT))
    kept[DEFAULT] = CHECKED if default else ""
    concurrency = _number(form, MAX_CONCURRENCY, whole=True, problems=problems)
    rate = _number(form, RATE_PER_MINUTE, whole=False, problems=problems)
    jitter = _number(form, JITTER_MS, whole=True, problems=problems)
    return Submission(
        config=config,
        kept=kept,
        session_id=None if editing else (_text(form, SESSION_ID) or None),
        default=default,
        max_concurrency=None if concurrency is None else int(concurrency),
        rate_per_minute=None if rate is None else float(rate),
        jitter_ms=None if jitter is None else int(jitter),
        problems=problems,
    )


def _validated(
    model: type[ModelT], values: Mapping[str, Any], problems: list[FieldProblem]
) -> ModelT | None:
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        for error in exc.errors(include_input=False, include_url=False):
            loc = ".".join(str(part) for part in error.get("loc", ()))
            problems.append(FieldProblem(loc or "form", str(error.get("msg", "invalid"))))
        return None


def _config_problems(exc: ValidationFailed) -> list[FieldProblem]:
    errors = exc.details.get("errors") or []
    return [FieldProblem(str(e.get("field", "config")), str(e.get("message", ""))) for e in errors]


def _settings(submission: Submission) -> dict[str, Any]:
    return {
        MAX_CONCURRENCY: submission.max_concurrency,
        RATE_PER_MINUTE: submission.rate_per_minute,
        JITTER_MS: submission.jitter_ms,
    }


def create_body(plugin: ProviderPlugin, submission: Submission) -> SessionCreate:
    """The API's request body for a new session; every problem at once otherwise."""
    problems = list(submission.problems)
    body = _validated(
        SessionCreate,
        {
            SESSION_ID: submission.session_id,
            "provider": plugin.kind,
            "config": submission.config,
            DEFAULT: True if submission.default else None,
            **_settings(submission),
        },
        problems,
    )
    try:
        validate_config(plugin, submission.config)
    except ValidationFailed as exc:
        known = {p.input_name for p in problems}
        problems += [p for p in _config_problems(exc) if p.input_name not in known]
    if problems or body is None:
        raise SessionFormProblem(problems)
    return body


def update_body(plugin: ProviderPlugin, submission: Submission) -> SessionUpdate:
    """The API's request body for a change; secrets left empty are left out."""
    problems = list(submission.problems)
    body = _validated(
        SessionUpdate,
        {
            "config": submission.config if config_fields(plugin) else None,
            DEFAULT: True if submission.default else None,
            **_settings(submission),
        },
        problems,
    )
    if problems or body is None:
        raise SessionFormProblem(problems)
    return body


# --- the limits form ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LimitsSubmission:
    """The posted limits form: the settings given (empty inputs left out, so unchanged)
    and the texts to put back in the form."""

    settings: dict[str, Any]
    kept: dict[str, str]
    problems: list[FieldProblem] = field(default_factory=list)


def limits_values(session: SessionOut) -> dict[str, str]:
    """The limits form of a session: its settings as stored (empty: the preset)."""
    values = {
        name: plain_number(value) if isinstance(value, float) else str(value)
        for name in (*LIMIT_WHOLE, *LIMIT_DECIMAL)
        if (value := getattr(session, name)) is not None
    }
    if session.check_numbers is not None:
        values[CHECK_NUMBERS] = "on" if session.check_numbers else "off"
    return values


def read_limits(form: FormData) -> LimitsSubmission:
    """The limits form as posted; an empty input (or check numbers left as it is)
    leaves that setting unchanged."""
    problems: list[FieldProblem] = []
    settings: dict[str, Any] = {}
    kept = {name: _text(form, name) for name in LIMIT_INPUTS}
    for name in LIMIT_WHOLE:
        number = _number(form, name, whole=True, problems=problems)
        if number is not None:
            settings[name] = int(number)
    for name in LIMIT_DECIMAL:
        number = _number(form, name, whole=False, problems=problems)
        if number is not None:
            settings[name] = float(number)
    if kept[CHECK_NUMBERS] in ("on", "off"):
        settings[CHECK_NUMBERS] = kept[CHECK_NUMBERS] == "on"
    return LimitsSubmission(settings, kept, problems)


def limits_body(submission: LimitsSubmission) -> SessionUpdate:
    """The API's request body for the limits given; every problem at once otherwise."""
    problems = list(submission.problems)
    body = _validated(SessionUpdate, submission.settings, problems)
    if problems or body is None:
        raise SessionFormProblem(problems)
    return body


# --- telling the person ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionProblem:
    """A refusal as the form shows it: a sentence, and what is wrong with which input."""

    code: str
    text: str
    # Input name → the message shown under it.
    fields: dict[str, str] = field(default_factory=dict)
    # (input id or "", label, message), listed under the sentence.
    items: list[tuple[str, str, str]] = field(default_factory=list)


def _label(input_name: str, t: Translator, fields: list[ConfigField]) -> tuple[str, str]:
    """The input's id and its label, as the form shows them."""
    for f in fields:
        if f.input_name == input_name:
            return f.input_id, f.label
    if input_name in (SESSION_ID, MAX_CONCURRENCY, RATE_PER_MINUTE, JITTER_MS, DEFAULT):
        return input_name.replace("_", "-"), t("form." + input_name)
    if input_name in LIMIT_INPUTS:
        return input_name.replace("_", "-"), t("limits." + input_name)
    return "", input_name


def _field_problems(
    code: str,
    text: str,
    problems: list[FieldProblem],
    t: Translator,
    plugin: ProviderPlugin | None,
) -> SessionProblem:
    fields = config_fields(plugin) if plugin is not None else []
    shown: dict[str, str] = {}
    items: list[tuple[str, str, str]] = []
    for problem in problems:
        message = t(problem.text_key) if problem.text_key else problem.message
        input_id, label = _label(problem.input_name, t, fields)
        shown.setdefault(problem.input_name, message)
        items.append((input_id, label, message))
    return SessionProblem(code, text, shown, items)


def describe(exc: AppError, t: Translator, plugin: ProviderPlugin | None) -> SessionProblem:
    """The sentence (and the inputs to fix) that explains ``exc`` at the session form."""
    code = exc.error_code
    if isinstance(exc, SessionFormProblem):
        return _field_problems(code, t("sessions.error.fields"), exc.problems, t, plugin)
    if isinstance(exc, ValidationFailed) and exc.details.get("errors"):
        return _field_problems(code, t("sessions.error.fields"), _config_problems(exc), t, plugin)
    if isinstance(exc, SessionExists):
        session_id = str(exc.details.get("session_id", ""))
        return SessionProblem(
            code,
            t("sessions.error.exists", id=session_id),
            fields={SESSION_ID: t("sessions.error.exists_short")},
        )
    if isinstance(exc, WebhookKeyInUse):
        title = plugin.title if plugin is not None else str(exc.details.get("provider", ""))
        return SessionProblem(code, t("sessions.error.webhook_key", provider=title))
    if isinstance(exc, SessionInUse):
        return SessionProblem(
            code, t.plural("sessions.error.in_use", int(exc.details.get("active_broadcasts", 0)))
        )
    return SessionProblem(code, t("sessions.error.other", message=exc.message))
