# The production image: the service alone, installed from this repository as a
# regular package (no dev dependencies) into a virtualenv by a build stage,
# which the final stage copies (no sources, no pip cache, no build leftovers),
# run as an unprivileged user.
#   docker build -t customer-billing .
#   docker run -p 50051:50051 -p 8080:8080 -v billing-data:/var/lib/billing/data customer-billing
# From there to a first call, with no shell in the container: name a bootstrap
# operator and a key file on the volume; the server creates both at start and
# writes a new key there (mode 0600) when the file is absent:
#   docker run ... -e BILLING_BOOTSTRAP_OPERATOR=default \
#     -e BILLING_BOOTSTRAP_KEY_FILE=/var/lib/billing/data/bootstrap-key customer-billing
#   docker run --rm -v billing-data:/d alpine cat /d/bootstrap-key   # the key
#   curl -H "Authorization: Bearer <key>" localhost:8080/v1/plans
# Set BILLING_ADMIN_KEY_HASH (`billing-service admin-key create`) to manage
# operators and keys over AdminService; on Kubernetes, deploy/kubernetes/
# billing-bootstrap.yaml shows the same path.
# With PostgreSQL, set BILLING_DATABASE_URL=postgresql+asyncpg://... and run
# `billing-service migrate` once per release before starting the servers.
FROM python:3.11.11-slim-bookworm AS build

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the package is built from: the service, its generated stubs, the
# project file and the readme it names (tests/test_dockerfile.py installs from
# exactly these).
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY generated ./generated
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir .

FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH
COPY --from=build /opt/venv /opt/venv

RUN groupadd --system --gid 10001 billing \
    && useradd --system --uid 10001 --gid billing --create-home --home-dir /var/lib/billing billing \
    && install -d -o 10001 -g 10001 /var/lib/billing/data
# Numeric, so that Kubernetes can verify runAsNonRoot.
USER 10001:10001
WORKDIR /var/lib/billing

# The SQLite database of the default settings lives on a volume of its own.
ENV BILLING_GRPC_ADDR=0.0.0.0:50051 \
    BILLING_HTTP_ADDR=0.0.0.0:8080 \
    BILLING_DATABASE_URL=sqlite+aiosqlite:////var/lib/billing/data/billing.db
VOLUME ["/var/lib/billing/data"]
EXPOSE 50051 8080

# The gRPC health service, asked over loopback. `health` loads only grpc and reads only
# BILLING_GRPC_ADDR, so the probe stays well inside its timeout on a busy node.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["billing-service", "health"]

CMD ["billing-service", "serve"]
