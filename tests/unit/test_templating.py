"""Personal message templates: fields filled in, what is lacking recorded, nothing unsafe."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wabroadcast.domain.recipients import (
    PersonalMessageFailed,
    RecipientInput,
    prepare_recipients,
)
from wabroadcast.domain.templating import (
    InvalidTemplate,
    MessageTemplate,
    MissingTally,
    RenderFailed,
)


def test_fields_defaults_and_conditions() -> None:
    template = MessageTemplate(
        'Hi {{ name|default("friend") }}{% if vip %} (VIP){% endif %}, '
        "order {{ variables.order }} to {{ city|upper }}, lead {{ lead_id }}"
    )
    assert template.is_personal
    full = template.render("Dana", 7, {"order": "A-1", "city": "Haifa", "vip": True})
    assert full == ("Hi Dana (VIP), order A-1 to HAIFA, lead 7", ())
    # Lacking a name has a default; a condition on a lacking field is no gap.
    lacking = template.render(None, None, {"order": "A-2"})
    assert lacking.text == "Hi friend, order A-2 to , lead "
    assert lacking.missing == ("city", "lead_id")


def test_a_variable_cannot_hide_the_recipients_own_fields() -> None:
    template = MessageTemplate("{{ name }} {{ lead_id }} {{ variables.name }}")
    assert template.render("Dana", 3, {"name": "Other", "lead_id": 9}).text == "Dana 3 Other"


@pytest.mark.parametrize(
    "text", ["Plain text", "50% off {today} }}", "a { b } c", "{ {name} }", "}}{{'"[:-1]]
)
def test_text_without_fields_is_plain(text: str) -> None:
    try:
        template = MessageTemplate(text)
    except InvalidTemplate:
        assert "{{" in text
        return
    assert not template.is_personal
    assert template.render("Dana") == (text, ())


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("{{ name ", "end of print statement"),
        ("{# no end", "comment"),
        ("{% for c in name %}x{% endfor %}", "{% if %}"),
        ("{% set x = 1 %}", "{% if %}"),
        ("{% macro m() %}{% endmacro %}", "{% if %}"),
        ("{{ name.ljust(10 ** 8) }}", "called"),
        ("{{ range(10) }}", "called"),
        ("{{ name|center(100000000) }}", "|center"),
        ("{{ name|tojson }}", "|tojson"),
        ("{{ name * 100000000 }}", "multiplied"),
        ("{{ 10 ** 10 }}", "multiplied"),
    ],
)
def test_what_is_no_safe_message_is_refused_when_compiled(source: str, says: str) -> None:
    with pytest.raises(InvalidTemplate) as refused:
        MessageTemplate(source)
    assert says in refused.value.reason
    assert refused.value.line == 1


def test_the_sandbox_keeps_python_internals_out_of_reach() -> None:
    rendered = MessageTemplate("{{ name.__class__ }}{{ variables.__init__ }}").render("x", None, {})
    assert rendered.text == ""


def test_a_runtime_type_error_is_a_render_failure() -> None:
    with pytest.raises(RenderFailed):
        MessageTemplate("{{ name + 1 }}").render("Dana")


def test_the_tally_keeps_five_phones_per_field_most_missed_first() -> None:
    tally = MissingTally()
    for n in range(8):
        tally.add(f"+97250000000{n}", ("city",))
    tally.add("+972500000009", ("name", "city"))
    report = tally.report()
    assert [(m["variable"], m["count"]) for m in report] == [("city", 9), ("name", 1)]
    assert report[0]["phones"] == [f"+97250000000{n}" for n in range(5)]


def test_the_preparer_renders_each_valid_recipient_once() -> None:
    preparer, valid = prepare_recipients(
        [
            RecipientInput("0502345678", 1, "Dana"),
            RecipientInput("+972502345678", 2, "Twin"),  # a duplicate: not rendered
            RecipientInput("bad", None, "Nobody"),
            "0523456789",
        ],
        "IL",
        MessageTemplate("Hi {{ name }}"),
    )
    assert [(r.phone, r.message) for r in valid] == [
        ("+972502345678", "Hi Dana"),
        ("+972523456789", "Hi "),
    ]
    assert preparer.missing.report() == [
        {"variable": "name", "count": 1, "phones": ["+972523456789"]}
    ]
    assert preparer.sorted_texts() == [("+972502345678", "Hi Dana"), ("+972523456789", "Hi ")]


def test_a_plain_message_is_not_rendered_per_recipient() -> None:
    _, valid = prepare_recipients(["0502345678"], "IL", MessageTemplate("Hello"))
    assert valid[0].message is None


def test_a_text_longer_than_whatsapp_takes_is_refused_naming_the_recipient() -> None:
    with pytest.raises(PersonalMessageFailed) as refused:
        prepare_recipients(
            [RecipientInput("0502345678", None, None, {"bio": "x" * 1000})],
            "IL",
            MessageTemplate("{{ bio }}{{ bio }}{{ bio }}{{ bio }}{{ bio }}"),
            max_chars=4096,
        )
    assert refused.value.phone == "+972502345678"
    assert "5000 characters" in refused.value.reason


values = st.one_of(st.text(max_size=50), st.integers(), st.booleans(), st.floats(allow_nan=False))


@given(
    name=st.one_of(st.none(), st.text(min_size=1, max_size=30)),
    variables=st.dictionaries(st.text(min_size=1, max_size=10), values, max_size=5),
)
def test_rendering_any_recipient_data_never_fails_and_fills_the_fields(
    name: str | None, variables: dict[str, str | int | float | bool]
) -> None:
    template = MessageTemplate('[{{ name|default("-") }}] {{ variables.k }} {{ k }}')
    rendered = template.render(name, None, variables)
    assert rendered.text.startswith(f"[{name or '-'}] ")
    if "k" in variables:
        assert rendered.missing == ()
        assert rendered.text.endswith(f" {variables['k']} {variables['k']}")
    else:
        assert rendered.missing == ("k",)


@pytest.mark.parametrize(
    "source",
    [
        "{{" + "(" * 2000 + "name" + ")" * 2000 + "}}",
        "{{ name" + "|upper" * 1000 + " }}",
        "{% if " + "not " * 1300 + "vip %}x{% endif %}",
    ],
)
def test_a_message_nested_thousands_deep_is_refused_not_crashed(source: str) -> None:
    with pytest.raises(InvalidTemplate, match="nests too deeply"):
        MessageTemplate(source)
