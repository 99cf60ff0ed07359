"""The one error hierarchy of Spanlab.

Every failure the gateway reports to a client is a `SpanlabError`. Each subclass fixes
the HTTP status, the OpenAI-style ``type`` and a default ``code``; the single exception
handler in `app.py` turns any of them into the one JSON shape every surface uses::

    {"error": {"message": "...", "type": "...", "code": "...", "param": null}}

That is the OpenAI error shape, so SDKs pointed at the proxy parse our errors exactly
as they parse the upstream's; the management API uses the same shape so a client needs
one parser.

    SpanlabError
    ├── InvalidRequest          400 invalid_request_error
    │   ├── InvalidJSON         400 invalid_json
    │   ├── MissingModel        400 missing_model
    │   └── ValidationFailed    422 validation_failed
    ├── Unauthorized            401 authentication_error
    ├── Forbidden               403 permission_error
    ├── NotFound                404 not_found_error
    │   ├── UnknownModel        404 model_not_found
    │   └── UnknownProvider     404 provider_not_found
    ├── MethodNotAllowed        405 method_not_allowed
    ├── RequestTimeout          408 request_timeout
    ├── Conflict                409 conflict
    ├── BodyTooLarge            413 request_too_large
    ├── UnsupportedMediaType    415 unsupported_media_type
    ├── QuotaExceeded           429 rate_limit_exceeded / quota_exceeded
    ├── UpstreamError           502 upstream_error
    │   ├── UpstreamUnreachable 502 upstream_unreachable
    │   ├── UpstreamProtocol    502 upstream_protocol_error
    │   └── UpstreamTimeout     504 upstream_timeout
    └── ServiceUnavailable      503 service_unavailable
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson


class SpanlabError(Exception):
    """Base of every error the gateway reports to a client."""

    status_code: ClassVar[int] = 500
    error_type: ClassVar[str] = "server_error"
    default_code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.param = param
        self.headers = headers or {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "code": self.code,
                "param": self.param,
            }
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


class InvalidRequest(SpanlabError):
    status_code = 400
    error_type = "invalid_request_error"
    default_code = "invalid_request"


class InvalidJSON(InvalidRequest):
    default_code = "invalid_json"


class MissingModel(InvalidRequest):
    default_code = "missing_model"


class ValidationFailed(InvalidRequest):
    status_code = 422
    default_code = "validation_failed"


class Unauthorized(SpanlabError):
    status_code = 401
    error_type = "authentication_error"
    default_code = "unauthorized"


class Forbidden(SpanlabError):
    status_code = 403
    error_type = "permission_error"
    default_code = "forbidden"


class NotFound(SpanlabError):
    status_code = 404
    error_type = "not_found_error"
    default_code = "not_found"


class UnknownModel(NotFound):
    error_type = "invalid_request_error"
    default_code = "model_not_found"


class UnknownProvider(NotFound):
    error_type = "invalid_request_error"
    default_code = "provider_not_found"


class MethodNotAllowed(SpanlabError):
    status_code = 405
    error_type = "invalid_request_error"
    default_code = "method_not_allowed"


class RequestTimeout(SpanlabError):
    """The client was too slow sending its request (headers or body)."""

    status_code = 408
    error_type = "invalid_request_error"
    default_code = "request_timeout"


class Conflict(SpanlabError):
    status_code = 409
    error_type = "invalid_request_error"
    default_code = "conflict"


class BodyTooLarge(SpanlabError):
    status_code = 413
    error_type = "invalid_request_error"
    default_code = "request_too_large"


class UnsupportedMediaType(SpanlabError):
    status_code = 415
    error_type = "invalid_request_error"
    default_code = "unsupported_media_type"


class QuotaExceeded(SpanlabError):
    """A key or project reached one of its limits (`gateway.quotas`): 429 with
    ``Retry-After`` (whole seconds until the window that refused it frees). ``param``
    names the limit (``rpm``, ``tokens_per_day``, ``usd_per_day``, ``usd_per_month``).
    ``anthropic``: rendered in the Anthropic error shape (the ``/v1/messages`` surface),
    which its SDKs parse, instead of the OpenAI one."""

    status_code = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"

    def __init__(
        self, message: str, *, retry_after: int, limit: str, code: str, anthropic: bool = False
    ) -> None:
        super().__init__(
            message,
            code=code,
            param=limit,
            headers={"retry-after": str(retry_after), "x-spanlab-limit": limit},
        )
        self.retry_after = retry_after
        self.limit = limit
        self.anthropic = anthropic

    def to_dict(self) -> dict[str, Any]:
        if self.anthropic:
            return {"type": "error", "error": {"type": self.error_type, "message": self.message}}
        return super().to_dict()


class UpstreamError(SpanlabError):
    status_code = 502
    error_type = "upstream_error"
    default_code = "upstream_error"


class UpstreamUnreachable(UpstreamError):
    default_code = "upstream_unreachable"


class UpstreamProtocol(UpstreamError):
    default_code = "upstream_protocol_error"


class UpstreamTimeout(UpstreamError):
    status_code = 504
    default_code = "upstream_timeout"


class ServiceUnavailable(SpanlabError):
    status_code = 503
    error_type = "server_error"
    default_code = "service_unavailable"


class ConfigError(Exception):
    """A configuration file or environment variable that cannot be used.

    Not a `SpanlabError`: it stops the process at start, it never reaches a client.
    """
