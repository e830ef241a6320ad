"""The REST gateway: HTTP/JSON in front of the gRPC service, for clients that do
not speak gRPC. It holds no business logic. Its routes are the `google.api.http`
annotations of the billing.v1 protos, read from the descriptors at start-up
(routes.py); requests and responses use protobuf's JSON mapping with the
presentation rules of jsonmap.py; gRPC statuses become HTTP statuses and JSON
error bodies from the one table in errors.py; openapi.py describes the same
routes; server.py serves it all with uvicorn."""
