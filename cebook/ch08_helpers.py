"""Plumbing for chapter 8 (Probabilities you can trust, ``book/08_calibration.ipynb``).

The page shows the ideas (what a loss does to the confidences, how to measure it); the data
split, the training loops and the figure scaffolding live here. Models are trained with torch on
the CPU in float64, from weights drawn by numpy's seeded generator: the printed numbers then do
not depend on the reader's CPU (float32 training, or torch's own random draw, rounds differently
under AVX-512, AVX2 or no SIMD, and 40 epochs amplify that into printed digits). Everything
measured is measured with :mod:`celib.calibration`.

The split is chapter 7's: ``stratified_split(labels, [8000, 2000], seed=0)`` of MNIST's 10,000
test images gives the training part and the 2,000 held-out images; the training part is split
again, ``stratified_split(labels[train], [7000, 1000], seed=1)``, into 7,000 images to fit and
1,000 for validation (to choose the temperature).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from celib import calibration as cc
from celib import functional as cf
from celib.datasets import load_mnist, load_qmnist_test_writers, stratified_split

__all__ = ["load_parts", "Run", "train", "evaluate", "bootstrap_ece", "focal_torch",
           "reliability_plot", "simulate_calibrated", "measure", "print_table",
           "project_penultimate", "spread_ratio", "seeded_linear", "RECALIBRATIONS",
           "recalibration_metrics", "compare_recalibrations", "print_recalibrations",
           "POPULATIONS", "population_parts", "shift_experiment", "print_shift"]


def _part_rows(labels: np.ndarray) -> dict:
    """Row numbers in MNIST's test file of the parts "fit", "val" and "held"."""
    train, held = stratified_split(labels, [8000, 2000], seed=0)
    fit, val = stratified_split(labels[train], [7000, 1000], seed=1)
    return {"fit": train[fit], "val": train[val], "held": held}


def load_parts() -> dict:
    """The parts ``{"fit": (X, y), "val": (X, y), "held": (X, y)}``, X float64 in [0, 1]."""
    images, labels = load_mnist("test", download=False)
    X = images.reshape(len(images), -1) / 255.0
    return {k: (X[i], labels[i].astype(np.int64)) for k, i in _part_rows(labels).items()}


@dataclass
class Run:
    """A trained model and what was measured on the held-out part after every epoch."""

    model: object
    history: dict = field(default_factory=dict)

    def logits(self, X: np.ndarray) -> np.ndarray:
        """The model's logits for ``X``, as float64 numpy."""
        import torch
        with torch.no_grad():
            return self.model(torch.from_numpy(X)).numpy()

    def features(self, X: np.ndarray) -> np.ndarray:
        """The penultimate layer (the input of the last linear layer), as float64 numpy."""
        import torch
        with torch.no_grad():
            return self.model[:-1](torch.from_numpy(X)).numpy()


def focal_torch(z, y, gamma: float):
    """Mean focal loss in torch, from log_softmax (the same formula as celib's)."""
    import torch.nn.functional as F
    logpt = F.log_softmax(z, dim=1).gather(1, y[:, None])[:, 0]
    return (-(-logpt.expm1()) ** gamma * logpt).mean()


def _loss(z, y, smoothing: float, gamma: float, z_loss: float):
    import torch
    import torch.nn.functional as F
    loss = focal_torch(z, y, gamma) if gamma else F.cross_entropy(z, y, label_smoothing=smoothing)
    if z_loss:
        loss = loss + z_loss * (torch.logsumexp(z, dim=1) ** 2).mean()
    return loss


def evaluate(logits: np.ndarray, y: np.ndarray, n_bins: int = 15) -> dict:
    """Accuracy, NLL (nats), ECE (``n_bins`` equal-width bins) and Brier score of logits."""
    q = cf.softmax(logits, axis=1)
    return {"acc": float(np.mean(logits.argmax(1) == y)),
            "nll": float(cf.cross_entropy(logits, y)),
            "ece": cc.expected_calibration_error(q, y, n_bins),
            "brier": cc.brier_score(q, y)}


