"""What every benchmark writes into BENCHMARKS.md: the machine's CPU, and its own `## ` section.

Each benchmark owns one section (`## Ingest`, `## Stream`, ...); `--write` replaces that section
and leaves every other one as it is.
"""

from __future__ import annotations

import platform
import re
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_section(title: str, section: str) -> None:
    """Replace the `## <title>` section of BENCHMARKS.md with `section` (its heading included),
    or append it; one blank line before the next section."""
    doc = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    m = re.search(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", doc, flags=re.S | re.M)
    if m is None:
        doc = doc.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    else:
        rest = doc[m.end() :]
        doc = doc[: m.start()] + section.rstrip("\n") + ("\n\n" + rest if rest else "\n")
    BENCHMARKS.write_text(doc)
