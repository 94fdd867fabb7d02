"""The long runs behind `LinearContraction` and `contraction()`'s guarantee (nbs/api/04_contraction.ipynb shows one of each):
adversarial training against float64 SVD, finite-difference gradients, compiled training with every optimizer, DDP, and
convolutions under stress against their explicit operators."""
import math, os, socket, subprocess, sys, tempfile, textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import linear_contraction
from linear_contraction.constraint import MODES
from linear_contraction.contraction import LinearContraction, contraction
from helpers import central_differences, conv_operator_norm, sigma_max


def stress(dtype, mode='clip', c=1.0, seed=0, steps=25):
    "Adversarial updates; the largest σ(W_eff)/c and the smallest σ(W_eff)/min(c, σ(W)) (clip) or σ(W_eff)/c (normalise)."
    g = torch.Generator().manual_seed(seed)
    worst, tight = 0.0, math.inf
    def check(layer):
        nonlocal worst, tight
        layer(torch.randn(8, layer.in_features, generator=g, dtype=dtype))  # the forward that must see the change
        s, sw = sigma_max(layer.constraint(layer.weight)), sigma_max(layer.weight)
        worst = max(worst, s / c)
        tight = min(tight, s / (min(c, sw) if mode == 'clip' else c) if sw > 0 else 1.0)
    for shape in ((3, 2), (40, 64), (64, 40)):
        torch.manual_seed(seed)
        layer = LinearContraction(shape[1], shape[0], c=c, mode=mode, dtype=dtype)
        check(layer)
        for opt in (torch.optim.SGD(layer.parameters(), lr=0.5), torch.optim.Adam(layer.parameters(), lr=1.0)):
            for _ in range(steps):
                x = torch.randn(16, shape[1], generator=g, dtype=dtype)
                y = 3 * torch.randn(16, shape[0], generator=g, dtype=dtype)
                opt.zero_grad(); F.mse_loss(layer(x), y).backward(); opt.step()
                check(layer)
        other = LinearContraction(shape[1], shape[0], c=c, mode=mode, dtype=dtype)
        with torch.no_grad(): other.weight.mul_(10)
        layer.load_state_dict(other.state_dict()); check(layer)
        layer.weight = nn.Parameter(torch.randn(shape, generator=g, dtype=dtype) * 5); check(layer)
        with torch.no_grad(): layer.weight.copy_(torch.randn(shape, generator=g, dtype=dtype) * 0.01); check(layer)
        # crossing: the warm vector is the top singular vector of diag(2, …, 1); then the order swaps
        D = torch.zeros(shape, dtype=dtype); k = min(shape)
        D[range(k), range(k)] = torch.linspace(2.0, 1.0, k, dtype=dtype)
        with torch.no_grad(): layer.weight.copy_(D); check(layer)
        D2 = D.clone(); D2[0, 0], D2[k - 1, k - 1] = 1.0, 2.5
        with torch.no_grad(): layer.weight.copy_(D2); check(layer)
    return worst, tight


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64], ids=['float32', 'float64'])
@pytest.mark.parametrize('mode', ['clip', 'normalise'])
def test_stress(dtype, mode):
    worst, tight = stress(dtype, mode)
    assert worst <= 1 + (1e-5 if dtype == torch.float32 else 1e-6)
    assert tight >= 1 - 1e-4


@pytest.mark.parametrize('seed', range(3))
def test_stress_small_c(seed):
    worst, tight = stress(torch.float64, 'clip', c=0.3, seed=seed, steps=10)
    assert worst <= 1 + 1e-6 and tight >= 1 - 1e-4


@pytest.mark.parametrize('shape', [(7, 4), (4, 7), (6, 6)], ids=str)
@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('s', [3.0, 0.5], ids=['active', 'inactive'])
def test_gradient_finite_differences(shape, mode, s, c=0.7):
    "In float64 the weight gradient is the derivative of the map the forward computes (each perturbed forward re-certified)."
    torch.manual_seed(0)
    m, n = shape
    layer = LinearContraction(n, m, c=c, mode=mode, dtype=torch.float64)
    with torch.no_grad(): layer.weight.mul_(s * c / torch.linalg.matrix_norm(layer.weight, 2))
    x, gy = torch.randn(5, n, dtype=torch.float64), torch.randn(5, m, dtype=torch.float64)
    loss = lambda: (layer(x) * gy).sum()
    layer.zero_grad(); loss().backward(); g = layer.weight.grad.clone()
    fd = central_differences(loss, layer.weight)
    assert ((g - fd).norm() / g.norm()).item() <= 1e-6
    routes = layer.constraint.cert.routes  # the perturbed forwards were settled by Weyl's bound, without new factorisations
    assert routes['cholesky'] <= 3 and routes['weyl'] >= 4 * min(m, n)


