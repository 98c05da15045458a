# Independent float64 numpy reference of the Llama 3.1 forward (HF `modeling_llama` semantics), with LoRA and log-probs.
# Written from the HF/PEFT definitions, not from the TypeScript; slow on purpose (explicit per-head loops). No KV cache.
import math

import numpy as np


def inv_freq(head_dim, theta, rope_scaling):
    """HF `_compute_default_rope_parameters` then `_compute_llama3_parameters`, in float64."""
    f = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    if rope_scaling is None:
        return f
    assert rope_scaling["rope_type"] == "llama3"
    factor = rope_scaling["factor"]
    low = rope_scaling["low_freq_factor"]
    high = rope_scaling["high_freq_factor"]
    old_ctx = rope_scaling["original_max_position_embeddings"]
    low_freq_wavelen = old_ctx / low
    high_freq_wavelen = old_ctx / high
    wavelen = 2 * math.pi / f
    out = np.where(wavelen > low_freq_wavelen, f / factor, f)
    smooth = (old_ctx / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * out / factor + smooth * out
    medium = ~(wavelen < high_freq_wavelen) & ~(wavelen > low_freq_wavelen)
    return np.where(medium, smoothed, out)


def positions(mask):
    """HF `generate`: position_ids = cumsum(mask) - 1, set to 1 at pads."""
    pos = np.cumsum(mask, axis=1) - 1
    return np.where(mask == 1, pos, 1)


def rms_norm(x, w, eps):
    var = np.mean(x * x, axis=-1, keepdims=True)
    return w * (x / np.sqrt(var + eps))


def rotate_half(x):
    d = x.shape[-1] // 2
    return np.concatenate([-x[..., d:], x[..., :d]], axis=-1)


def linear(x, weights, name, has_bias, lora):
    """PEFT LoRA linear (no dropout): x W^T + b + scale * (x A^T) B^T."""
    y = x @ weights[name + ".weight"].T
    if has_bias:
        y = y + weights[name + ".bias"]
    if lora is not None and name in lora["A"]:
        y = y + lora["scale"] * ((x @ lora["A"][name].T) @ lora["B"][name].T)
    return y


def forward(cfg, weights, input_ids, attention_mask, lora=None):
    """Logits [B, T, V] in float64. cfg is an HF config.json dict."""
    H = cfg["hidden_size"]
    N = cfg["num_attention_heads"]
    K = cfg.get("num_key_value_heads", N)
    D = cfg.get("head_dim", H // N)
    eps = cfg["rms_norm_eps"]
    attn_bias = cfg.get("attention_bias", False)
    mlp_bias = cfg.get("mlp_bias", False)
    B, T = input_ids.shape
    mask = np.asarray(attention_mask)

    freqs = positions(mask)[:, :, None].astype(np.float64) * inv_freq(D, cfg["rope_theta"], cfg.get("rope_scaling"))[None, None, :]
    emb = np.concatenate([freqs, freqs], axis=-1)  # [B, T, D]
    cos, sin = np.cos(emb), np.sin(emb)

    # allowed[b, i, j]: query i sees key j when j <= i and key j is a token.
    allowed = np.tril(np.ones((T, T), dtype=bool))[None, :, :] & (mask[:, None, :] == 1)
    assert allowed.any(axis=-1).all(), "a query row sees no key; the reference only handles right padding"

    x = weights["model.embed_tokens.weight"][input_ids]  # [B, T, H]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}"
        h = rms_norm(x, weights[f"{p}.input_layernorm.weight"], eps)
        q = linear(h, weights, f"{p}.self_attn.q_proj", attn_bias, lora).reshape(B, T, N, D)
        k = linear(h, weights, f"{p}.self_attn.k_proj", attn_bias, lora).reshape(B, T, K, D)
        v = linear(h, weights, f"{p}.self_attn.v_proj", attn_bias, lora).reshape(B, T, K, D)
        out = np.zeros((B, T, N, D))
        for b in range(B):
            for n in range(N):
                kv = n // (N // K)  # HF repeat_kv: query head n reads kv head n // groups
                qn = q[b, :, n, :] * cos[b] + rotate_half(q[b, :, n, :]) * sin[b]  # [T, D]
                kn = k[b, :, kv, :] * cos[b] + rotate_half(k[b, :, kv, :]) * sin[b]
                s = (qn @ kn.T) / math.sqrt(D)  # [T, T]
                s = np.where(allowed[b], s, -np.inf)
                s = s - s.max(axis=-1, keepdims=True)
                pr = np.exp(s)
                pr = pr / pr.sum(axis=-1, keepdims=True)
                out[b, :, n, :] = pr @ v[b, :, kv, :]
        x = x + linear(out.reshape(B, T, N * D), weights, f"{p}.self_attn.o_proj", attn_bias, lora)
        h = rms_norm(x, weights[f"{p}.post_attention_layernorm.weight"], eps)
        g = linear(h, weights, f"{p}.mlp.gate_proj", mlp_bias, lora)
        u = linear(h, weights, f"{p}.mlp.up_proj", mlp_bias, lora)
        silu = g / (1 + np.exp(-g))
        x = x + linear(silu * u, weights, f"{p}.mlp.down_proj", mlp_bias, lora)
    x = rms_norm(x, weights["model.norm.weight"], eps)
    head = weights["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", False) else weights["lm_head.weight"]
    return x @ head.T


def log_softmax(z):
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def completion_logp(logits, input_ids, attention_mask, completion_start):
    """Per row: sum over completion tokens t (start <= t, mask 1) of log_softmax(logits[t-1])[ids[t]]."""
    lp = log_softmax(logits)
    out = []
    for b in range(input_ids.shape[0]):
        total = 0.0
        for t in range(completion_start[b], input_ids.shape[1]):
            if attention_mask[b, t] == 1:
                total += lp[b, t - 1, input_ids[b, t]]
        out.append(total)
    return out
