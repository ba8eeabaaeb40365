"""The grammar: any text is either a valid command or a one-line CommandError."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot import registry
from bot.errors import CommandError

registry.load(["tests.bot.drill"])


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=700))
def test_any_text_is_a_command_or_a_one_line_error(text: str) -> None:
    try:
        spec, parsed = registry.parse(text)
    except CommandError as exc:
        assert str(exc) and "\n" not in str(exc) and "Traceback" not in str(exc)
    else:
        assert spec.name == parsed.command


words = st.sampled_from(["/dr", "reconcile", "exercise", "job", "--dry-run", "--with-source", "x",
                         "flux-system", "apps/web", "--confirm", '"a b"', "--", "deadbeef", "-x"])


@settings(max_examples=300, deadline=None)
@given(st.lists(words, max_size=6))
def test_near_miss_word_salad_never_raises_anything_else(parts: list[str]) -> None:
    with contextlib.suppress(CommandError):
        registry.parse(" ".join(parts))


def test_parses_positional_flags_and_defaults() -> None:
    spec, parsed = registry.parse("/dr reconcile apps/web --with-source")
    assert spec.name == "reconcile"
    assert parsed.args == {"kustomization": "apps/web", "with-source": True, "object": None}
    _, parsed = registry.parse("/dr reconcile")
    assert parsed.args == {"kustomization": "flux-system", "with-source": False, "object": None}
    _, parsed = registry.parse("/dr reconcile apps --object statefulset/apps/gitea")
    assert parsed.args["object"] == "statefulset/apps/gitea"
    _, parsed = registry.parse("/dr reconcile --dry-run")
    assert parsed.dry_run


def test_confirm_phrase_is_quoted_text() -> None:
    _, parsed = registry.parse('/dr exercise x --confirm "rebuild the whole cluster"')
    assert parsed.confirm == "rebuild the whole cluster"


@pytest.mark.parametrize(("text", "expected"), [
    ("/dr reconcle x", "did you mean reconcile?"),
    ("/dr reconcile a b", "too many arguments"),
    ("/dr job", "missing <id>"),
    ("/dr job 12", "not a valid job id"),
    ("/dr reconcile --force", "has no option --force"),
    ("/dr reconcile --with-source=yes", "takes no value"),
    ("/dr reconcile 'unclosed", "unbalanced quotes"),
    ("/dr reconcile Flux_System", "not a valid namespace/name"),
    ("/dr jobs --dry-run", "--dry-run does not apply"),
    ("/dr reconcile \u2014dry-run", "type '--' instead"),
    ("/dr rebu\u0456ld-node x", "U+0456"),
    ("/dr reconcile \x1b[31m", "control character"),
    ("/dr " + "a" * 600, "the limit is 500"),
])
def test_bad_input_says_what_to_type(text: str, expected: str) -> None:
    with pytest.raises(CommandError) as err:
        registry.parse(text)
    assert expected in str(err.value)
