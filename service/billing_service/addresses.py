"""Listen addresses: their form and the gRPC default, in a module that loads
nothing else, so that `billing-service health` (the container probe) finds
its target without loading the settings' validation."""

DEFAULT_GRPC_ADDR = "127.0.0.1:50051"
HOST_PORT_RULE = "must be HOST:PORT ([V6]:PORT for IPv6, :PORT for every interface)"


def split_host_port(address: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` -> (host, port); the host is empty
    for every interface. ValueError (HOST_PORT_RULE) for anything else."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(HOST_PORT_RULE)
    return host.strip("[]"), int(port)
