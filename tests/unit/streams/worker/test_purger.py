"""streams.worker.purger: what is due for deletion, and what a revocation forgets (the deletion
itself runs against the broker in tests/integration/test_record_keys.py)."""

from __future__ import annotations

from streams.worker.purger import RepartitionPurger


def test_only_partitions_whose_commit_moved_are_due() -> None:
    purger = RepartitionPurger("rekey", dict)
    assert purger.due({0: 0, 1: 5}) == {1: 5}  # nothing below offset 0 to delete
    purger.purged.update({1: 5})
    assert purger.due({0: 3, 1: 5}) == {0: 3}
    purger.forget({1})
    assert purger.due({1: 5}) == {1: 5}  # owned again: its next deletion is not skipped
