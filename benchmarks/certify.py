"""Throughput of randomized-smoothing CERTIFY: a reference one-input-at-a-time implementation,
georobust's batched certifier (as given, and after :func:`georobust.core.models.for_inference`,
which stores convolution weights channels-last), and the bare forward pass of the base model (the
limit).

All four process the same number of noisy inputs (n0 + n per image) with the same model. To be
fair on a shared or throttled machine the images are split into rounds and, in every round, each
method runs on that round's images (in rotating order); samples per second are totals over the
rounds. Run on a CPU with the defaults (about a minute or two); on a GPU, for instance:

    python benchmarks/certify.py --device cuda --n 100000 --n-images 10000 --batch-size 10000

The last line printed is ``speedup_vs_reference: X.XX  fraction_of_forward_limit: Y.YY
for_inference_speedup: Z.ZZ`` with speedup = georobust's samples/s ÷ the reference's, fraction =
georobust's ÷ the forward limit's (both with the model as given), and Z = georobust's samples/s
after ``for_inference`` ÷ before.
"""

from __future__ import annotations

import argparse
import copy
import math
import time

import numpy as np
import torch
from scipy.stats import norm

from georobust.theory.bounds import clopper_pearson_lower
from georobust.core.models import MODELS, build, for_inference
from georobust.smoothing import Smooth


# --------------------------------------------------------------------------- reference
class ReferenceSmooth:
    """REFERENCE (for comparison only): the published CERTIFY algorithm written the way the
    reference code of Cohen, Rosenfeld & Kolter (2019) does it — one input at a time, the input
    repeated ``batch_size`` times per forward batch, noise from the global RNG, predictions moved
    to the host and counted with a Python-level loop. The device comes from the input instead of
    being hard-coded, and the Clopper–Pearson bound from SciPy instead of statsmodels."""

    ABSTAIN = -1

    def __init__(self, base_classifier, num_classes, sigma):
        self.base_classifier, self.num_classes, self.sigma = base_classifier, num_classes, sigma

    def certify(self, x, n0, n, alpha, batch_size):
        self.base_classifier.eval()
        counts_selection = self._sample_noise(x, n0, batch_size)
        c_a = int(counts_selection.argmax())
        counts_estimation = self._sample_noise(x, n, batch_size)
        p_a_lower = clopper_pearson_lower(int(counts_estimation[c_a]), n, alpha)
        if p_a_lower < 0.5:
            return self.ABSTAIN, 0.0
        return c_a, self.sigma * norm.ppf(p_a_lower)

    def _sample_noise(self, x, num, batch_size):
        with torch.no_grad():
            counts = np.zeros(self.num_classes, dtype=int)
            for _ in range(math.ceil(num / batch_size)):
                this_batch_size = min(batch_size, num)
                num -= this_batch_size
                batch = x.repeat((this_batch_size, 1, 1, 1))
                noise = torch.randn_like(batch) * self.sigma
                predictions = self.base_classifier(batch + noise).argmax(1)
                counts += self._count_arr(predictions.cpu().numpy(), self.num_classes)
            return counts

    @staticmethod
    def _count_arr(arr, length):
        counts = np.zeros(length, dtype=int)
        for idx in arr:
            counts[idx] += 1
        return counts


