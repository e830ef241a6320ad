"""The gRPC API: servicers (proto <-> domain), the error table, the server."""
