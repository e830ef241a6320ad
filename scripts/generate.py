"""Generate the Python stubs of protos/ into a folder (default generated/).

With --check, generate into a temporary folder and fail when the committed
stubs differ: CI runs this so that stale stubs never land.
"""

import argparse
import filecmp
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc_tools

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
THIRD_PARTY = ROOT / "build" / "third_party" / "protos"
GRPC_TOOLS_INCLUDE = Path(next(iter(grpc_tools.__path__))) / "_proto"
DESCRIPTOR_SET = Path("billing/v1/billing.binpb")


def generate(out: Path) -> None:
    (out / DESCRIPTOR_SET).parent.mkdir(parents=True, exist_ok=True)
    protos = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{THIRD_PARTY}",
        f"-I{GRPC_TOOLS_INCLUDE}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        # The _pb2 modules carry no comments: the gateway's OpenAPI document
        # reads them from this descriptor set (gateway/proto_docs.py).
        f"--descriptor_set_out={out / DESCRIPTOR_SET}",
        "--include_source_info",
        *protos,
    ]
    subprocess.run(cmd, check=True, cwd=PROTOS)
    # Packages, so that setuptools installs the stubs as `billing.v1`.
    for package in {out / Path(p).parent for p in protos} | {out / "billing"}:
        (package / "__init__.py").touch()


def differences(a: Path, b: Path) -> list[str]:
    cmp = filecmp.dircmp(a, b, ignore=["__pycache__"])
    found = [f"only in {a}: {n}" for n in cmp.left_only]
    found += [f"only in {b}: {n}" for n in cmp.right_only]
    found += [f"differs: {a / n}" for n in cmp.diff_files]
    for sub in cmp.common_dirs:
        found += differences(a / sub, b / sub)
    return found


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", nargs="?", default="generated")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    target = ROOT / args.out
    if not args.check:
        generate(target)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        diff = differences(Path(tmp), target)
    if diff:
        print("generated/ is stale; run `make generate` and commit:", *diff, sep="\n  ")
        return 1
    print("generated/ is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
