"""A faithful fake OpenTrain server for tests, benchmarks and users' bot tests.

``FakeOpenTrain`` serves the public messaging API over real loopback HTTP and can
script the failures a client must survive (429s, HTML 502s, dropped connections
before or after the commit, stalls). It does not import the SDK, so it cannot mask
client bugs. Its parts: the ``World`` (accounts, conversations, messages, events and
the API's rules, plain Python), zod-style validation, one scripting primitive
(``FakeOpenTrain.script``) and the HTTP adapter. ``FakeTime`` lets tests skip every
wait. See
``opentrain_async.testing.pytest_plugin`` for ready fixtures and
``python -m opentrain_async.testing`` for an out-of-process server.
"""

from ._limits import FixedWindow, LimitSchedule, RateLimit, SlidingWindow, TokenBucket
from ._models import DEFAULT_SCOPES, FakeAccount, FakeConversation, Fault, RecordedRequest
from ._server import API_PREFIX, DEFAULT_TOKEN, FakeOpenTrain
from ._time import FakeTime
from ._world import OTHER_USER, ApiError, World

__all__ = [
    "API_PREFIX",
    "DEFAULT_SCOPES",
    "DEFAULT_TOKEN",
    "OTHER_USER",
    "ApiError",
    "FakeAccount",
    "FakeConversation",
    "FakeOpenTrain",
    "FakeTime",
    "Fault",
    "FixedWindow",
    "LimitSchedule",
    "RateLimit",
    "RecordedRequest",
    "SlidingWindow",
    "TokenBucket",
    "World",
]
