"""A fake Stripe API on 127.0.0.1 for the real `stripe` library: stateful
enough for customers (with idempotency keys), Checkout and Portal sessions,
the objects webhooks make the service fetch again, meter event sessions and
the meter event stream (deduped by identifier), cancels and summaries; and failing on demand
(an HTTP status or a hang, for the next N requests, or until told)."""

import itertools
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

SECRET_KEY = "sk_test_" + "F4ke" * 6
WEBHOOK_SECRET = "whsec_" + "S3cr3t" * 5
CANCEL_WINDOW = 24 * 3600.0


@dataclass
class Failure:
    status: int  # 0: hang for `hang_seconds`, then close without answering
    remaining: int | None  # None: until cleared
    path_prefix: str = ""


@dataclass
class FakeStripeState:
    api_key: str = SECRET_KEY
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> object
    idempotent: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    customers_created: int = 0
    sessions: list[dict[str, Any]] = field(default_factory=list)
    meters: list[dict[str, Any]] = field(default_factory=list)
    stream_tokens: set[str] = field(default_factory=set)  # meter event sessions' tokens
    meter_events: dict[str, dict[str, Any]] = field(default_factory=dict)  # identifier ->
    meter_event_posts: Counter[str] = field(default_factory=Counter)  # identifier -> tries
    cancels: list[str] = field(default_factory=list)
    # identifier -> when the fake received it (time.time(); see age_meter_events)
    meter_event_received: dict[str, float] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    meter_event_delay: float = 0.0
    # While set, object reads (GET) wait until the event is set (or 30 s):
    # a test holds a handler inside its Stripe call.
    hold_reads: threading.Event | None = None
    # The benchmark sends millions of events: it counts them only, so that the
    # fake's memory (and its collector's passes over it) stays flat.
    keep_meter_events: bool = True
    meter_events_received: int = 0
    hang_seconds: float = 5.0
    requests: list[tuple[str, str]] = field(default_factory=list)


