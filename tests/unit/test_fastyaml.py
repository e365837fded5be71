"""fastyaml.load_all reads exactly what yaml.safe_load_all reads."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from fyke.api.fastyaml import load_all

TRICKY = [
    "010",
    "0x1F",
    "0b101",
    "1:20",
    "1_000",
    "1.5",
    ".5",
    "-3",
    "+4",
    "1e5",
    "1.0e+5",
    ".inf",
    "-.Inf",
    ".nan",
    "2026-11-26",
    "2026-11-26T05:00:00Z",
    "yes",
    "No",
    "on",
    "OFF",
    "~",
    "null",
    "true",
    "=",
    "<<",
    "10.0.0.1",
    "10.0.0.0/8",
    "80/TCP",
    "a:b",
    "- x",
    "serve-80-tcp",
    "",
    " ",
    "0",
    "00",
    "-0",
    "0.",
    "1:2:3",
    "12:30",
    "1.2.3",
]

scalars = st.one_of(
    st.sampled_from(TRICKY),
    st.integers(-(10**6), 10**6),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.one_of(st.sampled_from(TRICKY), st.text(max_size=5)), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(values, min_size=1, max_size=3))
def test_same_as_safe_load(docs: list[Any]) -> None:
    text = yaml.safe_dump_all(docs)
    assert list(load_all(text)) == list(yaml.safe_load_all(text))


def test_plain_tricky_scalars() -> None:
    text = "\n".join(
        f"k{i}: {v}"
        for i, v in enumerate(TRICKY)
        if v.strip() and not v.startswith(("- ", "<<", "="))
    )
    assert list(load_all(text)) == list(yaml.safe_load_all(text))


def test_anchors_and_merge_keys() -> None:
    text = "base: &b {a: 1}\nuse: *b\nmerged:\n  <<: *b\n  c: 2\n"
    assert list(load_all(text)) == list(yaml.safe_load_all(text))
