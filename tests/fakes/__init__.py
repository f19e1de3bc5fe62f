"""Fake CometAPI and useapi.net servers on 127.0.0.1, for tests, benchmarks and demos.

``python -m tests.fakes cometapi|useapi`` runs one in the foreground.
"""

from .cometapi import COMET_ERRORS, FakeCometAPI
from .server import (
    Action,
    Delay,
    Drop,
    EndpointCount,
    FakeServer,
    RecordedRequest,
    Respond,
    SlowBody,
    Succeed,
)
from .useapi import USEAPI_ERRORS, FakeUseAPI

__all__ = [
    "COMET_ERRORS",
    "USEAPI_ERRORS",
    "Action",
    "Delay",
    "Drop",
    "EndpointCount",
    "FakeCometAPI",
    "FakeServer",
    "FakeUseAPI",
    "RecordedRequest",
    "Respond",
    "SlowBody",
    "Succeed",
]
