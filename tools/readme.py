"""Write README.md from `nbs/index.ipynb` offline (`nbdev-readme` needs Quarto, which is not installable here).

nbdev's own doc processing (`_proc/index.ipynb`: frontmatter, doc links, show_doc), the Quarto cell options applied as
for the site (`tools/docsite.py`), then pandoc to GitHub markdown. Images the notebook draws go to `index_files/`
(pandoc names them by content hash, so an unchanged figure keeps its name), as `nbdev-readme` does.

    python tools/readme.py            # rewrite README.md (and index_files/)
    python tools/readme.py --check    # exit 1 if the committed README.md is not what index.ipynb gives
"""
from __future__ import annotations
import argparse, json, shutil, subprocess, sys, tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import docsite

def render(root: Path = ROOT) -> tuple[str, dict]:
    "README text and its images ({relative path: bytes}) from `root`'s readme notebook."
    from nbdev.config import get_config
    cfg = get_config(root)
    proc = docsite.process(root, file_glob=cfg.readme_nb)
    nb = json.loads((proc/cfg.readme_nb).read_text())
    fm = docsite._frontmatter(nb)
    media = Path(cfg.readme_nb).stem + '_files'
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp/'index.ipynb').write_text(json.dumps(docsite.for_pandoc(nb)))
        r = subprocess.run([docsite.pandoc_path(), 'index.ipynb', '--from', 'ipynb+link_attributes', '--to', 'gfm',
                            '--wrap=preserve', '--ipynb-output=best', '--lua-filter', str(HERE/'readme.lua'),
                            '--extract-media', media], cwd=tmp, capture_output=True, text=True)
        if r.returncode: raise RuntimeError(f'pandoc failed on {cfg.readme_nb}:\n{r.stderr}')
        images = {str(f.relative_to(tmp)): f.read_bytes() for f in (tmp/media).rglob('*') if f.is_file()}
    head = f"# {fm.get('title', cfg.title)}\n\n" + (f"> {fm['description']}\n\n" if fm.get('description') else '')
    return head + r.stdout, images

def write(root: Path = ROOT) -> list[str]:
    "Rewrite README.md and its image folder; returns the files written."
    text, images = render(root)
    (root/'README.md').write_text(text)
    for d in {Path(p).parts[0] for p in images} | {'index_files'}:
        shutil.rmtree(root/d, ignore_errors=True)
    for p, b in images.items():
        (root/p).parent.mkdir(parents=True, exist_ok=True)
        (root/p).write_bytes(b)
    return ['README.md', *sorted(images)]

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--check', action='store_true', help='only compare with the committed README.md; exit 1 if stale')
    a = ap.parse_args()
    if a.check:
        text, images = render(ROOT)
        stale = [p for p, b in [('README.md', text.encode()), *images.items()]
                 if not (ROOT/p).exists() or (ROOT/p).read_bytes() != b]
        if stale: sys.exit(f'README is stale ({", ".join(stale)}): run `python tools/readme.py` and commit the result.')
        print('README.md is up to date with nbs/index.ipynb.')
    else: print('wrote', *write(ROOT))
