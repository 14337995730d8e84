"""The HTTP faces of :class:`~reliability_lab.testing.faults.FaultInjector`: an ``httpx``
transport and a ``requests`` adapter (imported only when asked for: both libraries are
optional)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx
    import requests

    from reliability_lab.testing.faults import Decision, FaultInjector

_STATUS = {"http500": 500, "http503": 503, "http429": 429}


def _headers(d: Decision) -> dict[str, str]:
    if d.retry_after is None:
        return {}
    # RFC 9110 section 10.2.3: delay-seconds is a non-negative integer; round up so that a
    # client honouring it never comes back early.
    return {"Retry-After": str(int(-(-d.retry_after // 1)))}


def _read_timeout(request: httpx.Request) -> float | None:
    timeouts = request.extensions.get("timeout") or {}
    read = timeouts.get("read")
    return float(read) if isinstance(read, (int, float)) else None


def _httpx_fault(d: Decision, cut: bool, request: httpx.Request) -> httpx.Response | None:
    """The injected answer (or raises the injected error); None lets the request through."""
    import httpx

    if d.fault == "timeout" or cut:
        raise httpx.ReadTimeout(f"injected hang at t={d.at:g} s", request=request)
    if d.fault == "connection_reset":
        raise httpx.ReadError(f"injected connection reset at t={d.at:g} s", request=request)
    if d.fault is not None:
        return httpx.Response(_STATUS[d.fault], headers=_headers(d),
                              text=f"injected {d.fault}", request=request)
    return None


def _lost(d: Decision, request: httpx.Request) -> httpx.ReadTimeout:
    import httpx

    return httpx.ReadTimeout(
        f"injected lost answer at t={d.at:g} s (the request took effect)", request=request
    )


def _ok(request: httpx.Request) -> httpx.Response:
    import httpx

    return httpx.Response(200, json={"ok": True})


def make_httpx_transport(
    injector: FaultInjector, inner: httpx.BaseTransport | None
) -> httpx.BaseTransport:
    import httpx

    class FaultTransport(httpx.BaseTransport):
        """Injects the model's faults in front of another transport."""

        def __init__(self, inner: httpx.BaseTransport | None) -> None:
            self.inner = inner if inner is not None else httpx.MockTransport(_ok)
            self.injector = injector

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            d = injector.decide()
            cut = injector._wait(d.delay, _read_timeout(request))
            injected = _httpx_fault(d, cut, request)
            if injected is not None:
                return injected
            response = self.inner.handle_request(request)
            if d.ambiguous:
                response.close()
                raise _lost(d, request)
            return response

        def close(self) -> None:
            self.inner.close()

    return FaultTransport(inner)


def make_httpx_async_transport(
    injector: FaultInjector, inner: httpx.AsyncBaseTransport | None
) -> httpx.AsyncBaseTransport:
    import asyncio

    import httpx

    from reliability_lab.clock import ManualClock

    async def wait(seconds: float, limit: float | None) -> bool:
        cut = limit is not None and limit < seconds
        w = min(seconds, limit) if limit is not None else seconds
        if w > 0:
            if isinstance(injector.clock, ManualClock):
                injector.clock.sleep(w)  # advances at once
            else:
                await asyncio.sleep(w)  # never block the event loop
        return cut

    class AsyncFaultTransport(httpx.AsyncBaseTransport):
        """Injects the model's faults in front of another async transport."""

        def __init__(self, inner: httpx.AsyncBaseTransport | None) -> None:
            self.inner = inner if inner is not None else httpx.MockTransport(_ok)
            self.injector = injector

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            d = injector.decide()
            cut = await wait(d.delay, _read_timeout(request))
            injected = _httpx_fault(d, cut, request)
            if injected is not None:
                return injected
            response = await self.inner.handle_async_request(request)
            if d.ambiguous:
                await response.aclose()
                raise _lost(d, request)
            return response

        async def aclose(self) -> None:
            await self.inner.aclose()

    return AsyncFaultTransport(inner)


def _requests_timeout(timeout: Any) -> float | None:
    if isinstance(timeout, tuple):
        timeout = timeout[-1]
    return float(timeout) if isinstance(timeout, (int, float)) else None


def make_requests_adapter(injector: FaultInjector, inner: Any) -> requests.adapters.BaseAdapter:
    import requests
    from requests.adapters import BaseAdapter
    from requests.structures import CaseInsensitiveDict

    def response(request: requests.PreparedRequest, status: int, headers: dict[str, str],
                 body: bytes) -> requests.Response:
        r = requests.Response()
        r.status_code = status
        r.headers = CaseInsensitiveDict(headers)
        r._content = body
        r.url = request.url or ""
        r.request = request
        r.reason = {200: "OK", 429: "Too Many Requests", 500: "Internal Server Error",
                    503: "Service Unavailable"}.get(status, "")
        return r

    class OkAdapter(BaseAdapter):
        """Answers every request 200 ``{"ok": true}``."""

        def send(self, request: requests.PreparedRequest, *args: Any,
                 **kwargs: Any) -> requests.Response:
            return response(request, 200, {"Content-Type": "application/json"}, b'{"ok": true}')

        def close(self) -> None:
            pass

    class FaultAdapter(BaseAdapter):
        """Injects the model's faults in front of another adapter."""

        def __init__(self, inner: BaseAdapter | None) -> None:
            super().__init__()
            self.inner = inner if inner is not None else OkAdapter()
            self.injector = injector

        def send(self, request: requests.PreparedRequest, stream: bool = False,
                 timeout: Any = None, verify: Any = True, cert: Any = None,
                 proxies: Any = None) -> requests.Response:
            d = injector.decide()
            cut = injector._wait(d.delay, _requests_timeout(timeout))
            if d.fault == "timeout" or cut:
                raise requests.exceptions.ReadTimeout(f"injected hang at t={d.at:g} s",
                                                      request=request)
            if d.fault == "connection_reset":
                raise requests.exceptions.ConnectionError(
                    f"injected connection reset at t={d.at:g} s", request=request)
            if d.fault is not None:
                return response(request, _STATUS[d.fault], _headers(d),
                                f"injected {d.fault}".encode())
            answer = self.inner.send(request, stream=stream, timeout=timeout, verify=verify,
                                     cert=cert, proxies=proxies)
            if d.ambiguous:
                answer.close()
                raise requests.exceptions.ReadTimeout(
                    f"injected lost answer at t={d.at:g} s (the request took effect)",
                    request=request)
            return answer

        def close(self) -> None:
            self.inner.close()

    return FaultAdapter(inner)
