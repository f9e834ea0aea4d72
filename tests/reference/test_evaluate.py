"""The answer checker used by the reference evaluation."""

from __future__ import annotations

from cuirass.lab.reference.evaluate import final_answer_correct


def test_final_answer_correct() -> None:
    assert final_answer_correct("2 + 3 = 5.\nThe answer is 5.", 5)
    assert final_answer_correct("so 1,200 in all.\nThe answer is 1,200.", 1200)
    assert final_answer_correct("#### 42", "42")
    assert not final_answer_correct("2 + 3 = 5.\nThe answer is 6.", 5)
    assert not final_answer_correct("no number here", 5)
    assert final_answer_correct("we get 7", 7)  # the last-number fallback checkers use
