# Float64 reference of the DPO losses, in plain Python floats, transcribed from TRL 1.x
# trl/trainer/dpo_trainer.py `DPOTrainer._compute_loss` (the `for loss_type, loss_weight in zip(...)` branches,
# f_divergence_type="reverse_kl"), plus `cdpo`: TRL 0.x `dpo_loss`'s sigmoid with label_smoothing.
# Written from TRL's formulas, not from the TypeScript.
#
#   python3 scripts/reference/losses_ref.py      writes test/fixtures/dpo/losses.json: per-pair values of every loss
#                                                 and central finite differences (h 1e-6) of the mean loss w.r.t.
#                                                 each of the four log-prob vectors.
import json
import math
import os
import sys

sys.dont_write_bytecode = True


def log_sigmoid(x):
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def sigmoid(x):
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def one_loss(t, i, pc, pr, rc, rr, lc, lr, beta, eps, tau):
    """Per-pair value of loss type t for pair i (TRL names; `sft` reads the whole batch)."""
    cs = pc[i] - rc[i]  # chosen_logratios = chosen_scores under reverse_kl
    rs = pr[i] - rr[i]
    d = cs - rs  # delta_score
    bd = beta * d
    if t == "sigmoid":
        return -log_sigmoid(bd)
    if t == "hinge":
        return max(0.0, 1 - bd)
    if t == "ipo":
        return (cs / max(lc[i], 1.0) - rs / max(lr[i], 1.0) - 1 / (2 * beta)) ** 2
    if t == "exo_pair":
        qw, ql = sigmoid(bd), sigmoid(-bd)
        return qw * (log_sigmoid(bd) - math.log1p(-eps)) + ql * (log_sigmoid(-bd) - math.log(eps))
    if t == "nca_pair":
        return -log_sigmoid(beta * cs) - 0.5 * log_sigmoid(-beta * cs) - 0.5 * log_sigmoid(-beta * rs)
    if t == "robust":
        clean = -(1 - eps) * log_sigmoid(bd)
        flipped = -eps * log_sigmoid(-bd)
        return (clean - flipped) / (1 - 2 * eps)
    if t == "cdpo":
        return -(1 - eps) * log_sigmoid(bd) - eps * log_sigmoid(-bd)
    if t == "bco_pair":
        return -log_sigmoid(beta * cs) - log_sigmoid(-beta * rs)
    if t == "sppo_hard":
        return (cs - 0.5 / beta) ** 2 + (rs + 0.5 / beta) ** 2
    if t == "apo_zero":
        return (1 - sigmoid(beta * cs)) + sigmoid(beta * rs)
    if t == "apo_down":
        return sigmoid(beta * cs) + (1 - sigmoid(beta * (cs - rs)))
    if t == "discopop":
        m = sigmoid(bd / tau)
        return -log_sigmoid(bd) * (1 - m) + math.exp(-bd) * m
    if t == "sigmoid_norm":
        return -log_sigmoid(beta * (cs / max(lc[i], 1.0) - rs / max(lr[i], 1.0)))
    if t == "sft":  # F.cross_entropy over all chosen completion tokens of the batch, spread over the pairs:
        return -pc[i] * len(pc) / sum(lc)  # mean over pairs = -sum(pc) / sum(lc), TRL's value
    raise ValueError(t)


def pair_losses(terms, pc, pr, rc, rr, lc, lr, beta, eps=0.0, tau=0.05):
    """sum_k w_k L_k per pair; terms = [(loss_type, weight), ...] (TRL loss_type + loss_weights)."""
    return [sum(w * one_loss(t, i, pc, pr, rc, rr, lc, lr, beta, eps, tau) for t, w in terms) for i in range(len(pc))]


