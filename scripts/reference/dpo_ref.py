# Independent float64 numpy reference of one DPO step on LoRA adapters: sequence log-probs (llama_ref.py), the
# DPO losses of TRL 1.x `_compute_loss` (losses_ref.py), central finite-difference gradients, and one
# torch.optim.AdamW step after clip_grad_norm_. Written from TRL/PEFT/torch definitions, not from the TypeScript.
#
#   python3 scripts/reference/dpo_ref.py fixture
#       writes test/fixtures/dpo/grad.json: a LoRA on the base model of test/fixtures/model/base.json, 4 token-id pairs,
#       float64 reference log-probs, and per loss type the loss and the FD gradient of every adapter value.
#   python3 scripts/reference/dpo_ref.py check --model DIR --adapter DIR --ids FILE [--ref-adapter none|DIR] ...
#       reads a Hugging Face model dir and a PEFT adapter from disk, plus pairs as token ids (JSON list of
#       {"prompt", "chosen", "rejected"}), and prints JSON: loss, per-pair values, grad_norm and the adapter after
#       one AdamW step. Used by test/train/cli.test.ts on what `train --init-adapter` trained.
import argparse
import base64
import json
import math
import os
import sys

# Thousands of tiny matmuls: BLAS threads only spin (10x slower on a busy machine). Set before numpy loads.
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref as ref  # noqa: E402
import losses_ref  # noqa: E402
from make_fixtures import linear_shapes, packed, rounded  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.normpath(os.path.join(HERE, "..", "..", "test", "fixtures"))
ATTN = ["q_proj", "k_proj", "v_proj", "o_proj"]


def module_path(layer, target):
    return f"model.layers.{layer}.{'self_attn' if target in ATTN else 'mlp'}.{target}"


# ---------------------------------------------------------------------------------------------------------------
# DPO in float64


def batch(pairs, pad_id=0):
    """TRL concatenated batch: rows 0..P-1 prompt+chosen, P..2P-1 prompt+rejected, right-padded."""
    rows = [(p["prompt"], p["chosen"]) for p in pairs] + [(p["prompt"], p["rejected"]) for p in pairs]
    T = max(len(a) + len(b) for a, b in rows)
    ids = np.full((len(rows), T), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), T), dtype=np.int64)
    for r, (a, b) in enumerate(rows):
        ids[r, : len(a) + len(b)] = a + b
        mask[r, : len(a) + len(b)] = 1
    starts = [len(a) for a, _ in rows]
    lengths = np.array([len(b) for _, b in rows], dtype=np.float64)
    return ids, mask, starts, lengths


def sequence_logps(cfg, w, b, lora):
    ids, mask, starts, _ = b
    logits = ref.forward(cfg, w, ids, mask, lora)
    return np.array(ref.completion_logp(logits, ids, mask, starts))


def log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def dpo_losses(pol, refl, lengths, loss_type, beta, label_smoothing=0.0, weights=None):
    """Per-pair losses and rewards from [2P] policy and reference log-probs. loss_type is one TRL 1.x name or a
    comma list (weights default to 1 each); the formulas are losses_ref.py's (TRL 1.x `_compute_loss`)."""
    P = len(pol) // 2
    types = loss_type.split(",")
    terms = list(zip(types, weights or [1.0] * len(types)))
    v = [list(map(float, x)) for x in (pol[:P], pol[P:], refl[:P], refl[P:], lengths[:P], lengths[P:])]
    losses = np.array(losses_ref.pair_losses(terms, *v, beta, label_smoothing))
    cr = pol[:P] - refl[:P]
    rr = pol[P:] - refl[P:]
    # Rewards on the summed log-probs, as TRL logs them (also for the length-normalized losses).
    return losses, beta * cr, beta * rr, cr - rr


def fd_logps(cfg, w, b, lora, eps):
    """Central differences of the [2P] policy log-probs for every adapter value: {key: [n, 2, 2P]} (minus, plus)."""
    out = {}
    for side in ("A", "B"):
        for path, mat in lora[side].items():
            flat = mat.reshape(-1)
            vals = np.zeros((flat.size, 2, b[0].shape[0]))
            for i in range(flat.size):
                keep = flat[i]
                for j, d in enumerate((-eps, eps)):
                    flat[i] = keep + d
                    vals[i, j] = sequence_logps(cfg, w, b, lora)
                flat[i] = keep
            out[f"{path}.lora_{side}"] = vals
    return out


def fd_grads(perturbed, refl, lengths, eps, loss_type, beta, label_smoothing=0.0, weights=None):
    """Central FD of the mean pair loss from the perturbed log-probs: {key: flat gradient}."""
    def mean_loss(pol):
        return dpo_losses(pol, refl, lengths, loss_type, beta, label_smoothing, weights)[0].mean()
    return {k: np.array([(mean_loss(v[i, 1]) - mean_loss(v[i, 0])) / (2 * eps) for i in range(v.shape[0])])
            for k, v in perturbed.items()}


