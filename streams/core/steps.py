"""Driving step generators: long computations that yield between slices of work.

A scrape or a flush over many accounts would hold the event loop for a long time; written as a
generator that yields every few items, the same code runs straight through (``run``) in tests
and tools, or gives the loop back between slices (``run_async``) in the worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import TypeVar

T = TypeVar("T")


def run(steps: Generator[None, None, T]) -> T:
    """Run to completion without pausing."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


async def run_async(steps: Generator[None, None, T]) -> T:
    """Run to completion, letting other tasks in at every yield."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value
        await asyncio.sleep(0)
