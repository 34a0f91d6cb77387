"""The JSON text rule's shortcut: a body that cannot hold refused text is walked for
its depth alone, and answers exactly as the full walk does."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from utilities.inputs import MAX_JSON_DEPTH, data_problem

texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=8) | st.sampled_from(
    ["a\x00b", "tab\there", "\x85", "\x7f", "plain", "línea", "\u2028"]
)
documents = st.recursive(
    st.none() | st.booleans() | st.integers() | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=30,
)


@settings(max_examples=500, derandomize=True, database=None)
@given(document=documents, ascii_only=st.booleans())
def test_the_shortcut_answers_as_the_full_walk(document, ascii_only):
    source = json.dumps(document, ensure_ascii=ascii_only)
    parsed = json.loads(source)
    assert data_problem(parsed, source=source) == data_problem(parsed)


def test_depth_is_still_refused_without_any_text_to_check():
    deep = [[]]
    for _ in range(MAX_JSON_DEPTH + 1):
        deep = [deep]
    source = json.dumps(deep)
    assert "\\" not in source
    field, message = data_problem(json.loads(source), source=source)
    assert "Nested more than" in message and field.startswith("[0]")
    assert data_problem(json.loads(source), source=source) == data_problem(json.loads(source))
