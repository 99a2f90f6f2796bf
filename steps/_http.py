"""The steps' client for the stripemeter API (`API_HOST`), with one-line failures.

Any answer other than the expected statuses, and any connection failure, becomes a
`StepError` naming the request and the API's own error message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests

from steps._env import StepError

TIMEOUT_S = 30.0


class ApiClient:
    """JSON over HTTP to one stripemeter API base URL."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = TIMEOUT_S,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """`headers` go with every request (e.g. `Authorization` with an API key)."""
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._session = requests.Session()
        self._session.headers.update(headers or {})

    def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """GET `path` and return its JSON body (200 expected)."""
        return self.request("GET", path, params=params)

    def post(
        self,
        path: str,
        body: Any,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        ok: tuple[int, ...] = (200, 201, 202),
    ) -> Any:
        """POST a JSON body to `path` and return the JSON answer."""
        return self.request("POST", path, params=params, json=body, headers=headers, ok=ok)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> Any:
        """Send one request; a failure or an unexpected status raises `StepError`."""
        url = f"{self.base_url}{path}"
        try:
            response = self._session.request(
                method,
                url,
                params=dict(params) if params else None,
                json=json,
                headers=dict(headers) if headers else None,
                timeout=self.timeout_s,
            )
        except requests.ConnectionError:
            raise StepError(
                f"cannot reach the stripemeter API at {self.base_url} "
                "(is it running? start it with `invoke up`)"
            ) from None
        except requests.Timeout:
            raise StepError(f"{method} {path}: no answer within {self.timeout_s:.0f} s") from None
        if response.status_code not in ok:
            raise StepError(f"{method} {path} answered {response.status_code}: {_reason(response)}")
        try:
            return response.json()
        except ValueError:
            raise StepError(
                f"{method} {path} answered {response.status_code} without JSON"
            ) from None

    def close(self) -> None:
        """Release pooled connections."""
        self._session.close()


def _reason(response: requests.Response) -> str:
    """The API's error message if it sent one, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason
    if isinstance(body, dict):
        for key in ("error", "detail", "message"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value
            if value:
                return str(value)[:300]
    return str(body)[:300]
