"""SessionSlots: a cap with a bounded first-come-first-served line in front of it."""

from __future__ import annotations

import asyncio

import pytest

from voice_common.server import SessionSlots


def test_without_a_line_overload_is_refused_at_once():
    async def run():
        slots = SessionSlots(1)
        assert await slots.acquire()
        assert not await slots.acquire()
        slots.release()
        assert await slots.acquire()

    asyncio.run(run())


def test_waiters_get_slots_in_arrival_order_and_newcomers_do_not_overtake():
    async def run():
        slots = SessionSlots(1, max_waiting=3, timeout=60)
        assert await slots.acquire()
        order: list[int] = []

        async def waiter(i: int) -> None:
            assert await slots.acquire()
            order.append(i)

        tasks = []
        for i in range(3):
            tasks.append(asyncio.ensure_future(waiter(i)))
            await asyncio.sleep(0)  # queue them in this order
        assert slots.waiting == 3
        assert not slots.try_acquire()  # a newcomer must not overtake the line
        assert not await slots.acquire()  # the line is full
        for _ in range(3):
            slots.release()
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        assert order == [0, 1, 2]
        assert slots.active == 1 and slots.waiting == 0

    asyncio.run(run())


def test_a_wait_that_runs_out_is_refused_and_holds_nothing():
    async def run():
        slots = SessionSlots(1, max_waiting=2, timeout=0.05)
        assert await slots.acquire()
        assert not await slots.acquire()  # nobody releases: the wait runs out
        assert slots.waiting == 0 and slots.active == 1
        slots.release()
        assert slots.active == 0

    asyncio.run(run())


def test_a_cancelled_waiter_passes_its_turn_on():
    async def run():
        slots = SessionSlots(1, max_waiting=2, timeout=60)
        assert await slots.acquire()
        first = asyncio.ensure_future(slots.acquire())
        await asyncio.sleep(0)
        second = asyncio.ensure_future(slots.acquire())
        await asyncio.sleep(0)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        slots.release()
        assert await second
        assert slots.active == 1 and slots.waiting == 0

    asyncio.run(run())
