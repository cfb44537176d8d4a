"""docs/behavior-flows.md: its Python examples run as written, in order, and print what
their comments say."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).parents[1] / "docs" / "behavior-flows.md"
#: A print with its expected output as a trailing comment (up to ": an explanation").
_PRINTED = re.compile(r"^\s*print\(.*\)\s+# (?P<shown>.*?)(?::\s+[A-Za-z].*)?$")


def test_examples_run_and_print_what_they_say() -> None:
    blocks = [b.split("```", 1)[0] for b in DOC.read_text().split("```python\n")[1:]]
    assert len(blocks) >= 2
    namespace: dict[str, object] = {}
    checked = 0
    for number, block in enumerate(blocks, 1):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, f"behavior-flows.md example {number}", "exec"), namespace)
        expected = [m["shown"] for line in block.splitlines() if (m := _PRINTED.match(line))]
        printed = out.getvalue().splitlines()
        for shown in expected:
            assert shown in printed, (shown, printed)
        checked += len(expected)
    assert checked >= 5
    assert len(namespace["steps"]) == 4  # type: ignore[arg-type]
