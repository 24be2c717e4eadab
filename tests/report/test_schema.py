"""docs/REPORT_SCHEMA.md documents every field the JSON report writes, for this version."""
import os
import re

import torch

import terra_dyn
from terra_dyn import report

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "REPORT_SCHEMA.md")


def documented():
    """{section name: set of field names} from the `## \\`name\\`` sections' `- \\`field\\``."""
    sections, current = {}, None
    for line in open(DOC):
        heading = re.match(r"^## .*?`(\w+)`", line)
        if heading:
            current = sections.setdefault(heading.group(1), set())
        elif current is not None and line.startswith("- "):
            for part in line.split(";"):  # "- `a`, `b`: meaning; `c`: meaning"
                current.update(re.findall(r"`(\w+)`", part.split(":")[0]))
    return sections


def real_report():
    def f(x, n):
        y = x * n
        print(y.sum().item())
        return y

    terra_dyn.reset()
    fast = terra_dyn.optimize(f, backend="interpreter")
    with report.recording() as rec:
        fast(torch.ones(2), 2)
        fast(torch.ones(2, 3), 2)
    result = rec.report()
    result.fallbacks.append(report.Fallback("g", __file__, 1, "why"))
    result.as_written.append(report.Fallback("h", __file__, 2, "why"))
    result.add_samples({(__file__, 1): {"python": 0.1}})
    terra_dyn.reset()
    return result.to_json()


def test_every_written_field_is_documented_and_the_version_matches():
    doc, data = documented(), real_report()
    assert f"schema version {report.SCHEMA_VERSION}" in open(DOC).read() and data["schema_version"] == 3
    objects = {"report": [data], "summary": [data["summary"]], "graph": data["graphs"], "break": data["breaks"],
               "recompile": data["recompiles"], "fallback": data["fallbacks"] + data["as_written"], "translation": data["translations"],
               "frame": data["frames"], "break_site": data["costliest_breaks"]}
    for name, items in objects.items():
        assert items, f"the test report has no {name}"
        for item in items:
            missing = set(item) - doc[name]
            assert not missing, f"{name} fields not in REPORT_SCHEMA.md: {missing}"


def test_json_round_trips_through_from_json():
    data = real_report()
    again = report.Report.from_json(data).to_json()
    assert again["summary"] == data["summary"] and again["recompiles"] == data["recompiles"]
    assert again["line_seconds"] == data["line_seconds"]
