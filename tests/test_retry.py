"""The delay rule and error messages, as pure functions."""

from __future__ import annotations

import email.utils
import time

import pytest

from hive_mcp.provider.errors import clean_message
from hive_mcp.provider.retry import RetryPolicy, retry_delay

POLICY = RetryPolicy()


def test_retry_after_ms_wins_over_retry_after() -> None:
    assert retry_delay({"retry-after-ms": "1500", "retry-after": "9"}, 0) == 1.5


def test_retry_after_seconds() -> None:
    assert retry_delay({"Retry-After": "7"}, 3) == 7.0


def test_retry_after_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25.0 <= retry_delay({"retry-after": when}, 0) <= 30.0


def test_past_http_date_and_negative_values_become_zero() -> None:
    past = email.utils.formatdate(time.time() - 300, usegmt=True)
    assert retry_delay({"retry-after": past}, 4) == 0.0
    assert retry_delay({"retry-after": "-5"}, 4) == 0.0
    assert retry_delay({"retry-after-ms": "-100"}, 4) == 0.0


@pytest.mark.parametrize("headers", [{"retry-after": "1e9"}, {"retry-after-ms": "999999999"}])
def test_every_value_is_capped_at_120_seconds(headers: dict[str, str]) -> None:
    assert retry_delay(headers, 0) == 120.0


@pytest.mark.parametrize("garbage", ["soon", "", "12 parsecs", "Mon, 99 Foo 2026"])
def test_unparseable_values_fall_back_to_backoff(garbage: str) -> None:
    assert retry_delay({"retry-after": garbage}, 2) == 8.0


def test_exponential_backoff_base_two_seconds() -> None:
    assert [retry_delay(None, n) for n in range(8)] == [2, 4, 8, 16, 32, 64, 120, 120]


def test_backoff_follows_the_policy() -> None:
    assert retry_delay({}, 1, RetryPolicy(base_delay_s=0.5, max_delay_s=1.5)) == 1.0
    assert retry_delay({}, 5, RetryPolicy(base_delay_s=0.5, max_delay_s=1.5)) == 1.5


def test_clean_message_takes_the_upstream_message_out_of_litellm_wrapping() -> None:
    exc = RuntimeError(
        'litellm.RateLimitError: RateLimitError: OpenAIException - {"error": {"message": "slow down", "type": "x"}}'
    )
    assert clean_message(exc) == "slow down"


def test_clean_message_redacts_secrets_and_key_shapes_and_stays_one_line() -> None:
    exc = RuntimeError("bad key my-own-secret-value\nIncorrect API key provided: sk-abcdefghijklmnopqrstu")
    text = clean_message(exc, secrets=["my-own-secret-value"])
    assert "my-own-secret-value" not in text and "sk-abcdefghijklmnopqrstu" not in text
    assert "\n" not in text and "[REDACTED]" in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            'litellm.AuthenticationError: Vertex_ai_betaException - b\'{\\n  "error": {\\n    "code": 400,\\n'
            '    "message": "API key not valid.",\\n    "status": "INVALID_ARGUMENT"\\n  }\\n}\\n\'',
            "API key not valid.", id="a-body-quoted-as-bytes",
        ),
        pytest.param(
            "litellm.BadRequestError: OpenAIException - Error code: 400 - {'error': {'message': 'bad field', "
            "'type': 'invalid_request_error'}}",
            "bad field", id="the-python-repr-of-a-body",
        ),
        pytest.param(
            "litellm.BadRequestError: OpenrouterException - Message: Token limit reached, Metadata: {}, User ID: ",
            "Token limit reached", id="openrouter-labelled",
        ),
        pytest.param(
            "litellm.InternalServerError: InternalServerError: OpenAIException - Invalid response object Traceback "
            "(most recent call last):\n  File \"x.py\", line 1, in f\nKeyError: 'message'\n\nreceived_args={'a': 1}",
            "Invalid response object", id="a-traceback",
        ),
    ],
)
def test_clean_message_keeps_only_the_providers_message(text: str, message: str) -> None:
    assert clean_message(RuntimeError(text)) == message
