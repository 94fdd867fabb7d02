"""Execute notebooks in a real Jupyter kernel (nbclient + ipykernel, as JupyterLab does), slow cells included, and
write their outputs back, so the committed notebooks and the docs site rendered from them show fresh tables and plots.

    python tools/run_nbs.py                          # every notebook in nbs/ (names starting with _ are skipped)
    python tools/run_nbs.py nbs/01_spectral.ipynb    # only these

Progress: one bar per notebook over its cells; what a cell's own tqdm bar last wrote (a benchmark's progress) is shown
beside it. A failing cell stops the run, naming the notebook and the cell, with its source and traceback; notebooks
finished before it keep their fresh outputs, the failing one keeps its old ones. Each written notebook is cleaned with
`nbdev-clean` so that it is ready to commit.
"""
from __future__ import annotations
import argparse, os, re, subprocess, sys, time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]

class _Client(NotebookClient):
    "A `NotebookClient` that moves a progress bar as cells start and mirrors the kernel's tqdm output on it."
    bar: tqdm | None = None

    def output(self, outs, msg, display_id, cell_index):
        c = msg.get('content', {})
        if self.bar is not None and msg['msg_type'] == 'stream' and c.get('name') == 'stderr':
            last = [s.strip() for s in re.split(r'[\r\n]', c.get('text', '')) if s.strip()]
            if last: self.bar.set_postfix_str(last[-1][-70:], refresh=True)
        return super().output(outs, msg, display_id, cell_index)

def _cell_label(nb, i: int) -> str:
    "`cell 12 (code cell 7)` and the cell's first source lines, for error messages."
    code_no = sum(c.cell_type == 'code' for c in nb.cells[:i + 1])
    src = '\n'.join('    ' + l for l in nb.cells[i].source.splitlines()[:6])
    return f'cell {i} (code cell {code_no}):\n{src}'

def run(path: Path, timeout: int, kernel: str | None = None) -> float:
    "Execute notebook `path` top to bottom in a fresh kernel and write it back; returns the seconds it took."
    nb = nbformat.read(path, as_version=4)
    n_code = sum(c.cell_type == 'code' for c in nb.cells)
    client = _Client(nb, timeout=timeout, kernel_name=kernel or nb.metadata.get('kernelspec', {}).get('name', 'python3'),
                     resources={'metadata': {'path': str(path.parent)}}, record_timing=False)
    state = {'cell': 0}
    def start(cell, cell_index, **_):
        state['cell'] = cell_index
        if cell.cell_type == 'code': client.bar.update(1)
    client.on_cell_start = start
    t0 = time.perf_counter()
    with tqdm(total=n_code, desc=path.name, unit='cell', dynamic_ncols=True, file=sys.stderr) as client.bar:
        try: client.execute()
        except CellExecutionError as e:
            client.bar.close()
            raise SystemExit(f'\nFAILED: {path.relative_to(ROOT)}, {_cell_label(nb, state["cell"])}\n{e}') from None
    nbformat.write(nb, path)
    subprocess.run([str(Path(sys.executable).parent/'nbdev-clean'), '--fname', str(path)], check=True)
    return time.perf_counter() - t0

def main(argv=None) -> int:
    from nbdev.config import get_config
    cfg = get_config(ROOT)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('notebooks', nargs='*', type=Path, help='notebooks to run (default: all in nbs/)')
    ap.add_argument('--timeout', type=int, default=3600, help='seconds one cell may run (default 3600)')
    a = ap.parse_args(argv)
    nbs = [p.resolve() for p in a.notebooks] or sorted(p for p in cfg.nbs_path.glob('*.ipynb') if not p.name.startswith('_'))
    # The kernel imports this checkout's package, not another editable install sharing the venv.
    os.environ['PYTHONPATH'] = os.pathsep.join([str(ROOT)] + ([os.environ['PYTHONPATH']] if os.environ.get('PYTHONPATH') else []))
    total = time.perf_counter()
    for p in nbs:
        secs = run(p, a.timeout)
        print(f'{p.name}: executed in {secs:.1f}s, outputs written', file=sys.stderr)
    print(f'executed {len(nbs)} notebooks in {time.perf_counter() - total:.0f}s', file=sys.stderr)
    return 0

if __name__ == '__main__': sys.exit(main())
