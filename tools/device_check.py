"""LinearContraction's guarantee and cost on an accelerator: the same checks as the notebooks, on `cuda`.

    python tools/device_check.py                 # on cuda; says plainly and exits 0 when there is no GPU
    python tools/device_check.py --device cpu    # the same checks on the CPU (to try the script anywhere)

1. The guarantee: a two-layer model trained with Adam (target of gain 3, so the constraint is active), eager and under
   torch.compile, float32 and float64: the σ_max (float64 SVD on the device) of the weight each forward used, read back
   from the forward itself, never exceeds c·(1 + 1e-5) (float32) / c·(1 + 1e-6) (float64); certificates run on the
   weight's device.
2. The exact gradient: central finite differences of a loss through the layer (float64, on the device) against its
   backward, with the scale active.
3. The cost: a training step of LinearContraction against nn.Linear and against the floor (float64 Gram product +
   Cholesky of the weight, on the device), medians of interleaved repeats with device synchronisation.
"""
from __future__ import annotations
import argparse, sys, time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from linear_contraction import LinearContraction  # noqa: E402


def sigma(W: torch.Tensor) -> float:
    "σ_max in float64 on W's own device (the independent truth)."
    return torch.linalg.matrix_norm(W.detach().double(), 2).item()


def guarantee(dev: str, dtype: torch.dtype, compiled: bool, n: int = 256, steps: int = 30) -> float:
    "Largest σ/c of the weights a model's forwards used during Adam training on `dev`."
    torch.manual_seed(0)
    model = nn.Sequential(LinearContraction(n, n, c=1.0), nn.ReLU(), LinearContraction(n, n, c=0.5)).to(dev, dtype)
    fwd = torch.compile(model) if compiled else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator(device='cpu').manual_seed(1)
    Q = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))[0].to(dev, dtype)
    eye = torch.eye(n, device=dev, dtype=dtype)
    worst = 0.0
    for _ in range(steps):
        x = torch.randn(64, n, generator=g, dtype=torch.float64).to(dev, dtype)
        opt.zero_grad(); F.mse_loss(fwd(x), 3 * x @ Q.T).backward(); opt.step()
        with torch.no_grad():  # read back the weights the forward uses: apply each layer to the identity
            for layer, c in ((model[0], 1.0), (model[2], 0.5)):
                used = (layer(eye) - layer.bias).T
                worst = max(worst, sigma(used) / c)
    return worst


def fd_error(dev: str) -> float:
    "Relative error of the weight gradient against central finite differences, float64 on `dev`, scale active."
    torch.manual_seed(0)
    layer = LinearContraction(5, 4, c=0.7, dtype=torch.float64).to(dev)
    with torch.no_grad(): layer.weight.mul_(3 * 0.7 / sigma(layer.weight))
    x = torch.randn(3, 5, dtype=torch.float64, device=dev); gy = torch.randn(3, 4, dtype=torch.float64, device=dev)
    loss = lambda: (layer(x) * gy).sum()
    loss().backward(); g = layer.weight.grad.clone()
    fd, h = torch.zeros_like(g), 1e-6
    with torch.no_grad():
        for i in range(4):
            for j in range(5):
                w0 = layer.weight[i, j].item()
                layer.weight[i, j] = w0 + h; fp = loss().item()
                layer.weight[i, j] = w0 - h; fm = loss().item()
                layer.weight[i, j] = w0
                fd[i, j] = (fp - fm) / (2 * h)
    return ((g - fd).norm() / g.norm()).item()


def cost(dev: str, n: int, batch: int, reps: int = 7) -> dict:
    "Median seconds of a training step of nn.Linear and LinearContraction and of the floor, interleaved, on `dev`."
    sync = torch.cuda.synchronize if dev.startswith('cuda') else (lambda: None)
    torch.manual_seed(0)
    lin, lc = nn.Linear(n, n).to(dev), LinearContraction(n, n).to(dev)
    with torch.no_grad(): lc.weight.copy_(lin.weight); lc.bias.copy_(lin.bias)
    x = torch.randn(batch, n, device=dev); y = 3 * x @ torch.linalg.qr(torch.randn(n, n, device=dev))[0].T

    def trainer(layer):
        opt = torch.optim.Adam(layer.parameters(), lr=1e-3)
        def run(k):
            sync(); t0 = time.perf_counter()
            for _ in range(k): opt.zero_grad(set_to_none=True); F.mse_loss(layer(x), y).backward(); opt.step()
            sync(); return (time.perf_counter() - t0) / k
        return run

    def floor(k):
        W64 = lc.weight.detach().double()
        sync(); t0 = time.perf_counter()
        for _ in range(k): torch.linalg.cholesky_ex(W64.mT @ W64)
        sync(); return (time.perf_counter() - t0) / k

    timers = {'nn.Linear': trainer(lin), 'LinearContraction': trainer(lc), 'floor': floor}
    for t in timers.values(): t(3)
    samples = {k: [] for k in timers}
    for _ in range(reps):
        for k, t in timers.items(): samples[k].append(t(5))
    med = {k: sorted(v)[len(v) // 2] for k, v in samples.items()}
    med['routes'] = dict(lc.constraint.cert.routes)
    return med


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--device', default='cuda', help="'cuda' (default) or 'cpu'")
    a = ap.parse_args(argv)
    if a.device.startswith('cuda') and not torch.cuda.is_available():
        print('No CUDA device is available on this machine: nothing was checked. Run this script on a machine with a GPU '
              '(or pass --device cpu to run the same checks on the CPU).')
        return 0
    name = torch.cuda.get_device_name(a.device) if a.device.startswith('cuda') else 'CPU'
    print(f'device: {a.device} ({name}), torch {torch.__version__}')
    ok = True
    for dtype, tol in ((torch.float32, 1e-5), (torch.float64, 1e-6)):
        for compiled in (False, True):
            w = guarantee(a.device, dtype, compiled)
            good = w <= 1 + tol
            ok &= good
            print(f'guarantee {str(dtype):14} {"compiled" if compiled else "eager   "}: max σ(W_eff)/c = {w:.8f} '
                  f'({"ok" if good else "VIOLATED"}, allowance 1 + {tol:g})', flush=True)
    e = fd_error(a.device)
    ok &= e <= 1e-6
    print(f'weight gradient vs central finite differences (float64): relative error {e:.1e} ({"ok" if e <= 1e-6 else "TOO LARGE"})')
    for n in (256, 1024, 4096):
        for batch in (32, 1024):
            r = cost(a.device, n, batch)
            lin, lc, fl = r['nn.Linear'], r['LinearContraction'], r['floor']
            print(f'cost n={n:5d} batch={batch:5d}: nn.Linear {1e3 * lin:8.3f} ms, floor {1e3 * fl:8.3f} ms, '
                  f'LinearContraction {1e3 * lc:8.3f} ms = {lc / lin:6.2f}x nn.Linear = {lc / (lin + fl):5.2f}x (nn.Linear + floor); '
                  f'routes {r["routes"]}', flush=True)
    print('all checks passed' if ok else 'SOME CHECKS FAILED')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
