"""The docs site in a real browser: build it from the committed notebook outputs (`tools/docsite.py`), serve it on
127.0.0.1, drive headless Debian Chromium through selenium + chromedriver, and check every page (one case per notebook).

Chromium is a hard requirement, not an optional extra: `make test` installs it (`tools/bootstrap.sh browser`: `apt-get install chromium
chromium-driver`); without it these tests fail and say so."""
import functools, http.server, importlib, json, re, shutil, sys, tempfile, threading
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest
from nbdev.config import get_config

ROOT = Path(__file__).resolve().parents[1]
CFG = get_config(ROOT)
NOTEBOOKS = sorted(p for p in CFG.nbs_path.rglob('*.ipynb')
                   if not any(s.startswith(('_', '.')) for s in p.relative_to(CFG.nbs_path).parts))
SCREENSHOTS = ROOT/'_screenshots'
CHROMIUM, CHROMEDRIVER = Path('/usr/bin/chromium'), Path('/usr/bin/chromedriver')
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--disable-quic', '--window-size=1400,1000']

sys.path.insert(0, str(ROOT/'tools'))
docsite = importlib.import_module('docsite')

# TeX that would mean a formula was not rendered, looked for in the visible text outside code and math elements.
RAW_TEX = re.compile(r'\$\$|\$[^$\s][^$\n]*\$|\\frac|\\\||\\(?:sqrt|sum|sigma|lambda|mathbf|mathrm|operatorname|'
                     r'begin|end|left|right|top|cdot|le|ge|langle|rangle)\b')
# Math in a notebook's markdown (what pandoc's tex_math_dollars turns into <math>): $...$ or $$...$$.
CODE = re.compile(r'```.*?```|`[^`\n]*`', re.S)   # code is not math
HAS_MATH = re.compile(r'\$\$.+?\$\$|(?<![\\$])\$(?!\s)[^$\n]+?(?<!\s)\$', re.S)

@pytest.fixture(scope='session')
def site():
    "Build the site into `_docs/` and serve it on a free port of 127.0.0.1; yields (base url, pages by notebook)."
    pages = docsite.build(ROOT)
    handler = functools.partial(type('Quiet', (http.server.SimpleHTTPRequestHandler,),
                                     {'log_message': lambda *a: None}), directory=str(CFG.doc_path))
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    by_nb = {p.nb.relative_to(CFG.config_path/'_proc').as_posix(): p for p in pages}
    yield f'http://127.0.0.1:{srv.server_address[1]}/', by_nb
    srv.shutdown()

