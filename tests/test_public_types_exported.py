"""Every type a public method takes or returns is exported from the package."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Iterator

from opentrain_async import (
    BulkReport,
    BulkSend,
    OpenTrainClient,
    RawResponseClient,
    SendOutcome,
)


def _classes_in(annotation: object) -> Iterator[type]:
    for arg in typing.get_args(annotation):
        yield from _classes_in(arg)
    origin = typing.get_origin(annotation) or annotation
    if isinstance(origin, type) and origin.__module__.startswith("opentrain_async"):
        yield origin


def test_every_type_a_public_method_takes_or_returns_is_exported() -> None:
    """mypy --strict users annotate what they hold (``walk: AsyncPaginator[MessagePage,
    Message] = client.iter_messages(cid)``, a helper returning one): every SDK type in a
    public signature imports from ``opentrain_async`` (``AsyncPaginator`` did not)."""
    import opentrain_async

    for owner in (OpenTrainClient, RawResponseClient, BulkSend, BulkReport, SendOutcome):
        for name, member in inspect.getmembers(owner):
            target = member.fget if isinstance(member, property) else member
            if name.startswith("_") or not callable(target):
                continue
            for annotation in typing.get_type_hints(target).values():
                for cls in _classes_in(annotation):
                    assert cls.__name__ in opentrain_async.__all__, f"{owner.__name__}.{name}"
                    assert getattr(opentrain_async, cls.__name__) is cls
