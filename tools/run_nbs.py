"""Execute notebooks in a real Jupyter kernel (nbclient + ipykernel, as JupyterLab does), slow cells included, and
write their outputs back, so the committed notebooks and the docs site rendered from them show fresh tables and plots.

    python tools/run_nbs.py                          # every notebook in nbs/ (names starting with _ are skipped)
    python tools/run_nbs.py nbs/01_spectral.ipynb    # only these
    python tools/run_nbs.py --skip-slow              # `#| slow` cells keep their stored outputs (`make all`)
    python tools/run_nbs.py --slow-only              # the notebooks with slow cells, all of them run (`make bench`)

Progress: one bar per notebook over its cells; what a cell's own tqdm bar last wrote (a benchmark's progress) is shown
beside it. A failing cell stops the run, naming the notebook and the cell, with its source and traceback; notebooks
finished before it keep their fresh outputs, the failing one keeps its old ones. Each written notebook is cleaned with
`nbdev-clean` so that it is ready to commit.

Stored outputs stay small and clean: progress bars (tqdm writes them to stderr, with carriage returns) are shown live
here and dropped from the notebook, as are the log lines native code writes to stderr (the torch profiler's), and PNG figures are stored as 8-bit palette images (plots have few colours; this
cuts their size several-fold without visible change), deflated by oxipng's zopfli where the docs extra installed it
(lossless, about 10 % more).
"""
from __future__ import annotations
import argparse, os, re, subprocess, sys, time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]

_SLOW = re.compile(r'^\s*#\|\s*slow\b', re.M)  # nbdev's flag for long cells (benchmarks, full training runs)

class _Client(NotebookClient):
    "A `NotebookClient` that moves a progress bar as cells start and mirrors the kernel's tqdm output on it."
    bar: tqdm | None = None
    skip_slow: bool = False  # keep the stored outputs of `#| slow` cells instead of running them

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if self.skip_slow and cell.cell_type == 'code' and _SLOW.search(cell.source): return cell
        return await super().async_execute_cell(cell, cell_index, execution_count, store_history)

    def output(self, outs, msg, display_id, cell_index):
        c = msg.get('content', {})
        if self.bar is not None and msg['msg_type'] == 'stream' and c.get('name') == 'stderr':
            last = [s.strip() for s in re.split(r'[\r\n]', c.get('text', '')) if s.strip()]
            if last: self.bar.set_postfix_str(last[-1][-70:], refresh=True)
        return super().output(outs, msg, display_id, cell_index)

# A tqdm bar as it prints itself: `desc: 40%|####   | 4/10 [00:01<00:02, 2.9it/s]` (or `?it/s`, `s/it`).
_BAR = re.compile(r'(^|: )\s*\d+%\|.*\|\s*\d+/\d+|\d+it \[\d|\[\d+:\d+(<|\]|, )')

# Lines that C++ code writes straight to the process's stderr (the torch profiler's USDT probes, glog-style warnings
# such as `[W1204 09:06:53.19 CPUAllocator.cpp:245] …`): diagnostics of the run, not results.
_NATIVE = re.compile(r'^(USDT:|\[[WI]\d{4} \d\d:\d\d:\d\d)')

def clean_stream(text: str) -> str:
    "Stderr as a terminal would leave it (text after the last carriage return of each line), progress bars and native log lines removed."
    lines = (next((s for s in reversed(l.split('\r')) if s.strip()), '') for l in text.split('\n'))
    return '\n'.join(l for l in lines if not _BAR.search(l) and not _NATIVE.search(l))

PNG_COLORS = 64  # plots have few colours: 64 keep lines, text and colour maps intact at a third less than 256

