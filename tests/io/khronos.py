"""The Khronos glTF validator (npm's ``gltf-validator``), for the GLB tests that run it when node can find it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

_VALIDATE_JS = """
const fs = require('fs');
const validator = require(process.argv[1]);
validator.validateBytes(new Uint8Array(fs.readFileSync(process.argv[2])), {maxIssues: 20})
  .then((r) => console.log(JSON.stringify(r.issues)))
  .catch((e) => { console.error(String(e)); process.exit(2); });
"""

#: What a test says when it skips for want of the validator.
MISSING = "the Khronos glTF validator is not installed (npm install -g gltf-validator; .ci/run installs it)"


def validator_command() -> list[str] | None:
    """``node -e ... PACKAGE`` (append a GLB's path; it prints the issues as JSON) with the npm package
    gltf-validator found globally or under ``NODE_PATH``, else None."""
    node = shutil.which("node")
    if node is None:
        return None
    roots = os.environ.get("NODE_PATH", "").split(os.pathsep)
    npm = shutil.which("npm")
    if npm:
        roots.append(subprocess.run([npm, "root", "-g"], capture_output=True, text=True, timeout=60, check=False).stdout.strip())
    for root in filter(None, roots):
        if (Path(root) / "gltf-validator").is_dir():
            return [node, "-e", _VALIDATE_JS, str(Path(root) / "gltf-validator")]
    return None
