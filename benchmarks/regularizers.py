"""Cost of one training step with each robustness regularizer, side by side, and the accuracy of
the fast ISO estimate.

Every method takes one SGD step (forward, backward, optimizer step; Parseval adds its retraction)
on the same model weights and the same batch: the weights are restored before each timed step.
Methods run in rotating order within each round, so a busy or throttled machine slows them
alike; the ratio to cross-entropy is the median over rounds of the per-round ratio.

    python benchmarks/regularizers.py                  # LeNet, batch 128 of the MNIST subset
    python benchmarks/regularizers.py --model small_cnn --random-data --device cuda

Then the fast ISO value (and the forward-mode sketch's) is compared with the exact one over
several batches, at initialization and after a few epochs of plain training (the penalty's
spread across inputs grows with training). The last line printed is
``iso_exact_ratio: X.XX  iso_fast_ratio: Y.YY`` (time per step relative to cross-entropy).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F

from georobust.regularizers.iso import iso_objective, iso_penalty
from georobust.regularizers.jacobian import jacobian_objective
from georobust.core.models import MODELS, build
from georobust.regularizers.parseval import parseval_retraction
from georobust.core.train import train_step


def get_data(args, n: int):
    if args.random_data:
        g = torch.Generator().manual_seed(args.seed)
        return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g), "random data"
    from georobust.core.data import load_subset

    split = load_subset("train")
    return split.images[:n], split.labels[:n], split.name


def ce_objective(model, x, y, generator=None):
    z = model(x)
    return F.cross_entropy(z, y), z


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_step(model, objective, after, device, seed):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    gen = torch.Generator(device=device).manual_seed(seed)

    def step(x, y):
        train_step(model, opt, x, y, objective=objective, generator=gen, after_step=after)
    return step, opt


def time_steps(args, device, x, y):
    eps, eta = args.eps, args.eta
    methods = {
        "CE": (ce_objective, None),
        "ISO exact": (iso_objective(eps, eta, "exact"), None),
        f"ISO fast ({args.num_samples} exact inputs + control variate)": (
            iso_objective(eps, eta, "fast", num_samples=args.num_samples), None),
        f"ISO jvp (forward mode, {args.num_probes} probes)": (
            iso_objective(eps, eta, "jvp", num_probes=args.num_probes), None),
        "ISO-Euclidean fast": (iso_objective(eps, eta, "fast", metric="euclidean", num_samples=args.num_samples), None),
        "JAC (1 projection)": (jacobian_objective(args.lam, nproj=1), None),
        "Parseval (CE + retraction)": (ce_objective, parseval_retraction),
    }
    base = build(args.model, seed=args.seed).to(device)
    init = copy.deepcopy(base.state_dict())
    steppers = {}
    for i, (name, (obj, after)) in enumerate(methods.items()):
        model = copy.deepcopy(base)
        step, opt = make_step(model, obj, after, device, args.seed + i)
        steppers[name] = (model, step, opt, copy.deepcopy(opt.state_dict()))
    times = {name: [] for name in methods}
    names = list(methods)
    for r in range(args.warmup + args.reps):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            model, step, opt, opt_state = steppers[name]
            model.load_state_dict(init)
            opt.load_state_dict(opt_state)
            sync(device)
            t0 = time.perf_counter()
            step(x, y)
            sync(device)
            if r >= args.warmup:
                times[name].append(time.perf_counter() - t0)
    ratios = {n: statistics.median(t / c for t, c in zip(times[n], times["CE"])) for n in names}
    return {n: statistics.median(times[n]) for n in names}, ratios


def value_errors(args, device, images, labels, epochs: int):
    """Mean relative error (and mean signed error) of the fast and jvp ISO values vs exact."""
    model = build(args.model, seed=args.seed).to(device)
    if epochs:
        from georobust.core.train import train

        train(model, images, labels, epochs=epochs, lr=0.01, batch_size=args.batch_size,
              seed=args.seed, progress=False)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    rel = {"fast": [], "jvp": []}
    exact_vals = []
    n = len(labels)
    for b in range(args.value_batches):
        idx = torch.randperm(n, generator=torch.Generator().manual_seed(args.seed + b))[:args.batch_size]
        x = images[idx].to(device)
        exact = iso_penalty(model, x, args.eps, "exact").item()
        exact_vals.append(exact)
        for method in rel:
            est = iso_penalty(model, x, args.eps, method, num_samples=args.num_samples,
                              num_probes=args.num_probes, generator=gen).item()
            rel[method].append(est / exact - 1)
    return exact_vals, rel


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="lenet", choices=sorted(MODELS))
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--random-data", action="store_true", help="uniform random images instead of MNIST")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--reps", type=int, default=7, help="timed rounds (median)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--eps", type=float, default=0.15 * 28, help="ISO's l2 budget (0.15·√784)")
    ap.add_argument("--eta", type=float, default=0.5)
    ap.add_argument("--lam", type=float, default=0.01, help="Jacobian regularization weight")
    ap.add_argument("--num-samples", type=int, default=3, help="exact inputs of the fast ISO")
    ap.add_argument("--num-probes", type=int, default=8, help="probes of the forward-mode ISO sketch")
    ap.add_argument("--value-batches", type=int, default=10)
    ap.add_argument("--trained-epochs", type=int, default=2,
                    help="also measure the fast value's error after this many epochs of plain training (0: skip)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        if args.device == "cuda" and not torch.cuda.is_available():
            ap.error("--device cuda but CUDA is not available")
        device = torch.device(args.device)

    images, labels, data_name = get_data(args, 4000 if not args.random_data else 1024)
    x, y = images[:args.batch_size].to(device), labels[:args.batch_size].to(device)
    print(f"model {args.model}, batch {args.batch_size} of {data_name}, device {device}"
          + (f" ({torch.get_num_threads()} threads)" if device.type == "cpu" else f" ({torch.cuda.get_device_name(device)})"))
    print(f"one SGD step each, {args.reps} rounds after {args.warmup} warm-up rounds; eps={args.eps:.2f}, eta={args.eta}")
    med, ratio = time_steps(args, device, x, y)
    width = max(map(len, med))
    print(f"{'method':<{width}}  {'ms/step':>9}  {'x CE':>6}")
    for name in med:
        print(f"{name:<{width}}  {1000 * med[name]:9.1f}  {ratio[name]:6.2f}")

    for epochs in sorted({0, args.trained_epochs}):
        exact, rel = value_errors(args, device, images, labels, epochs)
        when = "at initialization" if epochs == 0 else f"after {epochs} epochs of plain training"
        print(f"ISO value {when}, {len(exact)} batches (exact batch mean {statistics.mean(exact):.4g}):")
        for method, errs in rel.items():
            label = f"fast ({args.num_samples} inputs)" if method == "fast" else f"jvp ({args.num_probes} probes)"
            print(f"  {label:<18} mean |rel. error| {100 * statistics.mean(map(abs, errs)):5.1f}%   "
                  f"mean rel. error {100 * statistics.mean(errs):+5.1f}%   max |rel. error| {100 * max(map(abs, errs)):5.1f}%")
    fast_name = next(n for n in med if n.startswith("ISO fast"))
    print(f"iso_exact_ratio: {ratio['ISO exact']:.2f}  iso_fast_ratio: {ratio[fast_name]:.2f}")


if __name__ == "__main__":
    main()
