"""Render the notebooks into an offline static site under `_docs/` (no Quarto, no network needed to read it).

1. nbdev's own processing, as `nbdev-proc-nbs` does it (which would try to download Quarto first): `nbdev.yml`,
   `sidebar.yml`, then `proc_nbs` writes `_proc/` with the frontmatter, the `show_doc` API reference of every exported
   name, the doc links and the rest of nbdev's doc processors applied.
2. The few Quarto cell options nbdev leaves for Quarto (`echo`, `output: asis`, `include`) are applied here, since
   pandoc does not know them: an `output: asis` cell (every `show_doc`) becomes the markdown it printed.
3. pandoc (the binary shipped in the `pypandoc_binary` wheel) renders each notebook to HTML: MathML math (no script,
   no CDN), highlighted code, the notebooks' images extracted beside the pages, and one sidebar in `sidebar.yml` order.

    python tools/docsite.py              # process and render into _docs/
    python tools/docsite.py --no-proc    # render the existing _proc/ only
"""
from __future__ import annotations
import argparse, copy, html, json, os, re, shutil, subprocess, sys, tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
IMAGE_SUFFIXES = {'.png', '.jpg', '.jpeg', '.gif', '.svg', '.webp'}

@contextmanager
def _in_root(root: Path):
    "Run nbdev's config lookups from `root`, with `root`'s package first on the path of every (spawned) worker."
    cwd, pp = os.getcwd(), os.environ.get('PYTHONPATH')
    os.chdir(root)
    os.environ['PYTHONPATH'] = os.pathsep.join([str(root)] + ([pp] if pp else []))
    if str(root) not in sys.path: sys.path.insert(0, str(root))
    try: yield
    finally:
        os.chdir(cwd)
        if pp is None: os.environ.pop('PYTHONPATH', None)
        else: os.environ['PYTHONPATH'] = pp

def process(root: Path = ROOT, file_glob: str = '', n_workers: int = 2) -> Path:
    "Run nbdev's doc processing of `root`'s notebooks into `_proc/` (what `nbdev-proc-nbs` does, minus Quarto)."
    from nbdev.config import get_config
    from nbdev.quarto import refresh_quarto_yml, nbdev_sidebar
    from nbdev.serve import proc_nbs
    with _in_root(root):
        cfg = get_config(root)
        refresh_quarto_yml()                     # nbs/nbdev.yml (generated, git-ignored)
        nbdev_sidebar.__wrapped__(path=cfg.nbs_path)  # nbs/sidebar.yml (generated, git-ignored)
        try: return proc_nbs(str(cfg.nbs_path), n_workers=n_workers, file_glob=file_glob)
        except Exception as e:
            raise RuntimeError(
                f'nbdev doc processing failed: {str(e).splitlines()[0]} (see the cell above)\n'
                'nbdev runs, without the cells above them, the exported cells, show_doc calls and EVERY cell that contains an '
                'import statement: keep imports alone in their cells (nbdev FAQ; STYLE.md).') from e

# ---------------------------------------------------------------- pages and their order

@dataclass
class Page:
    nb: Path           # the processed notebook in _proc/
    href: str          # the page's path in _docs/: the notebook's folder and nbdev's `output-file` (`api/spectral.html`)
    title: str
    description: str

    @property
    def section(self) -> str: return Path(self.href).parent.as_posix().replace('.', '')  # '' (home), 'api', …
    @property
    def up(self) -> str: return '../' * len(Path(self.href).parent.parts)  # from this page back to the site root

# Sections of the navigation, in reading order: reference first, then tutorials, then the benchmarks.
SECTIONS = {'': '', 'api': 'API', 'tutorials': 'Tutorials', 'bench': 'Benchmarks'}

def _frontmatter(nb: dict) -> dict:
    "The YAML frontmatter nbdev's processors put in the first raw cell."
    import yaml
    for c in nb['cells']:
        if c['cell_type'] == 'raw':
            m = re.match(r'\s*---\n(.*?)\n---', ''.join(c['source']), re.S)
            if m: return yaml.safe_load(m.group(1)) or {}
    return {}

