"""URLs that may carry a secret: one split, one redaction, one Redis URL parser.

A password in a URL is often not percent-encoded, so it may hold ``/ ? # @ %`` or
spaces, and ``urllib.parse.urlsplit`` then cuts the authority at the first ``/`` and
shows the rest of the password as the path (or raises with a piece of it as the
"port").  So everything here works on the raw text *before* any parsing: the userinfo
is all between ``scheme://`` and the **last** ``@`` in the URL.  An ``@`` meant for the
path or query must be written ``%40``; written bare, it hides more of the URL than
needed in messages, and is never taken as part of the host.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote

import attrs

__all__ = [
    "SECRET_NAME",
    "RedisURL",
    "RedisURLError",
    "has_userinfo",
    "parse_redis_url",
    "redact_url",
    "shown_userinfo",
    "split_userinfo",
]

_PLAIN_USER = re.compile(r"[A-Za-z0-9._~-]{1,64}")
SECRET_NAME = re.compile(
    r"tok|pass|pwd|secret|auth|cred|key|bearer|jwt|header|\bpat\b|^-[tpH]$", re.IGNORECASE
)
"""A name whose value may be a secret (a URL's query parameter, the CLI's flags),
shortened as people type them (``tok``, ``pass``, ``pwd``, ``-t``, ``-p``) or named as
elsewhere (``api-key``, ``bearer``, ``jwt``, ``pat``, curl's ``-H``/``--header``):
masking a harmless value costs nothing, quoting a secret a rotation."""


def split_userinfo(url: str) -> tuple[str, str | None, str]:
    """``(head, userinfo, tail)``: ``head`` is ``scheme://`` (or ``""``), ``userinfo``
    everything up to the last ``@`` (None without one), ``tail`` the rest, from host on.

    Without ``://`` the whole text up to the last ``@`` is the userinfo, so a URL
    missing its slashes is still never shown with its password.
    """
    head = ""
    rest = url
    scheme_end = url.find("://")
    if scheme_end >= 0:
        head, rest = url[: scheme_end + 3], url[scheme_end + 3 :]
    at = rest.rfind("@")
    if at < 0:
        return head, None, rest
    return head, rest[:at], rest[at + 1 :]


def has_userinfo(url: str) -> bool:
    """True when ``url`` carries ``user[:password]@`` (any ``@`` after ``scheme://``)."""
    return split_userinfo(url)[1] is not None


def _redact_query(query: str) -> str:
    pairs = []
    for pair in query.split("&"):
        name, sep, _value = pair.partition("=")
        pairs.append(f"{name}=***" if sep and SECRET_NAME.search(name) else pair)
    return "&".join(pairs)


def redact_url(url: str, *, keep_user: bool = True, keep_query: bool = True) -> str:
    """``url`` for messages: the password (or the whole userinfo) as ``***``.

    ``keep_user`` shows the user name (the userinfo before its first ``:``; a lone
    userinfo is taken as a password, as Redis URLs use it); otherwise the userinfo
    becomes ``***``.  ``keep_query=False`` drops the query and fragment; kept, the
    values of parameters named like a secret (``password=``, ``auth=``, ...) are ``***``.
    Never fails: it parses nothing.
    """
    head, userinfo, tail = split_userinfo(url)
    if userinfo is not None:
        user, colon, _password = userinfo.partition(":")
        head += shown_userinfo(user if colon else None, True) if keep_user else "***@"
    cut = len(tail)
    for mark in "?#":
        index = tail.find(mark)
        if 0 <= index < cut:
            cut = index
    rest = tail[cut:]
    if not keep_query:
        rest = ""
    elif rest.startswith("?"):
        query, hash_, _fragment = rest[1:].partition("#")
        rest = "?" + _redact_query(query) + (hash_ + "***" if hash_ else "")
    else:
        rest = "#***" if rest else ""  # a fragment: never needed in a message
    return head + tail[:cut] + rest


def shown_userinfo(user: str | None, has_password: bool) -> str:
    """``user:***@`` as shown to people.  The user name is shown only when it looks like
    one (letters, digits, ``._~-``, up to 64): ``redis://pass:word@h`` is too often a
    password with a colon for anything else to be shown.  ``""`` for no userinfo."""
    if not user and not has_password:
        return ""
    name = user if user and _PLAIN_USER.fullmatch(user) else ("***" if user else "")
    return f"{name}:***@" if has_password else f"{name}@"


class RedisURLError(ValueError):
    """A Redis URL that cannot be used; the message names the part, never the password."""


@attrs.frozen
class RedisURL:
    """A ``redis://``, ``rediss://`` or ``unix://`` URL split the safe way.

    ``path`` is what follows the host (the database number, or the socket for
    ``unix://``); ``query`` keeps every parameter in order.  The password never
    appears in the repr; ``str()`` is the redacted URL.
    """

    scheme: str
    host: str
    port: int | None
    path: str
    query: tuple[tuple[str, str], ...] = ()
    username: str | None = attrs.field(default=None, repr=False)  # may be half a password
    password: str | None = attrs.field(default=None, repr=False)
    shown: str = ""

    def __str__(self) -> str:
        return self.shown

    def client_url(self, query: list[tuple[str, str]] | None = None) -> str:
        """The URL for ``redis.Redis.from_url``, userinfo percent-encoded so that it
        parses back to the same user and password; ``query`` replaces the query."""
        auth = ""
        if self.username is not None or self.password is not None:
            auth = quote(self.username or "", safe="")
            if self.password is not None:
                auth += ":" + quote(self.password, safe="")
            auth += "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port is not None else ""
        pairs = list(self.query) if query is None else query
        rest = "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)
        return f"{self.scheme}://{auth}{host}{port}{self.path}{rest if pairs else ''}"


_HOST = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=%-]*")


def parse_redis_url(url: str, *, schemes: tuple[str, ...] = ("redis", "rediss")) -> RedisURL:
    """Split ``url`` without ever quoting its userinfo in an error.

    A query parameter given twice (``?job=a&job=b``) is refused: every reader of the
    query kept the last one silently.  Raises ``RedisURLError`` whose message names
    what is wrong (raised with no chain);
    the caller prefixes the field and the redacted URL (``redact_url``).
    """
    head, userinfo, tail = split_userinfo(url)
    if not head:
        raise RedisURLError(f"no scheme: it must start with one of {', '.join(schemes)} and ://")
    scheme = head[:-3].lower()
    if scheme not in schemes:
        raise RedisURLError(f"the scheme must be one of {', '.join(schemes)}, got {scheme!r}")
    username = password = None
    if userinfo is not None:
        user, colon, secret = userinfo.partition(":")
        if colon:
            username, password = unquote(user) or None, unquote(secret)
        else:  # redis://secret@host: a lone userinfo is the password
            password = unquote(user)
    hostport, path, query, _fragment = _split_tail(tail)
    host, port = _host_port(hostport)
    if not host and scheme != "unix":
        raise RedisURLError("no host")
    pairs = tuple(parse_qsl(query, keep_blank_values=True))
    names = [name for name, _ in pairs]
    repeated = next((name for name in names if names.count(name) > 1), None)
    if repeated is not None:  # a dict of them keeps the last silently: which was meant?
        raise RedisURLError(
            f"the parameter {repeated!r} is given {names.count(repeated)} times: give it once"
        )
    shown = redact_url(url)
    return RedisURL(scheme, host, port, path, pairs, username, password, shown)


def _split_tail(tail: str) -> tuple[str, str, str, str]:
    """``host[:port]``, path, query and fragment of what follows the userinfo."""
    rest, _, fragment = tail.partition("#")
    rest, _, query = rest.partition("?")
    slash = rest.find("/")
    if slash < 0:
        return rest, "", query, fragment
    return rest[:slash], rest[slash:], query, fragment


def _host_port(hostport: str) -> tuple[str, int | None]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise RedisURLError("not a valid URL (unclosed [ in the host)")
        host, after = hostport[1:end], hostport[end + 1 :]
        if after and not after.startswith(":"):
            raise RedisURLError("not a valid URL (bad host or port)")
        port_text = after[1:] if after else None
    else:
        host, colon, port_text_ = hostport.partition(":")
        port_text = port_text_ if colon else None
        if not _HOST.fullmatch(host):
            raise RedisURLError("not a valid URL (bad host or port)")
    if port_text is None or port_text == "":
        return host.lower(), None
    if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise RedisURLError("not a valid URL (bad host or port)")
    return host.lower(), int(port_text)
