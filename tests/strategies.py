"""Hypothesis strategies the fuzz tests share."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

#: Any JSON value orjson writes and reads back as it was: no NaN or infinity, integers within 64 bits.
JSON: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(1 << 63), (1 << 63) - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