def _adam(params, grads, moments, lr, step, b1=0.9, b2=0.999, eps=1e-8) -> None:
    """One Adam step (Kingma & Ba), as torch.optim.Adam's defaults; written out because
    torch.optim imports torch._dynamo, which takes seconds."""
    import torch
    with torch.no_grad():
        for w, g, (m, v) in zip(params, grads, moments, strict=True):
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v / (1 - b2 ** step)).sqrt_().add_(eps)
            w.addcdiv_(m, denom, value=-lr / (1 - b1 ** step))


def seeded_linear(fan_in: int, fan_out: int, rng: np.random.Generator):
    """A float64 ``torch.nn.Linear`` with torch's default initialisation, U(-1/√fan_in,
    1/√fan_in) for the weight and the bias, drawn by numpy: the same numbers on every CPU."""
    import torch
    layer = torch.nn.Linear(fan_in, fan_out, dtype=torch.float64)
    bound = 1 / np.sqrt(fan_in)
    with torch.no_grad():
        for param in (layer.weight, layer.bias):
            param.copy_(torch.from_numpy(rng.uniform(-bound, bound, tuple(param.shape))))
    return layer


def train(parts: dict, hidden: int | None = 64, epochs: int = 30, smoothing: float = 0.0,
          gamma: float = 0.0, z_loss: float = 0.0, lr: float = 3e-3, batch: int = 500,
          seed: int = 0, track: bool = True) -> Run:
    """Train softmax regression (``hidden=None``) or a one-hidden-layer ReLU MLP with Adam,
    in float64.

    The loss is cross-entropy with ``label_smoothing=smoothing``, or the focal loss if
    ``gamma > 0``, plus ``z_loss · mean(log² Z)`` if ``z_loss > 0``. The weights and the
    minibatches of ``batch`` (a permutation per epoch) come from two numpy streams seeded by
    ``seed``. ``history`` holds the held-out accuracy, NLL, ECE and Brier score, and the mean
    logit norm, after every epoch (``track=True``) or after the last.
    """
    import torch
    init_rng, batch_rng = map(np.random.default_rng, np.random.SeedSequence(seed).spawn(2))
    D, C = parts["fit"][0].shape[1], 10
    layers = [seeded_linear(D, C, init_rng)] if hidden is None else [
        seeded_linear(D, hidden, init_rng), torch.nn.ReLU(), seeded_linear(hidden, C, init_rng)]
    model = torch.nn.Sequential(*layers)
    params = list(model.parameters())
    moments = [(torch.zeros_like(w), torch.zeros_like(w)) for w in params]
    X, y = (torch.from_numpy(a) for a in parts["fit"])
    run = Run(model, {k: [] for k in ("acc", "nll", "ece", "brier", "norm")})
    step = 0
    for epoch in range(epochs):
        for idx in np.array_split(batch_rng.permutation(len(y)), max(1, len(y) // batch)):
            i = torch.from_numpy(idx)
            grads = torch.autograd.grad(_loss(model(X[i]), y[i], smoothing, gamma, z_loss), params)
            step += 1
            _adam(params, grads, moments, lr, step)
        if not (track or epoch == epochs - 1):
            continue
        z = run.logits(parts["held"][0])
        for k, v in evaluate(z, parts["held"][1]).items():
            run.history[k].append(v)
        run.history["norm"].append(float(np.linalg.norm(z, axis=1).mean()))
    return run


def bootstrap_ece(probs: np.ndarray, y: np.ndarray, n_bins: int = 15, reps: int = 200,
                  seed: int = 0, level: float = 0.9) -> tuple[float, float]:
    """Percentile bootstrap range of the ECE *estimate*: resample the examples with replacement,
    recompute, and return the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles.

    It shows how much one measurement moves under resampling. It is not a confidence interval
    for the true calibration error: the ECE is biased upwards, every resample inherits the bias
    (and adds its own, since duplicated examples make the bins noisier), so the range need not
    cover the true value; for a perfectly calibrated model it can exclude 0.
    """
    rng = np.random.default_rng(seed)
    values = [cc.expected_calibration_error(probs[i], y[i], n_bins)
              for i in (rng.integers(0, len(y), len(y)) for _ in range(reps))]
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def simulate_calibrated(n: int, seed: int = 0, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and labels drawn from them: a perfectly calibrated model by construction."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(classes, 0.3), size=n)
    labels = (rng.random(n)[:, None] > np.cumsum(probs, axis=1)).sum(axis=1)
    return probs, np.minimum(labels, classes - 1)


def reliability_plot(ax, bins: cc.ReliabilityBins, title: str, count_ax=None) -> None:
    """Bars of accuracy per bin over the diagonal of perfect calibration; with ``count_ax``,
    the number of examples per bin under it (log scale, each count written on its bar), since
    a bar drawn from 1 example has the same height as one drawn from 1,000."""
    width = np.diff(bins.edges)
    full = bins.counts > 0
    ax.bar(bins.edges[:-1][full], bins.accuracies[full], width=width[full], align="edge",
           edgecolor="black", color="tab:blue", alpha=0.7, label="accuracy in bin")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.plot(bins.confidences[full], bins.accuracies[full], "o", color="tab:red", ms=3,
            label="(mean confidence, accuracy)")
    ax.set_xlabel("confidence (top-label probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    if count_ax is None:
        return
    count_ax.bar(bins.edges[:-1][full], bins.counts[full], width=width[full], align="edge",
                 edgecolor="black", color="tab:gray")
    for left, w, n in zip(bins.edges[:-1][full], width[full], bins.counts[full], strict=True):
        count_ax.text(left + w / 2, n * 1.15, f"{n}", ha="center", va="bottom", fontsize=7)
    count_ax.set_yscale("log")
    count_ax.set_ylim(0.5, 20 * bins.counts.max())
    count_ax.set_xlim(0, 1)
    count_ax.set_xlabel("confidence (top-label probability)")
    count_ax.set_ylabel("examples (log)")
    ax.set_xlabel("")


def measure(run: Run, parts: dict, n_bins: int = 15) -> dict:
    """The chapter's table row of a trained model, all on the held-out part: accuracy, NLL, ECE
    with its 90 % bootstrap range (``boot``) and the 5 %, 50 % and 95 % quantiles of its
    consistency-resampling null (``null``, 200 label sets drawn from the model's own q), Brier
    score; T fitted on the validation part and the ECE and NLL after dividing by it; the mean
    logit norm and the mean log Z."""
    zv, zh = run.logits(parts["val"][0]), run.logits(parts["held"][0])
    y = parts["held"][1]
    T = cc.fit_temperature(zv, parts["val"][1])
    row = evaluate(zh, y, n_bins)
    q = cf.softmax(zh, axis=1)
    row["boot"] = bootstrap_ece(q, y, n_bins)
    null = cc.consistency_null_ece(q, n_bins)
    row["null"] = tuple(float(v) for v in np.quantile(null, [0.05, 0.5, 0.95]))
    after = evaluate(zh / T, y, n_bins)
    row.update(T=T, ece_T=after["ece"], nll_T=after["nll"], acc_T=after["acc"],
               norm=float(np.linalg.norm(zh, axis=1).mean()),
               logZ=float(np.mean(cf.logsumexp(zh, axis=1))))
    return row


def print_table(rows: dict) -> None:
    """Print the measured table: one row per model and loss, rounded as the text discusses.
    ECEs in percent; "bootstrap" is the 90 % bootstrap range of the estimate, "null" the 90 %
    range of the ECE that a perfectly calibrated model with the same predictions shows."""
    print(f"{'model, loss':26s} {'acc':>5s} {'NLL':>5s} {'ECE':>5s} {'bootstrap':>12s} "
          f"{'null':>11s} {'Brier':>5s} {'T':>5s} {'ECE@T':>5s}")
    for name, r in rows.items():
        boot = f"[{100 * r['boot'][0]:4.1f}, {100 * r['boot'][1]:4.1f}]"
        null = f"[{100 * r['null'][0]:.1f}, {100 * r['null'][2]:.1f}]"
        print(f"{name:26s} {100 * r['acc']:5.1f} {r['nll']:5.2f} {100 * r['ece']:5.1f} "
              f"{boot:>12s} {null:>11s} {r['brier']:5.2f} {r['T']:5.2f} {100 * r['ece_T']:5.1f}")


def project_penultimate(run: Run, X: np.ndarray, y: np.ndarray, classes=(0, 1, 2)):
    """Müller et al.'s picture: penultimate activations of three classes projected on the plane
    through those classes' templates (rows of the last layer's W). Returns (points, labels)."""
    W = run.model[-1].weight.detach().numpy()[list(classes)]
    keep = np.isin(y, classes)
    basis, _ = np.linalg.qr(np.stack([W[1] - W[0], W[2] - W[0]], axis=1))   # (H, 2)
    return (run.features(X[keep]) - W[0]) @ basis, y[keep]


def spread_ratio(points: np.ndarray, labels: np.ndarray) -> float:
    """Mean within-class distance to the class mean over the mean distance between class means."""
    classes = np.unique(labels)
    means = np.stack([points[labels == c].mean(0) for c in classes])
    within = np.mean([np.linalg.norm(points[labels == c] - m, axis=1).mean()
                      for c, m in zip(classes, means, strict=True)])
    between = np.mean([np.linalg.norm(a - b) for i, a in enumerate(means) for b in means[i + 1:]])
    return float(within / between)


# --------------------------------------------------------------------------------------------
# Recalibration maps compared, over seeds (Guo et al.'s Table 1)
# --------------------------------------------------------------------------------------------

RECALIBRATIONS = ("none", "temperature", "histogram binning", "isotonic")


def _recalibrated(run: Run, parts: dict) -> dict:
    """The held-out probabilities under each map, every map fitted on the validation part."""
    zv, zh = run.logits(parts["val"][0]), run.logits(parts["held"][0])
    yv = parts["val"][1]
    qv, qh = cf.softmax(zv, axis=1), cf.softmax(zh, axis=1)
    T = cc.fit_temperature(zv, yv)
    return {"none": qh, "temperature": cf.softmax(zh / T, axis=1),
            "histogram binning": cc.fit_histogram_binning(qv, yv).apply(qh),
            "isotonic": cc.fit_isotonic(qv, yv).apply(qh)}


def recalibration_metrics(q: np.ndarray, y: np.ndarray) -> dict:
    """Accuracy, NLL (inf if some q_y = 0), how many q_y are 0, ECE, debiased RMS calibration
    error, classwise ECE (all 15 bins), Brier score and its decomposition (15 bins per class)."""
    q_y = q[np.arange(len(y)), y]
    with np.errstate(divide="ignore"):
        nll = float(-np.mean(np.log(q_y)))
    d = cc.brier_decomposition(q, y)
    return {"acc": float(np.mean(q.argmax(1) == y)), "nll": nll, "zeros": int(np.sum(q_y == 0)),
            "ece": cc.expected_calibration_error(q, y),
            "debiased": cc.debiased_calibration_error(q, y),
            "classwise": cc.classwise_ece(q, y), "brier": cc.brier_score(q, y),
            "rel": d.reliability, "ref": d.refinement,
            "within": d.within_variance - 2 * d.within_covariance, "total": d.total}


def compare_recalibrations(parts: dict, seeds=range(5), trained: dict | None = None) -> dict:
    """``{map: {metric: array over seeds}}`` for the MLP trained with seeds ``seeds`` (a run
    already trained for a seed can be passed in ``trained``)."""
    per_seed = []
    for seed in seeds:
        run = (trained or {}).get(seed) or train(parts, epochs=40, seed=seed, track=False)
        per_seed.append({k: recalibration_metrics(q, parts["held"][1])
                         for k, q in _recalibrated(run, parts).items()})
    return {k: {m: np.array([s[k][m] for s in per_seed]) for m in per_seed[0][k]}
            for k in RECALIBRATIONS}


def _mean_sd(values: np.ndarray, scale: float, digits: int) -> str:
    if not np.all(np.isfinite(values)):
        return "inf"
    return f"{scale * values.mean():.{digits}f}±{scale * values.std(ddof=1):.{digits}f}"


def print_recalibrations(table: dict) -> None:
    """Two tables, mean ± sample standard deviation over the seeds: the metrics (percent, NLL in
    nats), then the Brier score = REL + REF + within-bin terms."""
    print(f"{'map':18s} {'acc %':>9s} {'NLL':>11s} {'q_y=0':>5s} {'ECE %':>8s} "
          f"{'debiased %':>10s} {'classwise %':>11s}")
    for name, m in table.items():
        print(f"{name:18s} {_mean_sd(m['acc'], 100, 1):>9s} {_mean_sd(m['nll'], 1, 3):>11s} "
              f"{m['zeros'].mean():5.0f} {_mean_sd(m['ece'], 100, 1):>8s} "
              f"{_mean_sd(m['debiased'], 100, 1):>10s} {_mean_sd(m['classwise'], 100, 2):>11s}")
    print(f"\n{'map':18s} {'Brier':>13s} {'= REL':>13s} {'+ REF':>13s} {'+ within':>9s}")
    for name, m in table.items():
        print(f"{name:18s} {_mean_sd(m['brier'], 1, 4):>13s} {_mean_sd(m['rel'], 1, 4):>13s} "
              f"{_mean_sd(m['ref'], 1, 4):>13s} {m['within'].mean():9.4f}")


# --------------------------------------------------------------------------------------------
# Calibration under a natural shift: QMNIST's two writer populations
# --------------------------------------------------------------------------------------------

#: NIST series of each writer population in MNIST's test file (chapter 7): the high-school
#: students wrote series 4 (rows 0-4,999 and row 5,000), the Census employees series 0.
POPULATIONS = {"students": 4, "Census": 0}


def population_parts(population: str) -> dict:
    """The chapter's parts restricted to one writer population: ``{"fit", "val", "held"}``."""
    images, labels = load_mnist("test", download=False)
    series = load_qmnist_test_writers(download=False).series
    X = images.reshape(len(images), -1) / 255.0
    rows = {k: r[series[r] == POPULATIONS[population]] for k, r in _part_rows(labels).items()}
    return {k: (X[r], labels[r].astype(np.int64)) for k, r in rows.items()}


def shift_experiment(seed: int = 0) -> list:
    """For each population A: train the MLP on A's fit part, fit T on the validation part of
    each population, and measure on each population's held-out part with no T, the T of the
    training population A and the T of the test population. One dict per (A, test, T)."""
    pops = {p: population_parts(p) for p in POPULATIONS}
    out = []
    for source, parts in pops.items():
        run = train(parts, epochs=40, seed=seed, track=False)
        Ts = {p: cc.fit_temperature(run.logits(pops[p]["val"][0]), pops[p]["val"][1])
              for p in pops}
        for target, tparts in pops.items():
            z, y = run.logits(tparts["held"][0]), tparts["held"][1]
            for label, T in (("none", 1.0), ("T of train", Ts[source]), ("T of test", Ts[target])):
                q = cf.softmax(z / T, axis=1)
                null = np.quantile(cc.consistency_null_ece(q), [0.05, 0.95])
                out.append({"train": source, "test": target, "T_from": label, "T": T,
                            "n": len(y), "acc": float(np.mean(z.argmax(1) == y)),
                            "nll": float(cf.cross_entropy(z / T, y)),
                            "ece": cc.expected_calibration_error(q, y), "null": tuple(null)})
    return out


def print_shift(rows: list) -> None:
    """The shift experiment's rows, ECE in percent with its null's 90 % range."""
    print(f"{'trained on':10s} {'tested on':9s} {'N':>5s} {'acc %':>5s} {'T from':10s} "
          f"{'T':>4s} {'NLL':>5s} {'ECE %':>5s} {'null':>11s}")
    for r in rows:
        null = f"[{100 * r['null'][0]:.1f}, {100 * r['null'][1]:.1f}]"
        print(f"{r['train']:10s} {r['test']:9s} {r['n']:5d} {100 * r['acc']:5.1f} "
              f"{r['T_from']:10s} {r['T']:4.2f} {r['nll']:5.3f} {100 * r['ece']:5.1f} {null:>11s}")
