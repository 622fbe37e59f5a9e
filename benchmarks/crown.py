"""Time and memory of one CROWN bound per input: the dense numpy CROWN (convolutions unfolded
into matrices) against the matrix-free one (the layers applied as operators, in torch).

Each (model, backend) runs in its own child process, so its peak resident memory (``ru_maxrss``)
is its own; the child's address space is capped (``--mem-cap-gib``) so that a dense form that
does not fit fails there instead of exhausting a shared machine. Both backends bound the same
margins of the same inputs (ℓ∞ ball ∩ [0, 1]); where both finish, the largest difference of their
bounds is printed. Weights are random (the cost does not depend on them: every neuron of every
layer is bounded either way). For instance:

    OMP_NUM_THREADS=1 python benchmarks/crown.py                       # ibp_small and ibp_medium
    python benchmarks/crown.py --models ibp_medium --backends matrix-free --device cuda

Per (model, backend) one line: ``model backend: X.XX s/input (CPU W.WW s), peak RSS Y MiB
(baseline Z MiB)`` — wall-clock and process CPU time, which differ on a busy machine — or the
error that stopped it.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def child(args):
    import torch

    from georobust.core.models import build
    from georobust.verification import margin_bounds

    if args.mem_cap_gib > 0:
        cap = int(args.mem_cap_gib * 2 ** 30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    net = build(args.models, seed=args.seed).double().eval().to(args.device)
    g = torch.Generator().manual_seed(args.seed)
    xs = torch.rand((args.n_images, 1, 28, 28), generator=g, dtype=torch.float64)
    with torch.no_grad():
        labels = net(xs.to(args.device)).argmax(1).tolist()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"baseline_mib": base, "bounds": []}
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        for x, y in zip(xs, labels):
            out["bounds"].append(margin_bounds(net, x, y, args.eps, method="crown", domain=(0.0, 1.0),
                                               crown_backend=args.backends).tolist())
        out["seconds_per_input"] = (time.perf_counter() - t0) / len(labels)
        out["cpu_seconds_per_input"] = (time.process_time() - c0) / len(labels)
    except (MemoryError, RuntimeError) as err:
        out["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"
    out["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="ibp_small,ibp_medium")
    ap.add_argument("--backends", default="dense,matrix-free")
    ap.add_argument("--n-images", type=int, default=2)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--mem-cap-gib", type=float, default=6.0, help="address-space cap of each child (0: none)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    results = {}
    for model in args.models.split(","):
        for backend in args.backends.split(","):
            cmd = [sys.executable, __file__, "--child", "--models", model, "--backends", backend, "--n-images",
                   str(args.n_images), "--eps", str(args.eps), "--mem-cap-gib", str(args.mem_cap_gib),
                   "--device", args.device, "--seed", str(args.seed)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            lines = proc.stdout.strip().splitlines()
            if proc.returncode != 0 or not lines:
                print(f"{model} {backend}: child failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(lines[-1])
            results[model, backend] = r
            if "error" in r:
                print(f"{model} {backend}: did not finish within {args.mem_cap_gib:g} GiB: {r['error']} "
                      f"(peak RSS {r['peak_mib']:.0f} MiB)")
            else:
                print(f"{model} {backend}: {r['seconds_per_input']:.2f} s/input (CPU {r['cpu_seconds_per_input']:.2f} s), peak RSS {r['peak_mib']:.0f} MiB "
                      f"(baseline {r['baseline_mib']:.0f} MiB)")
        pair = [results.get((model, b)) for b in ("dense", "matrix-free")]
        if all(p is not None and "error" not in p for p in pair):
            diff = max(abs(a - b) for da, db in zip(pair[0]["bounds"], pair[1]["bounds"]) for a, b in zip(da, db))
            print(f"{model}: largest difference of the two backends' bounds {diff:.2e}")


if __name__ == "__main__":
    main()
