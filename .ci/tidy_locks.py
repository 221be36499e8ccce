"""Tidy pip-compile's output into lock files: drop the project itself (an extra that names
de06qa[...] makes pip-compile list `de06qa @ file://…`, which has no hash) and the throwaway
constraint file's path from the "via" comments."""

import re
import sys
from pathlib import Path

for name in sys.argv[1:]:
    lines = Path(name).read_text(encoding="utf-8").splitlines()
    out, skip = [], False
    for line in lines:
        if line.startswith(("--extra-index-url", "--index-url", "--find-links")):
            continue
        if (
            line.startswith("de06qa @ ")
            or line.startswith("# WARNING: pip install will require")
            or line.startswith("# Consider using a hashable URL")
        ):
            skip = line.startswith("de06qa @ ")
            continue
        if skip and line.startswith("    "):
            continue
        skip = False
        line = re.sub(r"-c /\S+", "-c (the versions the suite passed with)", line)
        line = re.sub(r"--constraint=/\S+", "--constraint=passed.txt", line)
        line = re.sub(r"--output-file=\S+", f"--output-file={Path(name).name}", line)
        out.append(line)
    Path(name).write_text("\n".join(out) + "\n", encoding="utf-8")
