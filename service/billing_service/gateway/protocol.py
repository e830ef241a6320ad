"""uvicorn's HTTP/1.1 protocol (h11), answering a request it cannot parse
(a NUL in a header, a negative Content-Length, ...) with the gateway's JSON
error shape rather than uvicorn's plain text."""

import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class JsonErrorsH11Protocol(H11Protocol):
    def send_400_response(self, msg: str) -> None:
        body = json.dumps({"error": {"code": "bad_request", "message": msg}}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        for data in (
            self.conn.send(h11.Response(status_code=400, headers=headers, reason=b"Bad Request")),
            self.conn.send(h11.Data(data=body)),
            self.conn.send(h11.EndOfMessage()),
        ):
            if data:
                self.transport.write(data)
        self.transport.close()
