"""The HTML report: one self-contained page with the user's source, break and recompile
lines marked, graphs and a timeline. Checked structurally in Python (always), and in
Debian's headless chromium where it is installed: it loads without errors, every
internal link lands on its target, and a screenshot shows the marked lines' colours."""
import html
import html.parser
import os
import shutil
import struct
import subprocess
import zlib

import pytest
import torch

import terra_dyn
from terra_dyn import report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BREAK_COLOUR = (0xFF, 0xE0, 0xE0)  # .src .brk in report_html._CSS
RECOMPILE_COLOUR = (0xFF, 0xF2, 0xC6)  # .src .rcp


def step(x, scale):
    y = torch.relu(x * scale)
    total = y.sum().item()  # the break the page must mark
    return y / total


@pytest.fixture(scope="module")
def page():
    terra_dyn.reset()
    fast = terra_dyn.optimize(step, backend="interpreter")
    with report.recording() as rec:
        fast(torch.ones(4), 2.0)
        fast(torch.ones(3, 5), 2.0)  # a recompile on x's shape
    result = rec.report()
    result.title = "test_html.py"
    terra_dyn.reset()
    return result, result.to_html()


class Page(html.parser.HTMLParser):
    def __init__(self, text):
        super().__init__()
        self.ids, self.classes, self.hrefs, self.external = {}, {}, [], []
        self.text_of, self._open = {}, []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids[attrs["id"]] = tag
            self.classes[attrs["id"]] = attrs.get("class") or ""
            self.text_of[attrs["id"]] = ""
            self._open.append(attrs["id"])
        elif tag == "div":
            self._open.append(None)
        if "href" in attrs:
            self.hrefs.append(attrs["href"])
        for key in ("src", "href"):
            if key in attrs and not attrs[key].startswith("#"):
                self.external.append(attrs[key])

    def handle_endtag(self, tag):
        if tag == "div" and self._open:
            self._open.pop()

    def handle_data(self, data):
        for anchor in self._open:
            if anchor is not None:
                self.text_of[anchor] += data


def _break_line():
    return step.__code__.co_firstlineno + 2


def test_page_is_self_contained_and_every_link_has_its_target(page):
    _, text = page
    parsed = Page(text)
    assert not parsed.external, parsed.external
    assert parsed.hrefs and all(h[1:] in parsed.ids for h in parsed.hrefs), \
        [h for h in parsed.hrefs if h[1:] not in parsed.ids]


def test_break_and_recompile_lines_are_marked_in_the_users_source(page):
    result, markup = page
    parsed = Page(markup)
    text = html.unescape(markup)
    n = next(i for i, f in enumerate(result.frames()) if f.name == "step")
    brk = f"L{n}-{_break_line()}"
    assert "brk" in parsed.classes[brk] and "total = y.sum().item()" in parsed.text_of[brk]
    assert "Tensor.item()" in text and "fix: .item()/float() in the loop" in text
    recompile = [i for i, c in parsed.classes.items() if "rcp" in c]
    assert recompile and "x shape changed: (4,) -> (3, 5)" in text
    assert f"href='#{brk}'" in text  # "what to fix first" links to the marked line
    assert "def step(x, scale):" in text  # the whole function's source is shown


def test_graphs_show_code_op_counts_and_the_timeline(page):
    _, text = page
    assert "def forward" in text and "<th>op</th><th>count</th>" in text and "relu" in text
    assert "id=timeline" in text and text.count("<span style='left:") >= 2  # two translations at least


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium); "
                                             "the structural tests above still check the page")
def test_page_in_headless_chromium_loads_links_work_and_marked_lines_show(page, tmp_path):
    result, text = page
    checker = """<script>
    window.__errors = [];
    window.addEventListener('error', e => window.__errors.push(String(e.message)));
    window.addEventListener('load', () => {
      const bad = [];
      for (const a of document.querySelectorAll('a[href^="#"]')) {
        a.click();
        const t = document.querySelector(':target');
        if (!t || '#' + t.id !== a.getAttribute('href')) bad.push(a.getAttribute('href'));
      }
      document.title = (bad.length || window.__errors.length)
        ? 'CHECK-BAD ' + bad.join(',') + ' ' + window.__errors.join(';')
        : 'CHECK-OK ' + document.querySelectorAll('a[href^="#"]').length;
      location.hash = '';
      window.scrollTo(0, 0);
    });
    </script></body>"""
    checked = tmp_path / "checked.html"
    checked.write_text(text.replace("</body>", checker))
    plain = tmp_path / "report.html"
    plain.write_text(text)
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--virtual-time-budget=3000"]
    dom = subprocess.run(flags + [f"--user-data-dir={tmp_path / 'p1'}", "--dump-dom", checked.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert "<title>CHECK-OK" in dom.stdout, dom.stdout[:300] + dom.stderr[-2000:]
    shot = tmp_path / "shot.png"
    subprocess.run(flags + [f"--user-data-dir={tmp_path / 'p2'}", "--window-size=1100,1400",
                            f"--screenshot={shot}", plain.as_uri()], capture_output=True, timeout=120)
    colours = png_colours(shot.read_bytes())
    assert BREAK_COLOUR in colours and RECOMPILE_COLOUR in colours  # the marked lines are on screen


def png_colours(data):
    """The set of RGB colours of an 8-bit RGB/RGBA PNG (what chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
        pos += 12 + length
    width, height, depth, colour_type = header[:4]
    assert depth == 8 and colour_type in (2, 6), header
    channels = 3 if colour_type == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride, prev, colours = width * channels, bytearray(width * channels), set()
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        colours.update(bytes(line[i:i + 3]) for i in range(0, stride, channels))
        prev = line
    return {tuple(c) for c in colours}
