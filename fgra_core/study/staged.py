"""Work that waits for other work: trunk runs first, and the head units of each trunk as soon as
that trunk is done, on one pool of ``jobs`` threads.

A plan with a trunk per seed trains its trunks ``jobs`` at a time; when their number is not a
multiple of ``jobs`` the last round leaves slots idle while every head waits for every trunk.
:func:`map_staged` instead releases the followers of a first item (the head units that load that
trunk) when it completes, behind whatever is already queued, so a free slot takes the next trunk
if there is one, else a head unit of a finished trunk. Items complete in the order they finish;
each is yielded with ``fn(item)``, as :class:`~fgra_core.study.executors.LocalExecutor` does.
"""
from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any, Callable, Hashable, Iterator, Sequence


def map_staged(fn: Callable[[Any], Any], first: Sequence[Any], followers: dict[Hashable, list[Any]], *,
               key: Callable[[Any], Hashable], jobs: int,
               on_first: Callable[[Any, Any], None] | None = None) -> Iterator[tuple[Any, Any]]:
    """``(item, fn(item))`` for every item of ``first`` and of ``followers``, ``jobs`` at a time.

    ``followers[key(f)]`` are submitted once the first item ``f`` has completed and ``on_first(f,
    fn(f))`` has returned; follower lists whose key is no first item's are ready at once (queued
    after the first items). ``jobs <= 1``: one after the other, in the same order."""
    first = list(first)
    keys = {key(f) for f in first}
    ready = [u for k, units in followers.items() if k not in keys for u in units]
    if jobs <= 1:
        for f in first:
            result = fn(f)
            if on_first is not None:
                on_first(f, result)
            yield f, result
            ready.extend(followers.get(key(f), []))
        for u in ready:
            yield u, fn(u)
        return
    with ThreadPoolExecutor(jobs) as pool:
        running = {pool.submit(fn, f): (f, True) for f in first}
        running.update({pool.submit(fn, u): (u, False) for u in ready})
        try:
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    item, is_first = running.pop(fut)
                    result = fut.result()
                    if is_first:
                        if on_first is not None:
                            on_first(item, result)
                        running.update({pool.submit(fn, u): (u, False) for u in followers.get(key(item), [])})
                    yield item, result
        except BaseException:
            for fut in running:
                fut.cancel()
            raise