def compiled_training(kind, fullgraph, opt_name, steps=15, **opt_kw):
    "Train through torch.compile; the largest σ of the weight the compiled forward used (read back from it)."
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = LinearContraction(32, 32) if kind == 'LinearContraction' else contraction(nn.Linear(32, 32))
    compiled = torch.compile(model, fullgraph=fullgraph)
    opt = getattr(torch.optim, opt_name)(model.parameters(), lr=1e-2, **opt_kw)
    g = torch.Generator().manual_seed(1)
    Q = torch.linalg.qr(torch.randn(32, 32, generator=g))[0]
    eye, worst = torch.eye(32), 0.0
    for _ in range(steps):
        x = torch.randn(16, 32, generator=g)
        opt.zero_grad(); F.mse_loss(compiled(x), 3 * x @ Q.T).backward(); opt.step()
        with torch.no_grad(): w_eval = (compiled(eye) - model.bias).T   # x ↦ W_eff x + b on the identity: W_effᵀ + b
        w_train = (compiled(eye) - model.bias).T
        worst = max(worst, sigma_max(w_eval), sigma_max(w_train))
    return worst


OPTIMIZERS = [('SGD', {}), ('Adam', {}), ('AdamW', {}), ('Adam', {'foreach': False}), ('Adam', {'fused': True}), ('SGD', {'fused': True})]

@pytest.mark.parametrize('kind', ['LinearContraction', 'contraction(nn.Linear)'])
@pytest.mark.parametrize('fullgraph', [False, True], ids=['graph-breaks-allowed', 'fullgraph'])
@pytest.mark.parametrize('opt', OPTIMIZERS, ids=lambda o: o[0] + ''.join(f'-{k}' for k in o[1]))
def test_compiled_training(kind, fullgraph, opt):
    worst = compiled_training(kind, fullgraph, opt[0], **opt[1])
    assert 1 - 1e-4 <= worst <= 1 + 1e-5   # bounded, and tight: the target pushes σ up, the layer holds it at c


DDP_SCRIPT = textwrap.dedent('''
    import os, sys, torch, torch.distributed as dist, torch.multiprocessing as mp
    import torch.nn.functional as F
    from linear_contraction.contraction import LinearContraction
    def data():
        g = torch.Generator().manual_seed(3)
        return [(torch.randn(8, 12, generator=g, dtype=torch.float64), torch.randn(8, 6, generator=g, dtype=torch.float64)) for _ in range(4)]
    def train(layer, rank=None):
        opt = torch.optim.SGD(layer.parameters(), lr=0.5)
        for x, y in data():
            if rank is not None: x, y = x[4*rank:4*rank + 4], y[4*rank:4*rank + 4]
            opt.zero_grad(); F.mse_loss(layer(x), y).backward(); opt.step()
    def worker(rank, path):
        os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=sys.argv[2])
        dist.init_process_group('gloo', rank=rank, world_size=2)
        torch.manual_seed(0)
        layer = LinearContraction(12, 6, dtype=torch.float64)
        ddp = torch.nn.parallel.DistributedDataParallel(layer)
        train(ddp, rank)
        torch.save({k: v.clone() for k, v in layer.state_dict().items()}, f'{path}/rank{rank}.pt')
        dist.destroy_process_group()
    if __name__ == '__main__':
        mp.spawn(worker, args=(sys.argv[1],), nprocs=2, join=True)
        torch.manual_seed(0)
        single = LinearContraction(12, 6, dtype=torch.float64)
        train(single)
        torch.save(single.state_dict(), f'{sys.argv[1]}/single.pt')
''')

def test_ddp():
    "Two gloo processes with DistributedDataParallel on halves of a batch agree with each other and with one process on all of it."
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / 'ddp.py').write_text(DDP_SCRIPT)
        env = {**os.environ, 'PYTHONPATH': str(Path(linear_contraction.__file__).parents[1])}
        p = subprocess.run([sys.executable, str(Path(tmp) / 'ddp.py'), tmp, str(port)], capture_output=True, text=True, timeout=120, env=env)
        assert p.returncode == 0, p.stderr[-3000:]
        r0, r1, single = (torch.load(Path(tmp) / f, weights_only=True) for f in ('rank0.pt', 'rank1.pt', 'single.pt'))
    for k in r0:
        torch.testing.assert_close(r0[k], r1[k], rtol=0, atol=0)
        torch.testing.assert_close(r0[k], single[k], rtol=1e-10, atol=1e-12)
    assert sigma_max(r0['weight'] * r0['constraint._scale']) <= 1 + 1e-6