class FakeStripe:
    def __init__(self) -> None:
        self.state = FakeStripeState()
        self.lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "FakeStripe":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- what tests set up --------------------------------------------------

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):06d}"

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.state.objects[obj["id"]] = obj
        return obj

    def add_meter(self, event_name: str) -> str:
        meter_id = self.new_id("mtr")
        with self.lock:
            self.state.meters.append(
                {"id": meter_id, "object": "billing.meter", "event_name": event_name,
                 "status": "active"}
            )  # fmt: skip
        return meter_id

    def fail(self, status: int, times: int | None = None, path_prefix: str = "") -> None:
        """The next `times` requests (None: all, until `recover`) under
        `path_prefix` get `status` (0: hang, then no answer)."""
        with self.lock:
            self.state.failures.append(Failure(status, times, path_prefix))

    def recover(self) -> None:
        with self.lock:
            self.state.failures.clear()

    def age_meter_events(self, seconds: float) -> None:
        """As if every meter event had been received `seconds` earlier."""
        with self.lock:
            for identifier in self.state.meter_event_received:
                self.state.meter_event_received[identifier] -= seconds

    def delivered(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return dict(self.state.meter_events)

    # -- serving ------------------------------------------------------------

    def _failure(self, path: str) -> Failure | None:
        with self.lock:
            for failure in self.state.failures:
                if path.startswith(failure.path_prefix):
                    if failure.remaining is not None:
                        failure.remaining -= 1
                        if failure.remaining == 0:
                            self.state.failures.remove(failure)
                    return failure
        return None

    def serve(self, method: str, path: str, form: dict[str, Any], headers: Any) -> Any:
        """(status, body) of one request, failures aside."""
        gate = self.state.hold_reads
        if method == "GET" and gate is not None:
            gate.wait(30)
        if path == "/v2/billing/meter_event_stream":
            token = headers.get("Authorization", "").removeprefix("Bearer ")
            if token not in self.state.stream_tokens:
                return 401, _error("invalid_request_error", "Meter event session expired")
            return self._stream(form)
        if headers.get("Authorization") != f"Bearer {self.state.api_key}":
            return 401, _error("invalid_request_error", "Invalid API Key provided: sk_****")
        key = headers.get("Idempotency-Key")
        if method == "POST" and key and key.startswith("billing-"):
            with self.lock:
                if key in self.state.idempotent:
                    return self.state.idempotent[key]
            answer = self._route(method, path, form)
            with self.lock:
                return self.state.idempotent.setdefault(key, answer)
        return self._route(method, path, form)

    def _route(self, method: str, path: str, form: dict[str, Any]) -> tuple[int, Any]:
        parts = path.strip("/").split("/")[1:]  # without "v1"
        if method == "POST" and parts == ["customers"]:
            return 200, self._create_customer(form)
        if method == "POST" and parts == ["checkout", "sessions"]:
            return self._checkout(form)
        if method == "POST" and parts == ["billing_portal", "sessions"]:
            return 200, self._session("bps", form, url="https://billing.fake/p/")
        if method == "POST" and path == "/v2/billing/meter_event_session":
            return 200, self._session_token()
        if method == "POST" and parts == ["billing", "meter_event_adjustments"]:
            return self._cancel(form)
        if method == "GET" and parts == ["billing", "meters"]:
            with self.lock:
                return 200, _list(list(self.state.meters), path)
        if method == "GET" and len(parts) == 4 and parts[3] == "event_summaries":
            return 200, _list([self._summary(parts[2], form)], path)
        if method == "GET" and len(parts) == 2:
            with self.lock:
                found = self.state.objects.get(parts[1])
            if found is not None:
                return 200, found
            message = f"No such object: '{parts[1]}'"
            return 404, _error("invalid_request_error", message, "resource_missing")
        return 404, _error("invalid_request_error", f"Unrecognized request URL ({path})")

    def _create_customer(self, form: dict[str, Any]) -> dict[str, Any]:
        customer = {
            "id": self.new_id("cus"), "object": "customer",
            "email": form.get("email"), "metadata": form.get("metadata", {}),
            "invoice_settings": {"default_payment_method": None},
        }  # fmt: skip
        with self.lock:
            self.state.customers_created += 1
        return self.put(customer)

    def _checkout(self, form: dict[str, Any]) -> tuple[int, Any]:
        if form.get("mode") == "subscription":
            for item in form.get("line_items", {}).values():
                if item.get("price") not in self.state.objects:
                    message = f"No such price: '{item.get('price')}'"
                    return 400, _error("invalid_request_error", message, "resource_missing")
        return 200, self._session("cs", form, url="https://checkout.fake/c/")

    def _session(self, prefix: str, form: dict[str, Any], url: str) -> dict[str, Any]:
        session_id = self.new_id(prefix)
        session = {"id": session_id, "object": "session", "url": url + session_id, **form}
        with self.lock:
            self.state.sessions.append(session)
        return session

    def _session_token(self) -> dict[str, Any]:
        token = self.new_id("mes_token")
        with self.lock:
            self.state.stream_tokens.add(token)
        return {
            "object": "v2.billing.meter_event_session", "id": self.new_id("mes"),
            "authentication_token": token, "livemode": False,
            "created": "2026-01-01T00:00:00.000Z", "expires_at": "2099-01-01T00:00:00.000Z",
        }  # fmt: skip

    def _stream(self, body: dict[str, Any]) -> tuple[int, Any]:
        """Meter events, deduped by identifier as Stripe does (silently)."""
        if self.state.meter_event_delay:
            time.sleep(self.state.meter_event_delay)
        with self.lock:
            self.state.meter_events_received += len(body["events"])
            if not self.state.keep_meter_events:
                return 200, {}
            for event in body["events"]:
                identifier = event["identifier"]
                self.state.meter_event_posts[identifier] += 1
                if identifier not in self.state.meter_events:
                    self.state.meter_events[identifier] = event
                    self.state.meter_event_received[identifier] = time.time()
        return 200, {}

    def _cancel(self, form: dict[str, Any]) -> tuple[int, Any]:
        identifier = form["cancel"]["identifier"]
        with self.lock:
            if identifier not in self.state.meter_events:
                return 400, _error("invalid_request_error", f"No meter event {identifier}")
            # Stripe cancels a meter event only within 24 hours of receiving it.
            if time.time() - self.state.meter_event_received[identifier] > CANCEL_WINDOW:
                message = f"Meter event {identifier} can no longer be cancelled"
                return 400, _error("invalid_request_error", message)
            self.state.cancels.append(identifier)
        return 200, {"object": "billing.meter_event_adjustment", "status": "pending", **form}

    def _summary(self, meter_id: str, form: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            name = next(m["event_name"] for m in self.state.meters if m["id"] == meter_id)
            start, end = int(form["start_time"]), int(form["end_time"])
            total = sum(
                (
                    Decimal(e["payload"]["value"])
                    for ident, e in self.state.meter_events.items()
                    if e["event_name"] == name
                    and e["payload"]["stripe_customer_id"] == form["customer"]
                    and start <= _epoch(e["timestamp"]) < end
                    and ident not in self.state.cancels
                ),
                Decimal(0),
            )
        return {"object": "billing.meter_event_summary", "meter": meter_id,
                "aggregated_value": float(total), "start_time": start, "end_time": end}  # fmt: skip


def _handler(fake: FakeStripe) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, method: str) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else url.query
            with fake.lock:
                fake.state.requests.append((method, url.path))
            failure = fake._failure(url.path)
            if failure is not None and failure.status == 0:
                time.sleep(fake.state.hang_seconds)
                self.close_connection = True
                return
            if failure is not None:
                status, answer = failure.status, _error("api_error", f"fake {failure.status}")
            else:
                json_body = self.headers.get("Content-Type", "").startswith("application/json")
                parsed = json.loads(body or "{}") if json_body else _form(body)
                status, answer = fake.serve(method, url.path, parsed, self.headers)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", f"req_fake{time.monotonic_ns()}")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def do_DELETE(self) -> None:
            self._answer("DELETE")

    return Handler


_KEY_PART = re.compile(r"\[([^\]]*)\]")


def _form(body: str) -> dict[str, Any]:
    """Stripe's form encoding (`a[b][0][c]=v`) as nested dicts."""
    result: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        head = key.split("[", 1)[0]
        path = [head, *_KEY_PART.findall(key[len(head) :])]
        target = result
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    return result


def _epoch(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp())


def _list(data: list[Any], url: str) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": False, "url": url}


def _error(kind: str, message: str, code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code:
        error["code"] = code
    return {"error": error}


@contextmanager
def running_fake() -> Iterator[FakeStripe]:
    fake = FakeStripe().start()
    try:
        yield fake
    finally:
        fake.stop()
