"""Regenerate ``caffe_pb2.py``/``caffe_raw_pb2.py`` and their type stubs (``make proto``).

Runs the protoc that ships inside ``grpcio-tools`` (so no system protoc is
needed) and then drops the generated runtime-version pin: protoc stamps the
module with its own release and refuses any older protobuf runtime, while the
descriptor-building calls the module makes have been stable since protobuf
3.20. Without the pin one committed module serves every runtime we support.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
_PIN = re.compile(
    r"^from google\.protobuf import runtime_version as _runtime_version\n"
    r"|^_runtime_version\.ValidateProtobufRuntimeVersion\(\n(?:.*\n)*?\)\n",
    re.MULTILINE,
)


def main() -> int:
    from grpc_tools import protoc  # build-time dependency only

    for name in ("caffe", "caffe_raw"):
        rc = protoc.main(
            ["protoc", f"-I{HERE}", f"--python_out={HERE}", f"--pyi_out={HERE}",
             str(HERE / f"{name}.proto")]
        )
        if rc != 0:
            return rc
        out = HERE / f"{name}_pb2.py"
        text, n = _PIN.subn("", out.read_text())
        if n != 2:
            print(f"regenerate: expected a runtime-version pin to remove in {out}, "
                  f"found {n} parts", file=sys.stderr)
            return 1
        out.write_text(text)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
