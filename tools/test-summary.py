#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Prints one closing line 'tests: N passed, N failed, N skipped' from the
JUnit report meson writes for GoogleTest suites (one line per test case)."""
import sys
import xml.etree.ElementTree as ET

path = sys.argv[1] if len(sys.argv) > 1 else "build/meson-logs/testlog.junit.xml"
passed = failed = skipped = 0
try:
    root = ET.parse(path).getroot()
except (OSError, ET.ParseError) as e:
    print(f"test-summary: cannot read {path}: {e}", file=sys.stderr)
    sys.exit(0)
for case in root.iter("testcase"):
    if case.find("failure") is not None or case.find("error") is not None:
        failed += 1
    elif case.find("skipped") is not None or case.get("result") == "skipped":
        skipped += 1
    else:
        passed += 1
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
