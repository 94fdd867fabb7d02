"""The house rules that no notebook can check about itself: the library is only the library."""
import ast, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / 'linear_contraction'
# What benchmark, plotting, progress and result-file code needs; a library module has no use for any of them.
NOT_IN_LIBRARY = {'json', 'time', 'pathlib', 'platform', 'matplotlib', 'tqdm', 'IPython'}

def _imports(path: Path) -> set[str]:
    "Every module `path` imports, anywhere in the file (relative imports as '.name')."
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import): out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom): out.add('.' * node.level + (node.module or ''))
    return out

def test_library_modules_import_no_benchmark_code():
    mods = [p for p in LIB.glob('*.py') if p.name != '_modidx.py']
    assert len(mods) >= 9, mods
    for p in mods:
        imp = _imports(p)
        top = {m.split('.')[0] for m in imp}
        assert not top & NOT_IN_LIBRARY, f'{p.name} imports {sorted(top & NOT_IN_LIBRARY)}: benchmark code belongs in bench/'
        bench = [m for m in imp if m.startswith(('.bench', 'linear_contraction.bench'))]
        assert not bench, f'{p.name} imports the benchmark package: {bench}'

def test_import_loads_only_the_library():
    "After `import torch`, `import linear_contraction` adds only library modules: no bench, matplotlib, tqdm or json."
    code = ('import sys, torch; before = set(sys.modules); import linear_contraction; '
            'print(" ".join(sorted(set(sys.modules) - before)))')
    new = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert new and all(m.startswith('linear_contraction') for m in new), new
    assert not [m for m in new if m.startswith('linear_contraction.bench')], new
    # torch itself may load tqdm and json; whatever it loads, the library must not be what pulls in the rest
    code2 = 'import sys, linear_contraction; print(" ".join(m for m in ("matplotlib", "linear_contraction.bench") if m in sys.modules))'
    assert subprocess.run([sys.executable, '-c', code2], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip() == ''

def test_public_api_is_curated():
    import linear_contraction as lc
    # curated, not counted (a new public name is a decision, not a test failure): no duplicates, each one documented
    assert len(set(lc.__all__)) == len(lc.__all__)
    assert not [n for n in lc.__all__ if not (getattr(lc, n).__doc__ or '').strip()], 'public names without a docstring'
    assert all(hasattr(lc, n) for n in lc.__all__)
    assert not [n for n in dir(lc) if not n.startswith('_') and n not in lc.__all__
                and not isinstance(getattr(lc, n), type(lc))], 'top-level names outside __all__'

def test_import_registers_no_global_hook():
    "Importing the package changes nothing global: the optimizer post-step hook comes with the first constraint."
    code = ('import torch, linear_contraction; from torch.optim import optimizer as o; n0 = len(o._global_optimizer_post_hooks); '
            'linear_contraction.LinearContraction(3, 3); print(n0, len(o._global_optimizer_post_hooks))')
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert out == ['0', '1'], out
