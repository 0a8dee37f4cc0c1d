"""The static site (``make site``) in a real browser: every page opens with no failed request
(nothing may come from outside the site: it must work offline), every image loads, every error
output sits in a cell tagged ``raises-exception`` (the tutorial announces it), every tagged cell
of a tutorial shows its error, and every internal link reaches a page (and its anchor).

The site is built once per session by the builder itself, executing every notebook on the real
kernel (reusing the notebooks tests/kernel/test_notebooks.py executed just before, when their sources
have not changed since), unless ``EBPF_NB_SITE`` names a site already built. The browser is
Debian's chromium driven by Playwright, as in tests/e2e.
"""
from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path(os.environ.get("EBPF_NB_CHROMIUM", "/usr/bin/chromium"))

# the first test builds the site: up to 16 notebooks executed on a loaded machine
pytestmark = pytest.mark.timeout(1800)

ERRORS_ANNOUNCED_JS = """() => {
  const errors = [...document.querySelectorAll('.site-error')];
  const unannounced = errors.filter(e => !e.closest('.celltag_raises-exception')).length;
  const tagged = [...document.querySelectorAll('.jp-CodeCell.celltag_raises-exception')];
  const silent = tagged.filter(c => !c.querySelector('.site-error')).length;
  return {errors: errors.length, unannounced, tagged: tagged.length, silent};
}"""
BROKEN_IMAGES_JS = """() => [...document.images]
  .filter(i => !(i.complete && i.naturalWidth > 0 && i.naturalHeight > 0))
  .map(i => i.src.slice(0, 80))"""
LINKS_JS = "() => [...document.querySelectorAll('a[href]')].map(a => a.href)"
IDS_JS = "() => [...document.querySelectorAll('[id]')].map(e => e.id)"


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def site() -> Path:
    given = os.environ.get("EBPF_NB_SITE")
    if given:
        path = Path(given)
        if not (path / "index.html").is_file():
            pytest.fail(f"EBPF_NB_SITE={given} holds no built site: run make site")
        return path
    from tools.site.build import SiteError, build

    out = REPO / "build" / "site"
    try:
        stats = build(out, cache=REPO / "build" / "site-executed")
    except SiteError as error:
        pytest.fail(f"the site does not build: {error}")
    print(f"site built in {stats['seconds']:.0f} s "
          f"({stats['execution_seconds']:.0f} s executing), {stats['bytes'] / 1e6:.1f} MB")
    return out


@pytest.fixture(scope="session")
def site_url(site) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class RequestWatch:
    """Every request of a page that failed or went outside the site, by page name."""

    def __init__(self, page, site_url: str) -> None:
        self.origin = urlparse(site_url).netloc
        self.current = ""
        self.failed: list[str] = []
        page.route("**/*", self._route)
        page.on("requestfailed", lambda r: self._add(f"failed: {r.url[:100]}"))
        page.on("response", lambda r: r.status >= 400 and self._add(f"{r.status}: {r.url}"))

    def _add(self, problem: str) -> None:
        self.failed.append(f"{self.current}: {problem}")

    def _route(self, route) -> None:
        url = route.request.url
        if url.startswith("data:") or urlparse(url).netloc == self.origin:
            route.continue_()
        else:
            self._add(f"request outside the site: {url[:100]}")
            route.abort()


def site_pages(site: Path) -> list[str]:
    return sorted(p.name for p in site.glob("*.html"))


@pytest.fixture(scope="module")
def page() -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: pip install playwright (make setup does)")
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (make test installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                             args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            yield browser.new_page(viewport={"width": 1200, "height": 900})
        finally:
            browser.close()


def test_the_site_holds_the_whole_curriculum(site):
    pages = set(site_pages(site))
    tutorials = {f"{p.stem}.html" for p in REPO.glob("notebooks/[0-9][0-9]*_*.ipynb")}
    labs = {f"lab-{p.parent.name}.html" for p in REPO.glob("labs/*/solution.ipynb")}
    assert tutorials and labs
    missing = (tutorials | labs | {"index.html", "setup.html"}) - pages
    assert not missing, f"pages missing from the site: {sorted(missing)}"
    assert (site / "images" / "bpf-cell.png").stat().st_size > 10_000


def test_every_page_opens_complete_and_its_links_work(site, site_url, page):
    started = time.monotonic()
    problems: list[str] = []
    ids: dict[str, set[str]] = {}
    links: dict[str, set[str]] = {}
    errors_seen = 0
    watch = RequestWatch(page, site_url)
    for name in site_pages(site):
        watch.current = name
        page.goto(site_url + name, wait_until="load")
        problems += [f"{name}: image not shown: {src}" for src in page.evaluate(BROKEN_IMAGES_JS)]
        errors = page.evaluate(ERRORS_ANNOUNCED_JS)
        errors_seen += errors["errors"]
        if errors["unannounced"]:
            problems.append(f"{name}: {errors['unannounced']} error outputs in cells not tagged "
                            "raises-exception")
        if errors["silent"] and not name.startswith("lab-"):
            problems.append(f"{name}: {errors['silent']} cells tagged raises-exception show no "
                            "error")
        ids[name] = set(page.evaluate(IDS_JS))
        links[name] = set(page.evaluate(LINKS_JS))
    problems += watch.failed
    page.goto(site_url + "02_maps.html")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "site-02_maps.png"), full_page=False)

    for name, hrefs in links.items():
        for href in hrefs:
            target, anchor = urldefrag(href)
            if not target.startswith(site_url):
                continue  # a link out of the site: not followed (no network in CI)
            target_page = target[len(site_url):] or "index.html"
            if target_page not in ids:
                problems.append(f"{name}: broken link to {target_page}")
            elif anchor and anchor not in ids[target_page]:
                problems.append(f"{name}: link to {target_page}#{anchor}: no such anchor")
    assert not problems, "\n".join(problems[:40])
    # the tutorial has error examples (the verifier's): the check above saw them
    assert errors_seen > 0, "no error output on any page: the error check checked nothing"
    print(f"site check: {len(ids)} pages, {sum(map(len, links.values()))} links, "
          f"{errors_seen} announced errors, {time.monotonic() - started:.1f} s")