# ---------------------------------------------------------------------------------------------------------------
# fixture: FD gradients on the base model of test/fixtures/model/base.json


def unpack(entry):
    q = np.frombuffer(base64.b64decode(entry["int8"]), dtype=np.int8).astype(np.float64)
    return (q * entry["scale"] + entry["offset"]).reshape(entry["shape"])


def fixture():
    base = json.load(open(os.path.join(FIXTURES, "model", "base.json")))
    cfg = base["config"]
    w = {k: unpack(e) for k, e in base["weights"].items()}
    rng = np.random.default_rng(20250301)
    # LoRA on one attention input (q), one GQA-narrow output (v) and one MLP projection (down), r 2, alpha 4.
    r, alpha, targets = 2, 4.0, ["q_proj", "v_proj", "down_proj"]
    shapes = linear_shapes(cfg)
    lora = {"scale": alpha / r, "A": {}, "B": {}}
    tensors = {}
    for l in range(cfg["num_hidden_layers"]):
        for t in targets:
            out_dim, in_dim = shapes[t]
            p = module_path(l, t)
            tensors[p + ".lora_A"], lora["A"][p] = packed(rng, (r, in_dim), 8)
            tensors[p + ".lora_B"], lora["B"][p] = packed(rng, (out_dim, r), 9)
    # Four pairs: BOS 1 + prompt, completions of different lengths ending in EOS 2, so rows need padding.
    V = cfg["vocab_size"]
    pairs = []
    for np_, nc, nr in [(4, 3, 5), (2, 4, 2), (5, 1, 3), (3, 6, 4)]:
        tok = lambda n: [int(x) for x in rng.integers(3, V, size=n)]  # noqa: E731
        pairs.append({"prompt": [1] + tok(np_ - 1), "chosen": tok(nc - 1) + [2], "rejected": tok(nr - 1) + [2]})
    b = batch(pairs)
    refl = sequence_logps(cfg, w, b, None)  # the reference: bare base model
    pol = sequence_logps(cfg, w, b, lora)
    eps = 1e-5
    perturbed = fd_logps(cfg, w, b, lora, eps)
    beta = 0.5
    # TRL 1.x names; cdpo is TRL 0.x's label-smoothed sigmoid. The last cases need completion lengths (b[3]).
    cases = [("sigmoid", 0.0, None), ("cdpo", 0.2, None), ("ipo", 0.0, None), ("hinge", 0.0, None),
             ("robust", 0.2, None), ("sigmoid_norm", 0.0, None), ("sigmoid,sft", 0.0, [1.0, 0.5])]
    expected = []
    for loss_type, ls, weights in cases:
        losses, rc, rr, z = dpo_losses(pol, refl, b[3], loss_type, beta, ls, weights)
        if loss_type == "hinge":
            assert np.all(np.abs(1 - beta * z) > 1e-3), "a hinge pair sits on the kink; FD would be ill-defined"
        grads = fd_grads(perturbed, refl, b[3], eps, loss_type, beta, ls, weights)
        expected.append({"loss_type": loss_type, "loss_weights": weights or [1.0] * len(loss_type.split(",")),
                         "beta": beta, "label_smoothing": ls, "loss": float(losses.mean()),
                         "losses": rounded(losses), "chosen_rewards": rounded(rc), "rejected_rewards": rounded(rr),
                         "grads": {k: rounded(v) for k, v in grads.items()}})
        print(f"{loss_type} ls={ls}: loss {losses.mean():.6f}, z {np.round(z, 3)}, max |g| {max(np.abs(v).max() for v in grads.values()):.4g}")
    out = {
        "description": "Generated by scripts/reference/dpo_ref.py fixture (float64 numpy, central FD eps 1e-5). "
                       "Base model: test/fixtures/model/base.json; reference = bare base.",
        "lora": {"r": r, "lora_alpha": alpha, "lora_dropout": 0.0, "use_rslora": False, "target_modules": targets,
                 "tensors": tensors},
        "pairs": pairs,
        "policy_logps": rounded(pol),
        "ref_logps": rounded(refl),
        "cases": expected,
    }
    os.makedirs(os.path.join(FIXTURES, "dpo"), exist_ok=True)
    path = os.path.join(FIXTURES, "dpo", "grad.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print(f"{path}: {os.path.getsize(path) / 1024:.1f} KB")


# ---------------------------------------------------------------------------------------------------------------
# check: a model dir + PEFT adapter from disk, one AdamW step


def read_safetensors(path):
    """{name: float64 array}; F32, F16 and BF16 (top 16 bits of a float32)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        raw = data[e["data_offsets"][0]: e["data_offsets"][1]]
        if e["dtype"] == "F32":
            a = np.frombuffer(raw, dtype="<f4")
        elif e["dtype"] == "F16":
            a = np.frombuffer(raw, dtype="<f2")
        elif e["dtype"] == "BF16":
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(f"{path}: {name}: dtype {e['dtype']}")
        out[name] = a.astype(np.float64).reshape(e["shape"])
    return out


def read_model(d):
    cfg = json.load(open(os.path.join(d, "config.json")))
    index = os.path.join(d, "model.safetensors.index.json")
    w = {}
    if os.path.exists(index):
        for f in sorted(set(json.load(open(index))["weight_map"].values())):
            w.update(read_safetensors(os.path.join(d, f)))
    else:
        w = read_safetensors(os.path.join(d, "model.safetensors"))
    return cfg, w


def read_adapter(d):
    ac = json.load(open(os.path.join(d, "adapter_config.json")))
    assert ac["peft_type"] == "LORA" and not ac.get("use_dora", False)
    r = ac["r"]
    scale = ac["lora_alpha"] / (math.sqrt(r) if ac.get("use_rslora", False) else r)
    lora = {"scale": scale, "A": {}, "B": {}}
    for k, v in read_safetensors(os.path.join(d, "adapter_model.safetensors")).items():
        path, side = k[len("base_model.model."):-len(".weight")].rsplit(".lora_", 1)
        lora[side][path] = v.copy()
    return ac, lora


def check(a):
    cfg, w = read_model(a.model)
    _, lora = read_adapter(a.adapter)
    ref_lora = None if a.ref_adapter == "none" else read_adapter(a.ref_adapter)[1]
    pairs = json.load(open(a.ids))
    b = batch(pairs)
    refl = sequence_logps(cfg, w, b, ref_lora)
    pol = sequence_logps(cfg, w, b, lora)
    losses, rc, rr, _ = dpo_losses(pol, refl, b[3], a.loss, a.beta, a.label_smoothing)
    perturbed = fd_logps(cfg, w, b, lora, a.fd_eps)
    grads = fd_grads(perturbed, refl, b[3], a.fd_eps, a.loss, a.beta, a.label_smoothing)
    norm = math.sqrt(sum(float((g ** 2).sum()) for g in grads.values()))
    # torch.nn.utils.clip_grad_norm_, then torch.optim.AdamW at step 1 (zero moments; bias corrections 1 - beta^1).
    coef = min(1.0, a.max_grad_norm / (norm + 1e-6)) if a.max_grad_norm > 0 else 1.0
    after = {}
    for key, g0 in grads.items():
        path, side = key.rsplit(".lora_", 1)
        p = lora[side][path].reshape(-1) * (1 - a.lr * a.weight_decay)
        g = g0 * coef
        m = (1 - a.adam_beta1) * g
        v = (1 - a.adam_beta2) * g * g
        denom = np.sqrt(v) / math.sqrt(1 - a.adam_beta2) + a.adam_eps
        after[f"base_model.model.{key}.weight"] = (p - a.lr / (1 - a.adam_beta1) * m / denom).tolist()
    json.dump({
        "loss": float(losses.mean()), "losses": losses.tolist(),
        "rewards/chosen": float(rc.mean()), "rewards/rejected": float(rr.mean()),
        "logps/chosen": float(pol[: len(pairs)].mean()), "logps/rejected": float(pol[len(pairs):].mean()),
        "grad_norm": norm, "clip_coef": coef,
        "grads": {f"base_model.model.{k}.weight": g.tolist() for k, g in grads.items()},
        "adapter_after": after,
    }, sys.stdout)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("fixture")
    c = sub.add_parser("check")
    c.add_argument("--model", required=True)
    c.add_argument("--adapter", required=True)
    c.add_argument("--ref-adapter", default="none")
    c.add_argument("--ids", required=True)
    c.add_argument("--loss", default="sigmoid")
    c.add_argument("--beta", type=float, default=0.1)
    c.add_argument("--label-smoothing", type=float, default=0.0)
    c.add_argument("--lr", type=float, default=1e-3)
    c.add_argument("--weight-decay", type=float, default=0.0)
    c.add_argument("--max-grad-norm", type=float, default=1.0)
    c.add_argument("--adam-beta1", type=float, default=0.9)
    c.add_argument("--adam-beta2", type=float, default=0.999)
    c.add_argument("--adam-eps", type=float, default=1e-8)
    c.add_argument("--fd-eps", type=float, default=1e-6)
    a = ap.parse_args()
    if a.cmd == "fixture":
        fixture()
    else:
        check(a)


if __name__ == "__main__":
    main()