def conv_stress(make, sizes, c=0.8, steps=12, seed=0, guarantee='seen', **opt_kw):
    "Train `make()` under contraction to amplify its input; the largest true σ used (explicit operators) at the sizes in force, over c."
    torch.manual_seed(seed)
    m = contraction(make(), c=c, sizes=guarantee)
    opt = torch.optim.Adam(m.parameters(), lr=0.1, **opt_kw)
    worst = 0.0
    for step in range(steps):
        size = sizes[step % len(sizes)]
        x = torch.randn(4, m.in_channels, *size)
        opt.zero_grad(); (-m(x).square().mean()).backward(); opt.step()
        if step == 5:
            with torch.no_grad(): m.parametrizations.weight.original.mul_(30)          # a jump
        if step == 8:
            m.load_state_dict({k: (v * 10 if k.endswith('original') else v) for k, v in m.state_dict().items()})  # a large kernel
        with torch.no_grad(): m(x)
        in_force = sizes if guarantee == 'all' else sizes[:step + 1]  # 'seen': the sizes called so far
        worst = max(worst, *(conv_operator_norm(m, s) for s in in_force))
    return worst / c


CONV_LAYERS = {
    'Conv2d 3x3 zeros': (lambda: nn.Conv2d(3, 4, 3, padding=1), [(5, 5), (9, 9)]),
    'Conv2d 4x4 stride 2 reflect': (lambda: nn.Conv2d(3, 4, 4, stride=2, padding=1, padding_mode='reflect'), [(6, 6), (9, 9)]),
    'Conv2d 3x3 dilation 2 circular': (lambda: nn.Conv2d(2, 4, 3, padding=2, dilation=2, padding_mode='circular'), [(5, 5), (8, 8)]),
    'Conv2d 2x2 groups 2 replicate': (lambda: nn.Conv2d(4, 4, 2, padding=1, groups=2, padding_mode='replicate'), [(4, 4), (7, 7)]),
    'Conv1d 5 stride 2 zeros': (lambda: nn.Conv1d(3, 5, 5, stride=2, padding=2), [(7,), (16,)]),
}

@pytest.mark.parametrize('name', list(CONV_LAYERS))
def test_conv_stress(name):
    assert conv_stress(*CONV_LAYERS[name]) <= 1.0

def test_conv_stress_fused_adam():
    assert conv_stress(*CONV_LAYERS['Conv2d 3x3 zeros'], fused=True) <= 1.0

@pytest.mark.parametrize('name', ['Conv2d 3x3 zeros', 'Conv2d 4x4 stride 2 reflect'])
def test_conv_stress_all_sizes(name):   # the all-sizes guarantee: both sizes in force from the first step
    assert conv_stress(*CONV_LAYERS[name], guarantee='all') <= 1.0

@pytest.mark.parametrize('name', ['Conv2d 3x3 zeros', 'Conv2d 2x2 groups 2 replicate', 'Conv1d 5 stride 2 zeros'])
def test_conv_stress_screened(name, monkeypatch):   # the cheap per-point bounds (Frobenius, Weyl carry) on every refresh
    import linear_contraction.conv_norm as conv_norm
    monkeypatch.setattr(conv_norm, '_SCREEN_MIN', 0)
    assert conv_stress(*CONV_LAYERS[name]) <= 1.0
    assert conv_stress(*CONV_LAYERS[name], steps=24, seed=1) <= 1.0


def test_orthogonal_conv_compiled_and_exported():
    "OrthogonalConv2d under torch.compile (fullgraph) and torch.export: the eager values, a backward, and the band at a size first seen compiled."
    from linear_contraction import OrthogonalConv2d
    torch.manual_seed(0)
    m = OrthogonalConv2d(3, 3, 3)
    x = torch.randn(2, 3, 5, 5)
    ref = m(x)
    cm = torch.compile(m, fullgraph=True)
    torch.testing.assert_close(cm(x), ref, rtol=0, atol=1e-6)
    cm(x).square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    x2 = torch.randn(2, 3, 4, 6)
    y2 = cm(x2)   # a new size: proven by the compiled graph before use
    assert (4, 6) in m.conv.parametrizations.weight[0].sizes
    E = torch.eye(72).reshape(72, 3, 4, 6)
    with torch.no_grad(): M = (m(E) - m.bias[:, None, None]).reshape(72, 72).double()
    s = torch.linalg.svdvals(M)
    assert s.max() <= m.c*(1 + 1e-5) and s.min() >= m.c*(1 - m.tail)/(1 + m.tail) - 1e-5   # float32 evaluation of the series
    torch.testing.assert_close(y2, m(x2), rtol=0, atol=1e-6)
    ref = m(x)   # with 4×6 in force too, the inner kernel is the one proven for both sizes
    ep = torch.export.export(m, (x,))
    torch.testing.assert_close(ep.module()(x), ref, rtol=0, atol=1e-6)
