"""What the client libraries' tests share: a README's quick-start code block,
and the one version number the service, its protos and both clients carry."""

import importlib
import json
import pkgutil
import re
import tomllib
from pathlib import Path

from billing import v1
from google.protobuf.descriptor import ServiceDescriptor

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = ROOT / "clients"


def code_block(readme: Path, heading: str, language: str) -> str:
    """The first ```language block under `## heading`, exactly as written."""
    text = readme.read_text()
    section = text.split(f"\n## {heading}\n", 1)[1]
    found = re.search(rf"^```{language}\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert found is not None, f"no {language} block under '{heading}' in {readme}"
    return found.group(1)


def versions() -> dict[str, str]:
    def toml_version(path: Path) -> str:
        version: str = tomllib.loads(path.read_text())["project"]["version"]
        return version

    package = json.loads((CLIENTS / "typescript" / "package.json").read_text())
    return {
        "service": toml_version(ROOT / "pyproject.toml"),
        "python client": toml_version(CLIENTS / "python" / "pyproject.toml"),
        "typescript client": package["version"],
    }


def server_services() -> list[ServiceDescriptor]:
    """Every billing.v1 service of the server's stubs (generated/)."""
    modules = [
        importlib.import_module(f"billing.v1.{m.name}")
        for m in pkgutil.iter_modules(v1.__path__)
        if m.name.endswith("_pb2")
    ]
    return [s for m in modules for s in m.DESCRIPTOR.services_by_name.values()]
