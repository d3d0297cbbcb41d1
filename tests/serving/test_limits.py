"""The server's limits check themselves when made, naming the field."""

import pytest

from zoo.serving.requests import Limits


@pytest.mark.parametrize("field, value", [
    ("max_batch_size", 0), ("max_queue", -1), ("max_texts", 1.5), ("max_chars", True),
    ("max_body_bytes", 0), ("batch_timeout", -0.1), ("batch_timeout", float("nan")),
    ("request_timeout", 0), ("request_timeout", float("inf")),
])
def test_a_limit_out_of_range_is_refused_by_name(field, value):
    with pytest.raises(ValueError, match=f"Limits.{field}"):
        Limits(**{field: value})


def test_the_defaults_and_edges_are_accepted():
    assert Limits().max_texts == 64
    assert Limits(batch_timeout=0, max_batch_size=1).batch_timeout == 0