def _sidebar_order(proc: Path) -> list[str]:
    "Notebook paths (relative to `proc`) in the order of `sidebar.yml`, sections flattened."
    import yaml
    def walk(items):
        for it in items:
            if isinstance(it, str): yield it
            elif isinstance(it, dict):
                if 'href' in it: yield it['href']
                yield from walk(it.get('contents', []))
    side = proc/'sidebar.yml'
    names = list(walk(yaml.safe_load(side.read_text())['website']['sidebar']['contents'])) if side.exists() else []
    rest = sorted(str(p.relative_to(proc)) for p in proc.rglob('*.ipynb') if str(p.relative_to(proc)) not in names)
    return [n for n in names if (proc/n).exists() and n.endswith('.ipynb')] + rest

def pages(proc: Path) -> list[Page]:
    "Every processed notebook as a page, home page first."
    out = []
    for rel in _sidebar_order(proc):
        nb = json.loads((proc/rel).read_text())
        fm = _frontmatter(nb)
        href = (Path(rel).parent/fm['output-file']).as_posix() if fm.get('output-file') else Path(rel).with_suffix('.html').as_posix()
        out.append(Page(proc/rel, href, str(fm.get('title') or Path(rel).stem), str(fm.get('description') or '')))
    order = list(SECTIONS)
    out.sort(key=lambda p: (p.href != 'index.html', order.index(p.section) if p.section in order else len(order)))
    return out

# ---------------------------------------------------------------- Quarto cell options, applied for pandoc

_re_opt = re.compile(r'^#\|\s*([\w-]+)\s*:\s*(.*?)\s*$')

def _split_options(src: str) -> tuple[dict, str]:
    "Quarto `#| key: value` lines at the top of a code cell, and the code without them."
    lines, opts = src.splitlines(), {}
    while lines and (m := _re_opt.match(lines[0])):
        opts[m.group(1)] = m.group(2).strip('\'"').lower()
        lines.pop(0)
    return opts, '\n'.join(lines)

def _md_cell(text: str) -> dict: return {'cell_type': 'markdown', 'metadata': {}, 'source': text}

def _tidy_outputs(outs: list) -> list:
    "Outputs as pandoc reads them; progress bars in their final state (text after the last carriage return), widgets gone."
    res = []
    for o in outs:
        if 'application/vnd.jupyter.widget-view+json' in o.get('data', {}): continue
        if o.get('output_type') == 'execute_result' and o.get('execution_count') is None:  # nbdev-clean clears counts,
            o = {k: v for k, v in o.items() if k != 'execution_count'} | {'output_type': 'display_data'}  # pandoc needs one
        if o.get('output_type') == 'stream':
            o = {**o, 'text': ''.join(o['text'])}
            if res and res[-1].get('output_type') == 'stream' and res[-1]['name'] == o['name']:
                res[-1]['text'] += o['text']   # a progress bar arrives in many pieces
                continue
        res.append(o)
    for o in res:
        if o.get('output_type') == 'stream':
            o['text'] = '\n'.join(next((s for s in reversed(l.split('\r')) if s.strip()), '') for l in o['text'].split('\n'))
    return [o for o in res if o.get('output_type') != 'stream' or o['text'].strip()]

def for_pandoc(nb: dict) -> dict:
    "A copy of processed notebook `nb` with the Quarto cell options applied and the frontmatter removed."
    nb = copy.deepcopy(nb)
    cells = []
    for c in nb['cells']:
        if c['cell_type'] == 'raw' and _frontmatter({'cells': [c]}): continue
        c['metadata'] = {}   # execution timings and ids would become HTML attributes
        if c['cell_type'] != 'code':
            cells.append(c)
            continue
        opts, src = _split_options(''.join(c['source']))
        c['outputs'] = _tidy_outputs(c.get('outputs', []))
        if opts.get('include') == 'false': continue
        if opts.get('output') == 'false': c['outputs'] = []
        echo = opts.get('echo') != 'false' and src.strip() != ''
        if opts.get('output') == 'asis':
            if echo: cells.append({**c, 'source': src, 'outputs': []})
            for o in c.get('outputs', []):
                d = o.get('data', {})
                if 'text/markdown' in d:
                    cells.append(_md_cell(''.join(d['text/markdown'])))
                    if re.match(r'\s*show_doc\(', src): cells[-1]['metadata'] = {'api': 'true'}  # an API reference
                elif o.get('output_type') == 'stream': cells.append(_md_cell(''.join(o['text'])))
            continue
        c['source'] = src if echo else ''
        if echo or c.get('outputs'): cells.append(c)
    nb['cells'] = cells
    return nb

# ---------------------------------------------------------------- rendering

def pandoc_path() -> str:
    import pypandoc
    return pypandoc.get_pandoc_path()

