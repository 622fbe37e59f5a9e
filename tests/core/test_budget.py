"""core.budget: the deadline of a long run."""

import pytest

from georobust.core import budget


def test_expired_follows_the_deadline():
    with budget.budget(None):
        assert not budget.expired()
        budget.check("nothing")  # no deadline: never raises
    with budget.budget(60):
        assert not budget.expired()
    with budget.budget(0):
        assert budget.expired()
        with pytest.raises(budget.BudgetExhausted, match="after 3 images"):
            budget.check("3 images")