@pytest.fixture(scope='session')
def browser():
    "Headless Chromium with a fresh profile, its console log recorded."
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing: pytest.fail(f'The browser test needs {" and ".join(missing)}: install them with '
                            '`apt-get install -y chromium chromium-driver` (`make test` does it through tools/bootstrap.sh).', pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    profile = tempfile.mkdtemp(prefix='chromium-profile-')
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for f in FLAGS + [f'--user-data-dir={profile}']: opts.add_argument(f)
    opts.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    drv = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    drv.set_page_load_timeout(30)
    yield drv
    drv.quit()
    shutil.rmtree(profile, ignore_errors=True)

@pytest.fixture(scope='session')
def home_nav(site, browser):
    "The absolute URLs the home page's sidebar links to, and their link texts."
    base, _ = site
    browser.get(base + 'index.html')
    return {a.get_attribute('href'): a.text for a in browser.find_elements('css selector', '#sidebar a')}

def _load(drv, url: str) -> list:
    "Open `url` and return the console messages of severity SEVERE it logged."
    drv.get_log('browser')   # drop what earlier pages logged
    drv.get(url)
    return [e for e in drv.get_log('browser') if e['level'] == 'SEVERE']

VISIBLE_TEXT_JS = """
const out = [];
const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
while (walk.nextNode()) {
  const el = walk.currentNode.parentElement;
  if (!el || el.closest('pre, code, math, script, style') || !el.checkVisibility()) continue;
  out.push(walk.currentNode.textContent);
}
return out.join(' ');"""

def _expected_images(nb: dict) -> int:
    "Images the page must show: image outputs of shown cells and images in markdown cells."
    n = 0
    for c in nb['cells']:
        if c['cell_type'] == 'markdown': n += len(re.findall(r'!\[[^\]]*\]\(', ''.join(c['source'])))
        for o in c.get('outputs', []):
            if any(k.startswith('image/') for k in o.get('data', {})): n += 1
    return n

def _api_names(page_href: str) -> list:
    "(name, anchor) of every exported public function or class whose reference nbdev puts on `page_href`."
    import linear_contraction._modidx as modidx
    out = []
    for mod, syms in modidx.d['syms'].items():
        m = importlib.import_module(mod)
        public = {n for n in getattr(m, '__all__', []) if callable(getattr(m, n, None))}
        documented = {k.rsplit('.', 1)[1] for k in syms if k.count('.') == mod.count('.') + 1}
        assert public <= documented, f'{mod}: exported names missing from _modidx (run nbdev-export): {public - documented}'
        for k, (link, _) in syms.items():
            name = k[len(mod)+1:]
            if '.' not in name and name in public and link.split('#')[0] == page_href:
                out.append((name, link.split('#')[1]))
    return out

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=lambda p: p.relative_to(CFG.nbs_path).with_suffix('').as_posix())
def test_page(nb: Path, site, browser, home_nav):
    base, pages = site
    rel = nb.relative_to(CFG.nbs_path).as_posix()
    page = pages.get(rel)
    assert page is not None, f'{rel} was not rendered; pages: {sorted(pages)}'
    url = urljoin(base, page.href)

    # reachable from the home page's navigation, and the link leads to this page
    assert url in home_nav, f'{page.href} is not linked from the home page sidebar: {sorted(home_nav)}'
    browser.get(base + 'index.html')
    browser.find_element('css selector', f'#sidebar a[href="{page.href}"]').click()
    assert urlparse(browser.current_url).path == urlparse(url).path, browser.current_url

    errors = _load(browser, url)
    assert not errors, f'{page.href}: console errors: {errors}'
    assert browser.find_element('css selector', 'h1.title').text.strip() == page.title.replace('`', '')

    # everything it loaded came from this server: the site works offline
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    foreign = [r for r in resources if not r.startswith(base) and not r.startswith('data:')]
    assert not foreign, f'{page.href} loads resources from elsewhere: {foreign}'

    # math: rendered (MathML elements with a size), never left as TeX in the visible text
    text = browser.execute_script(VISIBLE_TEXT_JS)
    raw = sorted(set(m.group(0) for m in RAW_TEX.finditer(text)))
    assert not raw, f'{page.href}: raw TeX in the visible text: {raw[:10]}'
    md = '\n'.join(''.join(c['source']) for c in docsite.for_pandoc(json.loads(page.nb.read_text()))['cells']
                   if c['cell_type'] == 'markdown')
    n_math = len(HAS_MATH.findall(CODE.sub('', md)))
    sizes = browser.execute_script(
        "return [...document.querySelectorAll('math')].map(m => m.getBoundingClientRect().width)")
    if n_math: assert len(sizes) >= n_math, f'{page.href}: {n_math} formulas in the notebook, {len(sizes)} <math>'
    assert all(w > 0 for w in sizes), f'{page.href}: {sum(w == 0 for w in sizes)} math elements render with zero width'

    # images: as many as the notebook shows, all decoded
    imgs = browser.execute_script(
        "return [...document.images].map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])")
    bad = [s for s, ok, w in imgs if not ok or w == 0]
    assert not bad, f'{page.href}: images that did not load: {bad}'
    n_img = _expected_images(docsite.for_pandoc(json.loads(page.nb.read_text())))
    assert len(imgs) >= n_img, f'{page.href}: the notebook shows {n_img} images, the page {len(imgs)}'

    # the API reference of every exported public name documented on this page
    for name, anchor in _api_names(page.href):
        els = browser.find_elements('id', anchor)
        assert els and els[0].tag_name in ('h2', 'h3', 'h4') and name in els[0].text, \
            f'{page.href}: no API reference heading #{anchor} for {name}'

    # links within the site lead to pages that exist, and to anchors on them
    for href in browser.execute_script("return [...document.querySelectorAll('a[href]')].map(a => a.href)"):
        if not href.startswith(base): continue
        target = urlparse(href)
        f = CFG.doc_path/target.path[len(urlparse(base).path):]
        assert f.is_file(), f'{page.href} links to {href}, which is not in the site'
        if target.fragment and f.suffix == '.html':  # ids may be non-ASCII (`#the-σ-…`): compare the decoded fragment
            assert f'id="{unquote(target.fragment)}"' in f.read_text(), f'{page.href} links to {href}: no such anchor'

    # a full-page screenshot for people to look at
    SCREENSHOTS.mkdir(exist_ok=True)
    h = browser.execute_script('return document.documentElement.scrollHeight')
    browser.set_window_size(1400, min(max(h, 1000), 24000))
    browser.save_screenshot(str(SCREENSHOTS/(rel.replace('/', '__').removesuffix('.ipynb') + '.png')))
    browser.set_window_size(1400, 1000)

def test_quarto_options_applied():
    "The Quarto cell options nbdev leaves for Quarto are applied before pandoc sees the notebook."
    def cell(src, *outs): return {'cell_type': 'code', 'metadata': {'x': 1}, 'source': src, 'outputs': list(outs),
                                  'execution_count': None}
    md_out = {'output_type': 'execute_result', 'execution_count': None, 'metadata': {},
              'data': {'text/markdown': ['### f\n', 'doc'], 'text/plain': ['f']}}
    bar = {'output_type': 'stream', 'name': 'stderr', 'text': ' 10%|#  | 1/10\r100%|###| 10/10\n'}
    nb = {'cells': [{'cell_type': 'raw', 'metadata': {}, 'source': '---\ntitle: T\n---\n'},
                    cell('#| echo: false\n#| output: asis\nshow_doc(f)', md_out),
                    cell('#| include: false\nsecret = 1'),
                    cell('#| echo: false\nprint(1)', {'output_type': 'stream', 'name': 'stdout', 'text': '1\n'}),
                    cell('#| output: false\nx = 2', bar),
                    cell('loop()', {**bar, 'text': ' 10%|#  | 1/10'}, {**bar, 'text': '\r 50%|## | 5/10'}, bar),
                    cell('x', {**md_out, 'data': {'text/plain': ['2']}})]}
    got = docsite.for_pandoc(nb)['cells']
    assert [c['cell_type'] for c in got] == ['markdown', 'code', 'code', 'code', 'code'], got
    assert got[0]['source'] == '### f\ndoc'                                  # asis: the markdown it printed
    assert got[1]['source'] == '' and got[1]['outputs'][0]['text'] == '1\n'  # echo false: output only
    assert got[2]['source'] == 'x = 2' and got[2]['outputs'] == []           # output false
    assert [o['text'] for o in got[3]['outputs']] == ['100%|###| 10/10\n']  # a progress bar's final state, once
    assert got[4]['outputs'][0]['output_type'] == 'display_data' and 'execution_count' not in got[4]['outputs'][0]
    assert got[0]['metadata'] == {'api': 'true'} and all(c['metadata'] == {} for c in got[1:])  # show_doc marked
    assert not any('secret' in str(c.get('source')) for c in got)           # include false
