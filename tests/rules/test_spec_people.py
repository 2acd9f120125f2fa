"""People and notify destinations in the spec: parsing, ${ENV}, apprise checks, channel."""

from __future__ import annotations

import textwrap

import pytest

from rules.errors import SpecError
from rules.people import UnsetVariable, expand_url, url_problem
from rules.spec import parse_spec

SPEC = textwrap.dedent(
    """\
    teams:
      data-platform:
        commander: {name: Ada Lovelace, email: ada@example.com, chat: ada}
        scribe: Grace Hopper
        sme: [{name: Linus, chat: linus}, Ken]
        page_sev: SEV2
        notify:
          - url: "mmost://127.0.0.1:8065/${MM_TOKEN}"
            min_sev: SEV3
          - url: "mailto://127.0.0.1:2525?from=pm@example.com"
            events: [escalated, resolved]
            to: [commander]
    """
)


def test_people_and_destinations_parse() -> None:
    team = parse_spec(SPEC).team("data-platform")
    assert team is not None
    assert team.commander == "Ada Lovelace" and team.sme == ("Linus", "Ken")
    assert team.roles()["commander"] == "Ada Lovelace"
    ada = team.person("Ada Lovelace")
    assert ada is not None and ada.email == "ada@example.com" and ada.chat == "ada"
    assert team.person("Grace Hopper") is not None and team.person(None) is None
    chat, mail = team.notify
    assert chat.where == "teams.data-platform.notify[0]" and chat.kind == "mmost"
    assert chat.takes("opened", "SEV3") and not chat.takes("opened", "SEV4")
    assert mail.takes("escalated", "SEV5") and not mail.takes("opened", "SEV1")
    assert mail.to == ("commander",) and team.page_sev == "SEV2"


def test_channel_is_refused_with_a_migration_message() -> None:
    text = "teams:\n  t:\n    commander: A\n    channel: '#x'\n"
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "spec.yml")
    message = str(caught.value)
    assert "spec.yml:4: teams.t.channel: channel was replaced by notify:" in message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("nosuchplugin://host/x", "no apprise plugin takes nosuchplugin:// URLs"),
        ("just-text", "not an apprise URL"),
        ("mmost://", "plugin refuses this URL"),
    ],
)
def test_an_url_no_plugin_takes_is_refused_at_check(url: str, expected: str) -> None:
    text = f"teams:\n  t:\n    notify:\n      - url: {url!r}\n"
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "spec.yml")
    message = str(caught.value)
    assert "spec.yml:4: teams.t.notify[0].url: " in message and expected in message


def test_unknown_destination_fields_and_events_are_refused() -> None:
    text = "teams:\n  t:\n    notify:\n      - url: json://127.0.0.1:1/x\n        events: [paged]\n"
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "spec.yml")
    assert "teams.t.notify[0].events[0]" in str(caught.value)


def test_env_expansion_names_the_variable_never_a_value() -> None:
    assert expand_url("json://h/${A}?x=${B}", {"A": "s3cret", "B": "2"}) == "json://h/s3cret?x=2"
    with pytest.raises(UnsetVariable) as caught:
        expand_url("json://h/${MISSING_ONE}/${A}", {"A": "s3cret"})
    assert "MISSING_ONE" in str(caught.value) and "s3cret" not in str(caught.value)


def test_a_url_with_unset_variables_is_checked_by_scheme_and_fully_when_set() -> None:
    assert url_problem("mmost://127.0.0.1/${UNSET_FOR_TEST}", {}) is None
    refused = url_problem("mmost://${H}", {"H": ""})
    assert refused is None  # unset (empty) variable: only the scheme is checked
    assert url_problem("mmost://${H}", {"H": "127.0.0.1:8065/tok"}) is None
