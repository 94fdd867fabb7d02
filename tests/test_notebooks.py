"""One pytest case per notebook, each run once through nbdev's own `test_nb` (slow-flagged cells skipped)."""
from pathlib import Path

import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as _run_notebook  # renamed so that pytest does not collect it

ROOT = Path(__file__).resolve().parents[1]
CFG = get_config(ROOT)
SKIP_FLAGS = CFG.tst_flags.split() if isinstance(CFG.tst_flags, str) else list(CFG.tst_flags)
NOTEBOOKS = sorted(p for p in CFG.nbs_path.rglob('*.ipynb')
                   if not any(s.startswith(('_', '.')) for s in p.relative_to(CFG.nbs_path).parts))

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=lambda p: p.relative_to(CFG.nbs_path).with_suffix('').as_posix())
def test_notebook(nb: Path):
    ok, secs = _run_notebook(nb, skip_flags=SKIP_FLAGS, basepath=ROOT, cell_timeout=CFG.cell_timeout)
    assert ok, f'{nb.name} failed after {secs:.1f}s: the failing cell and its traceback are printed above'
