"""The errorMessage facet through the exporter's exception classifier, and the defaults."""

from __future__ import annotations

import pytest

from exporters.classify import ExceptionClassifier
from exporters.openlineage.failure import classify_failure
from exporters.openlineage.model import ErrorMessageFacet


@pytest.mark.parametrize(
    ("message", "trace", "verdict"),
    [
        ("java.net.SocketTimeoutException: Read timed out", None, ("connectivity", "timeout")),
        ("TimeoutError: the API did not answer", None, ("connectivity", "timeout")),
        ("MemoryError", None, ("resources", "out_of_memory")),
        ("java.lang.OutOfMemoryError: Java heap space", None, ("resources", "out_of_memory")),
        (
            "task failed",
            "Traceback\nOSError: [Errno 28] No space left on device",
            ("resources", "disk_full"),
        ),
        ("HTTP 429 Too Many Requests", None, ("connectivity", "rate_limited")),
        (
            "requests.exceptions.HTTPError: 503 Server Error",
            None,
            ("connectivity", "dependency_down"),
        ),
        ("got status code 401 from the warehouse", None, ("connectivity", "auth_expired")),
        (
            "psycopg2.OperationalError: could not connect to server",
            None,
            ("connectivity", "connection_error"),
        ),
        ('Binder Error: column "amount" does not exist', None, ("data", "schema_change")),
        ("json.decoder.JSONDecodeError: Expecting value", None, ("data", "corrupt_record")),
        ("something odd happened", None, ("logic", "bug")),
    ],
)
def test_messages_classify(message: str, trace: str | None, verdict: tuple[str, str]) -> None:
    assert classify_failure(ErrorMessageFacet(message, "PYTHON", trace), 0) == verdict


def test_defaults_without_a_facet_and_a_users_classifier_first() -> None:
    assert classify_failure(None, 0) == ("logic", "bug")
    assert classify_failure(None, 3) == ("data", "failed_assertion")

    def vendor(exc: BaseException) -> tuple[str, str] | None:
        return ("connectivity", "rate_limited") if "QuotaExceeded" in type(exc).__name__ else None

    facet = ErrorMessageFacet("vendor.QuotaExceededError: slow down", None, None)
    assert classify_failure(facet, 0, ExceptionClassifier((vendor,))) == (
        "connectivity",
        "rate_limited",
    )
