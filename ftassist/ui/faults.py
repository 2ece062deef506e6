"""Disk faults told with their cause: a full or read-only disk is an answer to the person, not "Error".

Why: any handler may write (the session, an upload's copy, a run folder, the database). When the disk
is full or read-only the write raises OSError (or a DuckDB error naming it), Gradio shows a bare "Error"
and, without `show_error`, says nothing more. Every handler of the page is wrapped here: such a fault
is logged with its cause and the handler's name, and the person sees the cause, the place and what
to do. Other exceptions pass through unchanged (each tab words its own). What counts as a disk fault,
and its words, are `ftassist.disk_faults`'s, so the store and the job manager say the same.
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any, Callable

import gradio as gr

from ftassist import disk_faults

log = logging.getLogger("ftassist.faults")


def explain(exc: BaseException, where: str) -> gr.Error | None:
    """A gr.Error with the cause, the place and what to do (the fault logged, without a traceback),
    or None when `exc` is no disk fault."""
    fault = disk_faults.find(exc)
    if fault is None:
        return None
    log.error("%s failed: %s", where, fault)
    return gr.Error(f"Not saved: {fault}. {fault.hint}", title="The disk refused a write", print_exception=False)


def with_disk_faults_explained(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` (sync, async, generator or async generator) with disk faults turned into `explain`'s error."""
    where = getattr(fn, "__qualname__", getattr(fn, "__name__", "a handler"))
    if getattr(fn, "_ftassist_faults", False):
        return fn
    if inspect.isasyncgenfunction(fn):
        @functools.wraps(fn)
        async def wrapped(*args, **kwargs):
            try:
                async for item in fn(*args, **kwargs):
                    yield item
            except Exception as exc:
                error = explain(exc, where)
                if error is None:
                    raise
                raise error from None
    elif inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def wrapped(*args, **kwargs):
            try:
                return await fn(*args, **kwargs)
            except Exception as exc:
                error = explain(exc, where)
                if error is None:
                    raise
                raise error from None
    elif inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:
                error = explain(exc, where)
                if error is None:
                    raise
                raise error from None
    else:
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                error = explain(exc, where)
                if error is None:
                    raise
                raise error from None
    wrapped._ftassist_faults = True  # type: ignore[attr-defined]
    return wrapped