def shrink_png(b64: str) -> str:
    "A base64 PNG as a palette PNG of at most `PNG_COLORS` colours, deflated by oxipng (lossless; kept as it was if not smaller)."
    import base64, io
    from PIL import Image
    raw = base64.b64decode(b64)
    img = Image.open(io.BytesIO(raw))
    out = raw
    if not (img.mode == 'P' and len(img.getcolors(256) or range(257)) <= PNG_COLORS):  # done before: never re-quantise
        buf = io.BytesIO()
        img.convert('RGB').quantize(colors=PNG_COLORS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(buf, 'PNG', optimize=True)
        out = buf.getvalue()
    try:
        import oxipng  # the docs extra: zopfli's deflate, the same pixels about 10 % smaller
        out = oxipng.optimize_from_memory(out, level=6, deflate=oxipng.Deflaters.zopfli(15))
    except ImportError: pass
    return base64.b64encode(out).decode() if len(out) < len(raw) else b64

def tidy(nb) -> None:
    "Drop progress bars and empty stderr from `nb`'s outputs, and store its PNGs as palette images."
    for c in nb.cells:
        outs = []
        for o in c.get('outputs', []):
            if o.get('output_type') == 'stream' and o.get('name') == 'stderr':
                o['text'] = clean_stream(o['text'])
                if not o['text'].strip(): continue
            if 'image/png' in o.get('data', {}): o['data']['image/png'] = shrink_png(o['data']['image/png'])
            outs.append(o)
        if c.cell_type == 'code': c.outputs = outs

def _cell_label(nb, i: int) -> str:
    "`cell 12 (code cell 7)` and the cell's first source lines, for error messages."
    code_no = sum(c.cell_type == 'code' for c in nb.cells[:i + 1])
    src = '\n'.join('    ' + l for l in nb.cells[i].source.splitlines()[:6])
    return f'cell {i} (code cell {code_no}):\n{src}'

def run(path: Path, timeout: int, kernel: str | None = None, skip_slow: bool = False) -> float:
    "Execute notebook `path` top to bottom in a fresh kernel and write it back; returns the seconds it took."
    nb = nbformat.read(path, as_version=4)
    n_code = sum(c.cell_type == 'code' for c in nb.cells)
    name = kernel or nb.metadata.get('kernelspec', {}).get('name', 'python3')
    # The kernel listens on localhost TCP ports (jupyter's default; ipykernel's IPC transport did not start here) and
    # ipykernel logs "running over TCP without encryption" at startup for every notebook: a kernel log line, not output
    # of a cell. Its log level is raised to ERROR; what cells print (warnings included) is recorded as before.
    client = _Client(nb, timeout=timeout, kernel_name=name, resources={'metadata': {'path': str(path.parent)}},
                     record_timing=False, extra_arguments=['--IPKernelApp.log_level=ERROR'])
    client.skip_slow = skip_slow
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
    tidy(nb)
    nbformat.write(nb, path)
    subprocess.run([str(Path(sys.executable).parent/'nbdev-clean'), '--fname', str(path)], check=True)
    return time.perf_counter() - t0

def main(argv=None) -> int:
    from nbdev.config import get_config
    cfg = get_config(ROOT)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('notebooks', nargs='*', type=Path, help='notebooks to run (default: all in nbs/)')
    ap.add_argument('--timeout', type=int, default=3600, help='seconds one cell may run (default 3600)')
    ap.add_argument('--skip-slow', action='store_true', help='keep the stored outputs of `#| slow` cells (benchmarks) instead of running them')
    ap.add_argument('--slow-only', action='store_true', help='only the notebooks that have `#| slow` cells (all their cells run)')
    a = ap.parse_args(argv)
    nbs = [p.resolve() for p in a.notebooks] or sorted(
        p for p in cfg.nbs_path.rglob('*.ipynb') if not any(s.startswith(('_', '.')) for s in p.relative_to(cfg.nbs_path).parts))
    if a.slow_only: nbs = [p for p in nbs if any(c.cell_type == 'code' and _SLOW.search(c.source) for c in nbformat.read(p, as_version=4).cells)]
    # The kernel imports this checkout's package, not another editable install sharing the venv.
    os.environ['PYTHONPATH'] = os.pathsep.join([str(ROOT)] + ([os.environ['PYTHONPATH']] if os.environ.get('PYTHONPATH') else []))
    total = time.perf_counter()
    for p in nbs:
        secs = run(p, a.timeout, skip_slow=a.skip_slow)
        print(f'{p.relative_to(cfg.nbs_path)}: executed in {secs:.1f}s, outputs written', file=sys.stderr)
    print(f'executed {len(nbs)} notebooks in {time.perf_counter() - total:.0f}s', file=sys.stderr)
    return 0

if __name__ == '__main__': sys.exit(main())