def fd(terms, vecs, lc, lr, beta, eps, tau, h=1e-6):
    """Central differences of the mean loss w.r.t. each of the four vectors."""
    out = []
    for k in range(4):
        g = []
        for i in range(len(vecs[k])):
            lo = [list(v) for v in vecs]
            hi = [list(v) for v in vecs]
            lo[k][i] -= h
            hi[k][i] += h
            f = lambda v: sum(pair_losses(terms, *v, lc, lr, beta, eps, tau)) / len(v[0])  # noqa: E731
            g.append((f(hi) - f(lo)) / (2 * h))
        out.append(g)
    return out


# Six pairs; delta = (pc - rc) - (pr - rr) = [0, 0, 5, -25, 1.75, -4] spans zero, small and large margins.
PC = [-10.0, -12.5, -3.0, -40.0, -7.25, -20.0]
PR = [-11.0, -12.5, -9.0, -20.0, -7.0, -21.0]
RC = [-10.5, -12.0, -4.0, -30.0, -8.0, -19.0]
RR = [-11.5, -12.0, -5.0, -35.0, -6.0, -24.0]
LC = [4.0, 5.0, 2.0, 30.0, 7.0, 12.0]
LR = [6.0, 5.0, 9.0, 11.0, 3.0, 1.0]

CASES = [
    ("sigmoid", 0.1, 0.0), ("sigmoid", 2.0, 0.0), ("hinge", 0.1, 0.0), ("ipo", 0.1, 0.0), ("ipo", 0.5, 0.0),
    ("exo_pair", 0.1, 1e-3), ("exo_pair", 0.5, 0.2), ("nca_pair", 0.1, 0.0), ("nca_pair", 0.5, 0.0),
    ("robust", 0.1, 0.1), ("robust", 0.5, 0.3), ("cdpo", 0.1, 0.1), ("cdpo", 0.5, 0.3), ("bco_pair", 0.1, 0.0),
    ("bco_pair", 0.5, 0.0), ("sppo_hard", 0.1, 0.0), ("sppo_hard", 0.5, 0.0), ("apo_zero", 0.1, 0.0),
    ("apo_zero", 0.5, 0.0), ("apo_down", 0.1, 0.0), ("apo_down", 0.5, 0.0), ("discopop", 0.1, 0.0),
    ("discopop", 0.05, 0.0), ("sigmoid_norm", 0.5, 0.0), ("sigmoid_norm", 5.0, 0.0), ("sft", 0.1, 0.0),
    ("sigmoid,sft", 0.1, 0.0), ("robust,sft,apo_zero", 0.5, 0.2),
]
WEIGHTS = {"sigmoid,sft": [1.0, 0.5], "robust,sft,apo_zero": [0.7, 0.2, 1.5]}


def main():
    vecs = [PC, PR, RC, RR]
    cases = []
    for name, beta, eps in CASES:
        types = name.split(",")
        weights = WEIGHTS.get(name, [1.0] * len(types))
        terms = list(zip(types, weights))
        tau = 0.05
        losses = pair_losses(terms, *vecs, LC, LR, beta, eps, tau)
        grads = fd(terms, vecs, LC, LR, beta, eps, tau)
        cases.append({"loss": name, "weights": weights, "beta": beta, "label_smoothing": eps, "discopop_tau": tau,
                      "losses": losses, "grad_policy_chosen": grads[0], "grad_policy_rejected": grads[1],
                      "grad_ref_chosen": grads[2], "grad_ref_rejected": grads[3]})
    out = {"description": "Generated by scripts/reference/losses_ref.py (plain Python float64; TRL 1.x "
                          "dpo_trainer.py _compute_loss branches; central FD h 1e-6 of the mean loss).",
           "policy_chosen": PC, "policy_rejected": PR, "ref_chosen": RC, "ref_rejected": RR,
           "chosen_lengths": LC, "rejected_lengths": LR, "cases": cases}
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.normpath(os.path.join(here, "..", "..", "test", "fixtures", "dpo", "losses.json"))
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"{path}: {len(cases)} cases")


if __name__ == "__main__":
    main()
