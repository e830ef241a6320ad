"""Generate the Python client's vendored billing.v1 messages (clients/python)
from protos/, under billing_client._proto, so that the client installs beside
the server's own `billing.v1` stubs without clashing.

Only the _pb2 modules and their .pyi: the client calls methods through their
descriptors, so it needs no _grpc modules (which would pin grpcio to the
generator's version). With --check, fail when the committed copy is stale:
`make generated-check` runs this beside the server's stubs check.
"""

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

from generate import differences, generate

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "clients" / "python" / "src" / "billing_client" / "_proto"
PACKAGE = "billing_client._proto"
# protoc's absolute imports of sibling stubs, pointed into the client's package.
IMPORT = re.compile(r"^(from|import) billing\.v1\b", re.MULTILINE)


def generate_client_stubs(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        for source in sorted((Path(tmp) / "billing" / "v1").iterdir()):
            if not source.name.endswith(("_pb2.py", "_pb2.pyi")):
                continue
            text = IMPORT.sub(rf"\1 {PACKAGE}.billing.v1", source.read_text())
            dest = out / "billing" / "v1" / source.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(text)
    for package in (out, out / "billing", out / "billing" / "v1"):
        (package / "__init__.py").touch()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    if not args.check:
        shutil.rmtree(TARGET, ignore_errors=True)
        generate_client_stubs(TARGET)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate_client_stubs(Path(tmp))
        diff = differences(Path(tmp), TARGET)
    if diff:
        print(
            "clients/python's stubs are stale; run `make generate` and commit:",
            *diff,
            sep="\n  ",
        )
        return 1
    print("clients/python's stubs are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