def _nav(pages_: list[Page], current: Page, title: str) -> str:
    "The sidebar of `current`: every page, grouped by section, linked relative to `current`'s folder."
    here, items, section = Path(current.href).parent, [], None
    for p in pages_:
        if p.section != section:
            section = p.section
            if SECTIONS.get(section, section): items.append(f'<li class="section">{html.escape(SECTIONS.get(section, section))}</li>')
        href = os.path.relpath(p.href, here)
        items.append(f'<li><a href="{href}"{" aria-current=page" if p is current else ""}>{html.escape(p.title)}</a></li>')
    items = '\n'.join(items)
    return (f'<nav id="sidebar" aria-label="Site">\n<a class="site-title" href="{current.up}index.html">{html.escape(title)}</a>\n'
            f'<ul>\n{items}\n</ul>\n</nav>\n')

def render(proc: Path, out: Path, title: str, doc_url: str = '') -> list[Page]:
    "Render every notebook in `proc` into `out` with pandoc; returns the pages in navigation order."
    pages_ = pages(proc)
    if out.exists(): shutil.rmtree(out)
    out.mkdir(parents=True)
    for f in proc.rglob('*'):   # images the markdown cells link to, beside the pages
        if f.suffix.lower() in IMAGE_SUFFIXES and not any(s.startswith(('.', '_')) for s in f.relative_to(proc).parts):
            (out/f.relative_to(proc)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, out/f.relative_to(proc))
    shutil.copy2(HERE/'site.css', out/'site.css')
    links = {str(p.nb.relative_to(proc)): p.href for p in pages_}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp/'links.json').write_text(json.dumps({'prefix': doc_url.rstrip('/') + '/' if doc_url else '', 'nbs': links}))
        for p in pages_:
            stem = Path(p.href).with_suffix('').as_posix().replace('/', '__')
            src = tmp/f'{stem}.ipynb'
            src.write_text(json.dumps(for_pandoc(json.loads(p.nb.read_text()))))
            (tmp/f'{stem}.nav.html').write_text(_nav(pages_, p, title))
            # a metadata file, not --metadata: its values are markdown (`code`, $math$), as Quarto reads them
            meta = {'title': p.title, 'pagetitle': f'{p.title} – {title}', 'description': p.description}
            (tmp/f'{stem}.yml').write_text(''.join(f'{k}: {json.dumps(v)}\n' for k, v in meta.items() if v))
            cmd = [pandoc_path(), str(src), '--from', 'ipynb+link_attributes', '--to', 'html5', '--standalone', '--mathml',
                   '--syntax-highlighting=pygments', '--toc', '--toc-depth=3', '--ipynb-output=best',
                   '--template', str(HERE/'site_template.html'), '--css', f'{p.up}site.css',
                   '--include-before-body', str(tmp/f'{stem}.nav.html'),
                   '--lua-filter', str(HERE/'site.lua'), '--metadata', f'links_file={tmp/"links.json"}',
                   '--metadata', f'page_up={p.up}', '--extract-media', f'{Path(p.href).stem}_files',
                   '--metadata-file', str(tmp/f'{stem}.yml'), '--output', Path(p.href).name]
            (out/p.href).parent.mkdir(parents=True, exist_ok=True)
            r = subprocess.run(cmd, cwd=(out/p.href).parent, capture_output=True, text=True)
            if r.returncode: raise RuntimeError(f'pandoc failed on {p.nb.name}:\n{r.stderr}')
            if r.stderr.strip(): print(f'pandoc on {p.nb.name}: {r.stderr.strip()}', file=sys.stderr)
    return pages_

def build(root: Path = ROOT, out: Path | None = None, proc: bool = True) -> list[Page]:
    "Process `root`'s notebooks with nbdev (unless `proc=False`) and render them into `out` (default `_docs/`)."
    from nbdev.config import get_config
    cfg = get_config(root)
    cache = process(root) if proc else cfg.config_path/'_proc'
    return render(cache, out or cfg.doc_path, cfg.title, cfg.get('doc_url', ''))

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--no-proc', action='store_true', help='render the existing _proc/ without re-processing')
    ap.add_argument('--out', type=Path, default=None, help='output folder (default: the doc_path of pyproject, _docs/)')
    a = ap.parse_args()
    ps = build(ROOT, a.out, proc=not a.no_proc)
    print(f'site: {len(ps)} pages in {(a.out or ROOT/"_docs")}/: ' + ', '.join(p.href for p in ps))
