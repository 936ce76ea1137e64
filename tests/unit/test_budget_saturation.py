"""Who is at their share of a budget, as the native front is told (``Budget.saturated`` and
``on_change``): every crossing of a share is reported, both ways, and nothing else is."""

from __future__ import annotations

import asyncio

from privastead.relay.accounts import Principal
from privastead.relay.budgets import Budget


def _principal(account: str, token: str) -> Principal:
    return Principal(account=account, kind="device", token_id=token, device_id="d")


def test_each_share_crossing_is_reported_both_ways() -> None:
    async def main() -> None:
        budget = Budget("uploads", per_account=2, total=3, per_token=1)
        changes: list[tuple[list[str], list[str], bool]] = []
        budget.on_change = lambda: changes.append(budget.saturated())
        a1, a2, b1 = _principal("a", "t1"), _principal("a", "t2"), _principal("b", "t3")

        first = await budget.acquire(a1)  # token t1 at its share of 1
        assert changes == [([], ["t1"], False)]
        second = await budget.acquire(a2)  # account a at 2, token t2 at 1
        assert changes[-1] == (["a"], ["t1", "t2"], False)
        third = await budget.acquire(b1)  # the total at 3
        assert changes[-1] == (["a"], ["t1", "t2", "t3"], True)
        count = len(changes)
        first.release()
        first.release()  # twice: counted once
        assert len(changes) == count + 1
        assert changes[-1] == ([], ["t2", "t3"], False)
        second.release()
        third.release()
        assert budget.saturated() == ([], [], False)

    asyncio.run(main())


def test_moves_below_a_share_report_nothing() -> None:
    async def main() -> None:
        budget = Budget("uploads", per_account=3, total=100)
        changes: list[object] = []
        budget.on_change = lambda: changes.append(budget.saturated())
        slot = await budget.acquire(_principal("a", "t"))
        slot.release()
        assert changes == []

    asyncio.run(main())
