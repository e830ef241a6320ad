"""Copy googleapis' google/api, google/rpc and google/type protos out of the installed
googleapis-common-protos package, so buf and protoc can import them offline."""

import shutil
import sys
from pathlib import Path

import google.api  # from googleapis-common-protos

SUBPACKAGES = ("api", "rpc", "type")


def main() -> None:
    dest = Path(sys.argv[1])
    google_dir = Path(next(iter(google.api.__path__))).parent
    for sub in SUBPACKAGES:
        target = dest / "google" / sub
        target.mkdir(parents=True, exist_ok=True)
        for proto in (google_dir / sub).glob("*.proto"):
            shutil.copyfile(proto, target / proto.name)


if __name__ == "__main__":
    main()