# --------------------------------------------------------------------------- setup
def get_model(args, device):
    model = build(args.model, seed=args.seed)
    if args.checkpoint:
        from georobust.core.train import load_checkpoint

        state = load_checkpoint(args.checkpoint)
        model.load_state_dict(state["model"] if "model" in state else state)
        how = f"weights from {args.checkpoint}"
    elif args.random_weights:
        how = f"RANDOM weights (seed {args.seed}), untrained"
    else:
        try:
            from georobust.core.data import load_mnist
            from georobust.core.train import evaluate, train

            tr, te = load_mnist("train", dataset="subset"), load_mnist("test", dataset="subset")
            t0 = time.perf_counter()
            train(model, tr.images, tr.labels, epochs=1, lr=0.05, batch_size=64, noise_sigma=args.sigma,
                  seed=args.seed, progress=False)
            how = (f"trained 1 epoch (SGD lr 0.05, Gaussian augmentation sigma={args.sigma}) on {tr.name} in "
                   f"{time.perf_counter() - t0:.0f} s, clean test accuracy {evaluate(model, te.images, te.labels):.3f}")
        except Exception as err:  # no data: say so and fall back to random weights
            how = f"RANDOM weights (seed {args.seed}); training failed: {err}"
    return model.to(device).eval(), how


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-images", type=int, default=10)
    ap.add_argument("--n0", type=int, default=100)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--alpha", type=float, default=0.001)
    ap.add_argument("--sigma", type=float, default=0.25)
    ap.add_argument("--batch-size", type=int, default=400, help="georobust's and the forward limit's batch")
    ap.add_argument("--ref-batch-size", type=int, default=400, help="the reference's batch (its default: 400)")
    ap.add_argument("--rounds", type=int, default=10, help="interleaved timing rounds (at most one per image)")
    ap.add_argument("--ref-images", type=int, default=None,
                    help="time the reference on only this many images (default: all); rates are per sample")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--model", choices=sorted(MODELS), default="lenet")
    ap.add_argument("--checkpoint", default=None, help="state dict or georobust.core.train checkpoint")
    ap.add_argument("--random-weights", action="store_true", help="skip the 1-epoch training")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args(argv)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model, how = get_model(args, device)
    from georobust.core.data import load_mnist

    test = load_mnist("test", dataset="subset").take(args.n_images)
    images, labels = test.images.to(device), test.labels.tolist()
    per_image = args.n0 + args.n
    threads = f", {torch.get_num_threads()} threads" if device.type == "cpu" else ""
    print(f"device: {device}{threads} | model: {args.model}, {how}")
    print(f"{len(labels)} images from {test.name}; n0={args.n0} n={args.n} alpha={args.alpha} "
          f"sigma={args.sigma}; {per_image * len(labels):,} noisy samples per method")

    ref = ReferenceSmooth(model, 10, args.sigma)
    smooth = Smooth(model, 10, args.sigma)
    smooth_cl = Smooth(for_inference(copy.deepcopy(model)), 10, args.sigma)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    limit_batch = (images[:1] + args.sigma * torch.randn((args.batch_size,) + images.shape[1:], device=device))

    def run_reference(xs, n0, n):
        return [ref.certify(x, n0, n, args.alpha, args.ref_batch_size) for x in xs]

    def run_georobust(xs, n0, n):
        c, r = smooth.certify_batch(xs, n0, n, args.alpha, args.batch_size, gen)
        return list(zip(c.tolist(), r.tolist()))

    def run_channels_last(xs, n0, n):
        c, r = smooth_cl.certify_batch(xs, n0, n, args.alpha, args.batch_size, gen)
        return list(zip(c.tolist(), r.tolist()))

    def run_limit(xs, n0, n):
        todo = len(xs) * (n0 + n)
        with torch.inference_mode():
            while todo > 0:
                model(limit_batch[:min(todo, args.batch_size)])
                todo -= args.batch_size
        return []

    methods = {"reference": run_reference, "georobust": run_georobust, "georobust, for_inference": run_channels_last,
               "forward limit": run_limit}
    for run in methods.values():  # warm-up on a small workload
        run(images[:1], 10, min(args.n, 2 * args.batch_size))
    seconds = dict.fromkeys(methods, 0.0)
    results = {"reference": [], "georobust": [], "georobust, for_inference": []}
    rounds = np.array_split(np.arange(len(labels)), max(1, min(args.rounds, len(labels))))
    n_ref = len(labels) if args.ref_images is None else min(args.ref_images, len(labels))
    counted = dict.fromkeys(methods, 0)
    for k, idx in enumerate(rounds):
        names = list(methods)
        for name in names[k % len(names):] + names[:k % len(names)]:
            todo = idx[idx < n_ref] if name == "reference" else idx
            if len(todo) == 0:
                continue
            sync(device)
            t0 = time.perf_counter()
            out = methods[name](images[torch.as_tensor(todo, device=device)], args.n0, args.n)
            sync(device)
            seconds[name] += time.perf_counter() - t0
            counted[name] += len(todo) * per_image
            results.get(name, []).extend(out)

    rate = {name: counted[name] / s for name, s in seconds.items()}
    for name, label in (("reference", f"reference (one input at a time, batch {args.ref_batch_size})"),
                        ("georobust", f"georobust Smooth.certify_batch (batch {args.batch_size})"),
                        ("georobust, for_inference", f"  the same after models.for_inference (batch {args.batch_size})"),
                        ("forward limit", f"forward limit (base model only, batch {args.batch_size})")):
        print(f"{label:58s} {rate[name]:10,.0f} samples/s  ({seconds[name]:.1f} s)")
    ref_c, ref_r = map(np.array, zip(*results["reference"]))
    geo_c, geo_r = map(np.array, zip(*results["georobust"][:n_ref]))
    lab = np.array(labels[:n_ref])
    print(f"same certified class on {int((ref_c == geo_c).sum())}/{len(lab)} images; mean |radius difference| "
          f"{np.abs(ref_r - geo_r).mean():.4f}; certified accuracy (radius>=0) reference {np.mean(ref_c == lab):.2f} "
          f"georobust {np.mean(geo_c == lab):.2f}; mean radius reference {ref_r.mean():.3f} georobust {geo_r.mean():.3f}")
    print(f"speedup_vs_reference: {rate['georobust'] / rate['reference']:.2f}  "
          f"fraction_of_forward_limit: {rate['georobust'] / rate['forward limit']:.2f}  "
          f"for_inference_speedup: {rate['georobust, for_inference'] / rate['georobust']:.2f}")


if __name__ == "__main__":
    main()
