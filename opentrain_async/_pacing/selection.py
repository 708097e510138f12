"""Which pacing backend a client paces with: the one it was given, else Redis for a
pacing URL (argument or ``$OT_PACING_URL``), else none (in memory)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from opentrain_async._errors import ConfigurationError

from .backend import PacingBackend
from .redis_backend import PACING_URL_ENV, backend_from_url, pacing_key

__all__ = ["client_backend"]


def client_backend(
    *,
    pacer_given: bool,
    backend: PacingBackend | None,
    pacing_url: str | None,
    fail_closed: bool | None,
    env: Mapping[str, str],
    api_root: str,
    token: str,
    on_fallback: Callable[[], None],
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[Any]],
) -> PacingBackend | None:
    """The backend ``OpenTrainClient`` paces with: ``backend`` if given, else one for
    ``pacing_url`` or ``$OT_PACING_URL`` ("" turns the variable off), else None (in
    memory).  The backend is told the key of this API root and token (a shared one
    names its state by it) and the client's fallback counter (``attach``)."""
    if pacing_url is not None and not isinstance(pacing_url, str):
        raise ConfigurationError(
            f"pacing_url must be a redis:// URL string, got {type(pacing_url).__name__}"
        )
    if pacer_given or backend is not None:
        if pacing_url or fail_closed is not None:  # both would be silently ignored
            raise ConfigurationError(
                "pass pacing_url/pacing_fail_closed, or pacer/pacing_backend, not both "
                "(a RedisPacingBackend takes options=RedisPacingOptions(fail_closed=...))"
            )
    else:
        url = pacing_url if pacing_url is not None else env.get(PACING_URL_ENV)
        if url and url.strip():
            backend = backend_from_url(url, fail_closed=fail_closed, clock=clock, sleep=sleep)
        elif fail_closed:  # "never pace alone", with nothing shared: it would pace alone
            raise ConfigurationError(
                f"pacing_fail_closed=True needs a shared pacing state: pass pacing_url= or "
                f"set ${PACING_URL_ENV} (neither is set)"
            )
    attach = getattr(backend, "attach", None)
    if attach is not None:  # a backend written before attach() existed still paces
        try:
            attach(pacing_key(api_root, token), on_fallback)
        except Exception as exc:  # its type only: the text may quote a URL or secret
            raise ConfigurationError(
                f"the pacing backend {type(backend).__name__} refused attach() "
                f"({type(exc).__name__}): it must take the client's key and fallback counter"
            ) from None
    return backend
