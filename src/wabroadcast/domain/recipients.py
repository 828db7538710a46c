"""Turning what a CRM posts into the list of people we will actually message.

Pure and CPU-bound: phone normalization and de-duplication run here, away from
I/O, so the API can run them off the event loop and tests can check them alone.
A ``RecipientPreparer`` takes the list in chunks, so the service can store one
chunk while the next is being normalized.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple, Protocol

from wabroadcast.domain.phones import InvalidPhone, normalize_phone
from wabroadcast.domain.templating import MessageTemplate, MissingTally, RenderFailed, Scalar

INPUT_ECHO_CHARS = 64
FIRST_VALID_KEPT = 100
# Opted-out numbers a proof lists (all are counted).
OPTED_OUT_KEPT = 20


class RecipientLike(Protocol):
    """A recipient with CRM context (the API's recipient object has this shape)."""

    @property
    def phone(self) -> str: ...
    @property
    def lead_id(self) -> int | None: ...
    @property
    def name(self) -> str | None: ...
    @property
    def variables(self) -> Mapping[str, Scalar] | None: ...


# NamedTuples, not frozen dataclasses: 100,000 of each are built per request
# and a frozen dataclass's __init__ costs several times a tuple's.


class RecipientInput(NamedTuple):
    phone: str
    lead_id: int | None = None
    name: str | None = None
    variables: Mapping[str, Scalar] | None = None


class ValidRecipient(NamedTuple):
    raw_input: str
    phone: str
    lead_id: int | None
    name: str | None
    # The recipient's own text when the message is personal (else None: the
    # broadcast's text is sent as it is).
    message: str | None = None


class RejectedRecipient(NamedTuple):
    input: str
    reason: str


# What no column can hold: PostgreSQL refuses NUL in text, and a lone surrogate
# (valid JSON as "\ud800") cannot be encoded as UTF-8 to store or echo back.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def is_storable_text(text: str) -> bool:
    """False for text containing a NUL or an unpaired surrogate."""
    return _UNSTORABLE.search(text) is None


def first_unstorable(items: Sequence[str | RecipientLike]) -> tuple[int, str | None] | None:
    """Where the first unstorable recipient is: its index and field (None for a bare phone).

    One scan of the joined strings when every item is a string (the usual bulk
    request), otherwise one regex search per string; cheap at 100,000 recipients.
    """
    search = _UNSTORABLE.search
    try:
        joined = "\n".join(items)  # type: ignore[arg-type]
    except TypeError:  # some recipient objects: search each string instead
        pass
    else:
        if search(joined) is None:
            return None
    for n, item in enumerate(items):
        if isinstance(item, str):
            if search(item):
                return n, None
            continue
        if search(item.phone):
            return n, "phone"
        if item.name is not None and search(item.name):
            return n, "name"
        if item.variables and any(
            search(key) or (isinstance(value, str) and search(value))
            for key, value in item.variables.items()
        ):
            return n, "variables"
    return None


def echo_input(raw: str) -> str:
    """The caller's input as we repeat it back: bounded, so a huge string cannot bloat replies."""
    return raw if len(raw) <= INPUT_ECHO_CHARS else raw[: INPUT_ECHO_CHARS - 1] + "…"


class PersonalMessageFailed(ValueError):
    """The message cannot be made for one recipient (an error in it, or too long)."""

    def __init__(self, phone: str, reason: str) -> None:
        super().__init__(f"for {phone}: {reason}")
        self.phone = phone
        self.reason = reason


class RecipientPreparer:
    """Normalizes phones to E.164 chunk by chunk, keeping the first occurrence of each number,
    and renders each one's own text when the message is personal.

    Numbers in ``opted_out`` (the tenant's opt-outs, E.164) are left out of what is
    returned and counted apart; they still count in ``sorted_phones`` and
    ``sorted_texts``, which identify what the client posted (its content twin), not
    who is messaged.
    """

    def __init__(
        self,
        region: str,
        template: MessageTemplate | None = None,
        max_chars: int = 4096,
        opted_out: frozenset[str] = frozenset(),
    ) -> None:
        self.region = region
        self.opted_out = opted_out
        self.opted_out_count = 0
        # The first OPTED_OUT_KEPT of them, in input order.
        self.first_opted_out: list[str] = []
        # Only a personal message is rendered per recipient.
        self.template = template if template is not None and template.is_personal else None
        self.max_chars = max_chars
        self.missing = MissingTally()
        # What identifies the personal texts (phone and text, sorted by phone at the end).
        self._texts: list[tuple[str, str]] = []
        self.invalid: list[RejectedRecipient] = []
        self.duplicates_removed = 0
        self.first_valid: list[ValidRecipient] = []
        self._seen: set[str] = set()

    @property
    def valid_count(self) -> int:
        """Valid, unique numbers that will be messaged (opted-out ones left out)."""
        return len(self._seen) - self.opted_out_count

    def sorted_phones(self) -> list[str]:
        """Every valid, unique E.164 number so far, sorted (what identifies the audience)."""
        return sorted(self._seen)

    def sorted_texts(self) -> list[tuple[str, str]]:
        """(phone, its text) of every valid recipient of a personal message, by phone."""
        return sorted(self._texts)

    def reason_counts(self) -> dict[str, int]:
        return dict(Counter(r.reason for r in self.invalid))

    def add(self, items: Iterable[str | RecipientLike]) -> list[ValidRecipient]:
        """The new valid, unique recipients among ``items``, in input order.

        This loop runs once per recipient of a 100,000-recipient request, so it
        binds what it uses to locals and only truncates inputs that need it.
        """
        valid: list[ValidRecipient] = []
        invalid = self.invalid
        seen = self._seen
        region = self.region
        normalize = normalize_phone
        duplicates = 0
        personal = self.template is not None
        # Each valid recipient's variables, for a personal message.
        variables: list[Mapping[str, Scalar] | None] = []
        for item in items:
            if isinstance(item, str):
                raw, lead_id, name = item, None, None
            else:
                raw, lead_id, name = item.phone, item.lead_id, item.name
            echoed = raw if len(raw) <= INPUT_ECHO_CHARS else echo_input(raw)
            result = normalize(raw, region)
            if isinstance(result, InvalidPhone):
                invalid.append(RejectedRecipient(echoed, result.reason.value))
                continue
            e164 = result.e164
            if e164 in seen:
                duplicates += 1
                continue
            seen.add(e164)
            valid.append(ValidRecipient(echoed, e164, lead_id, name))
            if personal:
                variables.append(None if isinstance(item, str) else item.variables)
        if personal:
            valid = self._render(valid, variables)
        if self.opted_out:
            valid = self.leave_out_opted_out(valid)
        self.duplicates_removed += duplicates
        room = FIRST_VALID_KEPT - len(self.first_valid)
        if room > 0:
            self.first_valid.extend(valid[:room])
        return valid

    def apply_opt_outs(
        self, valid: list[ValidRecipient], opted_out: frozenset[str]
    ) -> list[ValidRecipient]:
        """For a whole list prepared (one ``add``) before the opt-outs were known:
        ``valid`` without the numbers in ``opted_out``, which are counted instead."""
        if not opted_out:
            return valid
        self.opted_out = opted_out
        kept = self.leave_out_opted_out(valid)
        self.first_valid = kept[:FIRST_VALID_KEPT]
        return kept

    def leave_out_opted_out(self, valid: list[ValidRecipient]) -> list[ValidRecipient]:
        """``valid`` without the numbers in ``opted_out``, which are counted instead."""
        opted_out = self.opted_out
        kept = [r for r in valid if r.phone not in opted_out]
        if len(kept) == len(valid):
            return valid
        left_out = [r.phone for r in valid if r.phone in opted_out]
        self.opted_out_count += len(left_out)
        room = OPTED_OUT_KEPT - len(self.first_opted_out)
        if room > 0:
            self.first_opted_out.extend(left_out[:room])
        return kept

    def _render(
        self, valid: list[ValidRecipient], variables: list[Mapping[str, Scalar] | None]
    ) -> list[ValidRecipient]:
        """The recipients with their own texts; what each lacked is tallied."""
        template = self.template
        assert template is not None
        render, tally, texts, max_chars = (
            template.render,
            self.missing.add,
            self._texts,
            self.max_chars,
        )
        rendered: list[ValidRecipient] = []
        for recipient, own in zip(valid, variables, strict=True):
            try:
                text, missing = render(recipient.name, recipient.lead_id, own)
            except RenderFailed as exc:
                raise PersonalMessageFailed(recipient.phone, str(exc)) from exc
            if not text.strip():
                raise PersonalMessageFailed(recipient.phone, "its text would be empty")
            if len(text) > max_chars:
                raise PersonalMessageFailed(
                    recipient.phone,
                    f"its text would be {len(text)} characters; at most {max_chars}",
                )
            if missing:
                tally(recipient.phone, missing)
            texts.append((recipient.phone, text))
            rendered.append(recipient._replace(message=text))
        return rendered


def prepare_recipients(
    items: Iterable[str | RecipientLike],
    region: str,
    template: MessageTemplate | None = None,
    max_chars: int = 4096,
    opted_out: frozenset[str] = frozenset(),
) -> tuple[RecipientPreparer, list[ValidRecipient]]:
    """The whole list at once: the preparer (counts, invalid) and every valid recipient."""
    preparer = RecipientPreparer(region, template, max_chars, opted_out)
    return preparer, preparer.add(items)
