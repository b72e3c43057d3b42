#!/usr/bin/python3
"""Float64 references for the BERT family (DistilBERT, RoBERTa, ELECTRA), computed outside NBert.

Run with Debian's /usr/bin/python3 and its numpy (1.24.2 when these fixtures were made), from the repository root:

    /usr/bin/python3 tools/FamilyReferences/make_references.py

For each family it writes, under tests/fixtures/<family>/:
  - one directory per transformers class (model/, maskedlm/, seqcls/, tokcls/, qa/; ELECTRA also pretraining/, its
    discriminator): config.json as transformers'
    <Family>Config.to_json_string writes it, model.safetensors with the family's real weight names (written by this
    script, float32, the masked-LM decoder tied to the word embeddings so absent as transformers saves it) and the
    tokenizer files (DistilBERT and ELECTRA: BERT's, the 4,000-entry vocabulary of tests/fixtures/model; RoBERTa: the
    byte-level BPE of tests/fixtures/bpe, vocab.json and merges.txt);
  - expected.safetensors: the inputs (I64) and every head's outputs and losses (F64), computed here in float64 from the
    float32 weights (each widened exactly), following transformers' modeling_<family>.py line by line (comments say
    which class each step stands for).

The weights are random (seeded) with LayerNorms away from 1 and 0, so the outputs are meaningless but exact. Nothing
but numpy and the standard library is used: no torch, no transformers.
"""
import json
import math
import os
import struct
import sys

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
VOCAB = os.path.join(FIXTURES, "model", "seqcls", "vocab.txt")


# ---- safetensors, written by hand (the format: 8-byte header length, JSON header, raw little-endian data) ----

def write_safetensors(path, tensors):
    """tensors: name -> numpy array (float32, float64 or int64), written in name order."""
    header, blobs, offset = {}, [], 0
    dtypes = {np.dtype("float32"): "F32", np.dtype("float64"): "F64", np.dtype("int64"): "I64"}
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        data = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtypes[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


# ---- the operations, in float64 (as torch computes them) ----

_erf = np.vectorize(math.erf)


def gelu(x):  # transformers' GELUActivation: x * 0.5 * (1 + erf(x / sqrt(2)))
    return x * 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))


def relu(x):
    return np.maximum(x, 0.0)


def gelu_new(x):  # transformers' NewGELUActivation (gelu_new): the tanh approximation
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


ACT = {"gelu": gelu, "relu": relu, "gelu_new": gelu_new}


def linear(x, p, name):  # torch.nn.Linear: x @ W.T + b
    return x @ p[name + ".weight"].T + p[name + ".bias"]


def layer_norm(x, p, name, eps):  # torch.nn.LayerNorm over the last dimension (biased variance)
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * p[name + ".weight"] + p[name + ".bias"]


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def log_softmax(x):
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def cross_entropy(logits, labels, ignore=-100):  # torch.nn.CrossEntropyLoss (mean over labels that are not ignored)
    logits = logits.reshape(-1, logits.shape[-1])
    labels = labels.reshape(-1)
    keep = labels != ignore
    lp = log_softmax(logits[keep])
    return float(-lp[np.arange(lp.shape[0]), labels[keep]].mean())


# ---- DistilBERT (transformers/models/distilbert/modeling_distilbert.py) ----

def distilbert_body(p, cfg, ids, mask, prefix):
    """DistilBertModel: Embeddings then Transformer; returns every hidden state (embeddings first)."""
    b, s = ids.shape
    dim, heads = cfg["dim"], cfg["n_heads"]
    d = dim // heads
    act = ACT[cfg["activation"]]
    # Embeddings: word + position (position_ids = arange(seq_length)), LayerNorm(eps=1e-12), dropout (off).
    x = p[prefix + "embeddings.word_embeddings.weight"][ids] + p[prefix + "embeddings.position_embeddings.weight"][np.arange(s)][None]
    x = layer_norm(x, p, prefix + "embeddings.LayerNorm", 1e-12)
    states = [x]
    for i in range(cfg["n_layers"]):
        l = f"{prefix}transformer.layer.{i}."
        # MultiHeadSelfAttention: q / sqrt(dim_per_head), q @ k^T, masked_fill(mask == 0, finfo.min), softmax, @ v, out_lin.
        def shape(t):
            return t.reshape(b, s, heads, d).transpose(0, 2, 1, 3)
        q = shape(linear(x, p, l + "attention.q_lin")) / math.sqrt(d)
        k = shape(linear(x, p, l + "attention.k_lin"))
        v = shape(linear(x, p, l + "attention.v_lin"))
        scores = q @ k.transpose(0, 1, 3, 2)
        scores = np.where(mask[:, None, None, :] == 0, np.finfo(np.float64).min, scores)
        context = (softmax(scores) @ v).transpose(0, 2, 1, 3).reshape(b, s, dim)
        sa = linear(context, p, l + "attention.out_lin")
        # TransformerBlock: sa_layer_norm(sa_output + x); FFN lin1, activation, lin2; output_layer_norm(ffn + sa).
        sa = layer_norm(sa + x, p, l + "sa_layer_norm", 1e-12)
        ffn = linear(act(linear(sa, p, l + "ffn.lin1")), p, l + "ffn.lin2")
        x = layer_norm(ffn + sa, p, l + "output_layer_norm", 1e-12)
        states.append(x)
    return states


def make_distilbert():
    rng = np.random.default_rng(20261207)
    vocab = [line.rstrip("\n") for line in open(VOCAB, encoding="utf-8")]
    cfg = {
        "activation": "gelu", "attention_dropout": 0.1, "dim": 16, "dropout": 0.1, "hidden_dim": 32, "initializer_range": 0.02,
        "max_position_embeddings": 64, "model_type": "distilbert", "n_heads": 2, "n_layers": 2, "pad_token_id": 0,
        "qa_dropout": 0.1, "seq_classif_dropout": 0.2, "sinusoidal_pos_embds": False, "tie_weights_": True,
        "tie_word_embeddings": True, "transformers_version": "5.17.0", "vocab_size": len(vocab),
    }
    dim, hidden = cfg["dim"], cfg["hidden_dim"]

    def normal(*shape, std=0.3):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    def norm(name, n):
        return {name + ".weight": (1 + normal(n, std=0.1)), name + ".bias": normal(n, std=0.1)}

    def lin(name, out, inp):
        return {name + ".weight": normal(out, inp), name + ".bias": normal(out, std=0.1)}

    body = {"embeddings.word_embeddings.weight": normal(len(vocab), dim, std=0.5),
            "embeddings.position_embeddings.weight": normal(cfg["max_position_embeddings"], dim, std=0.5)}
    body.update(norm("embeddings.LayerNorm", dim))
    for i in range(cfg["n_layers"]):
        l = f"transformer.layer.{i}."
        for part in ("q_lin", "k_lin", "v_lin", "out_lin"):
            body.update(lin(l + "attention." + part, dim, dim))
        body.update(norm(l + "sa_layer_norm", dim))
        body.update(lin(l + "ffn.lin1", hidden, dim))
        body.update(lin(l + "ffn.lin2", dim, hidden))
        body.update(norm(l + "output_layer_norm", dim))
    heads = {"mlm": {}, "seqcls": {}, "tokcls": {}, "qa": {}}
    heads["mlm"].update(lin("vocab_transform", dim, dim))
    heads["mlm"].update(norm("vocab_layer_norm", dim))
    heads["mlm"]["vocab_projector.bias"] = normal(len(vocab), std=0.1)
    heads["seqcls"].update(lin("pre_classifier", dim, dim))
    heads["seqcls"].update(lin("classifier", 3, dim))
    heads["tokcls"].update(lin("classifier", 5, dim))
    heads["qa"].update(lin("qa_outputs", 2, dim))

    # The batch: [CLS] ... [SEP] with right padding on row 0, none on row 1, a mask with a hole on row 2; token types
    # that DistilBERT ignores (its forward takes none).
    b, s = 3, 9
    ids = rng.integers(1000, len(vocab), size=(b, s)).astype(np.int64)
    ids[:, 0] = vocab.index("[CLS]")
    mask = np.ones((b, s), dtype=np.int64)
    ids[0, 6] = vocab.index("[SEP]")
    ids[0, 7:] = 0
    mask[0, 7:] = 0
    ids[1, 8] = vocab.index("[SEP]")
    ids[2, 3] = vocab.index("[MASK]")
    mask[2, 4] = 0
    types = rng.integers(0, 2, size=(b, s)).astype(np.int64)

    labels2 = {"seqcls": ["negative", "neutral", "positive"], "tokcls": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]}
    arch = {"model": "DistilBertModel", "maskedlm": "DistilBertForMaskedLM", "seqcls": "DistilBertForSequenceClassification",
            "tokcls": "DistilBertForTokenClassification", "qa": "DistilBertForQuestionAnswering"}
    head_of = {"model": None, "maskedlm": "mlm", "seqcls": "seqcls", "tokcls": "tokcls", "qa": "qa"}
    out_dir = os.path.join(FIXTURES, "distilbert")
    for name, cls in arch.items():
        d = os.path.join(out_dir, name)
        os.makedirs(d, exist_ok=True)
        c = dict(cfg, architectures=[cls])
        if name in labels2:
            c["id2label"] = {str(i): l for i, l in enumerate(labels2[name])}
            c["label2id"] = {l: i for i, l in enumerate(labels2[name])}
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(dict(sorted(c.items())), f, indent=2)
            f.write("\n")
        # DistilBertModel alone is saved without the base model's prefix; a head's body under "distilbert.".
        weights = {(k if name == "model" else "distilbert." + k): v for k, v in body.items()}
        if head_of[name]:
            weights.update(heads[head_of[name]])
        write_safetensors(os.path.join(d, "model.safetensors"), weights)
        with open(os.path.join(d, "vocab.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(vocab) + "\n")
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump({"cls_token": "[CLS]", "do_lower_case": True, "mask_token": "[MASK]", "model_input_names": ["input_ids", "attention_mask"],
                       "model_max_length": 64, "pad_token": "[PAD]", "sep_token": "[SEP]", "tokenizer_class": "DistilBertTokenizer",
                       "unk_token": "[UNK]"}, f, indent=2)
            f.write("\n")

    # The forward passes, from the float32 weights widened to float64.
    p = {k: v.astype(np.float64) for k, v in body.items()}
    hp = {name: {k: v.astype(np.float64) for k, v in h.items()} for name, h in heads.items()}  # each head's own (two are "classifier")
    states = distilbert_body(p, cfg, ids, mask, "")
    x = states[-1]
    out = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "last_hidden_state": x}
    for i, h in enumerate(states):
        out[f"hidden_states.{i}"] = h
    # DistilBertForMaskedLM: vocab_transform, activation, vocab_layer_norm (eps 1e-12), vocab_projector (tied).
    t = layer_norm(ACT[cfg["activation"]](linear(x, hp["mlm"], "vocab_transform")), hp["mlm"], "vocab_layer_norm", 1e-12)
    mlm = t @ p["embeddings.word_embeddings.weight"].T + hp["mlm"]["vocab_projector.bias"]
    mlm_labels = np.full((b, s), -100, dtype=np.int64)
    mlm_labels[0, 2], mlm_labels[1, 5], mlm_labels[2, 3], mlm_labels[2, 7] = 1500, 2200, 3999, 17
    out.update({"maskedlm.logits": mlm, "maskedlm.labels": mlm_labels, "maskedlm.loss": np.array(cross_entropy(mlm, mlm_labels))})
    # DistilBertForSequenceClassification: hidden_state[:, 0], pre_classifier, ReLU, dropout (off), classifier.
    pooled = relu(linear(x[:, 0], hp["seqcls"], "pre_classifier"))
    seq = linear(pooled, hp["seqcls"], "classifier")
    seq_labels = np.array([2, 0, 1], dtype=np.int64)
    out.update({"seqcls.logits": seq, "seqcls.labels": seq_labels, "seqcls.loss": np.array(cross_entropy(seq, seq_labels))})
    # DistilBertForTokenClassification: dropout (off), classifier on every token; CrossEntropyLoss over labels != -100.
    tok = linear(x, hp["tokcls"], "classifier")
    tok_labels = rng.integers(0, 5, size=(b, s)).astype(np.int64)
    tok_labels[mask == 0] = -100
    tok_labels[:, 0] = -100
    out.update({"tokcls.logits": tok, "tokcls.labels": tok_labels, "tokcls.loss": np.array(cross_entropy(tok, tok_labels))})
    # DistilBertForQuestionAnswering: dropout (off), qa_outputs, split; loss: positions clamped to [0, s], ignore_index s.
    qa = linear(x, hp["qa"], "qa_outputs")
    start, end = qa[..., 0], qa[..., 1]
    sp, ep = np.array([1, 2, 4], dtype=np.int64), np.array([3, 12, 5], dtype=np.int64)
    spc, epc = np.clip(sp, 0, s), np.clip(ep, 0, s)
    qa_loss = (cross_entropy(start, spc, ignore=s) + cross_entropy(end, epc, ignore=s)) / 2
    out.update({"qa.start_logits": start, "qa.end_logits": end, "qa.start_positions": sp, "qa.end_positions": ep, "qa.loss": np.array(qa_loss)})
    write_safetensors(os.path.join(out_dir, "expected.safetensors"), out)
    print(f"distilbert: {len(out)} tensors in {out_dir}")


# ---- RoBERTa (transformers/models/roberta/modeling_roberta.py) ----

def bert_layers(p, cfg, x, mask, prefix):
    """BertEncoder's layers (RoBERTa's are BERT's): additive mask (1 - mask) * finfo.min, post-LayerNorm."""
    b, s, h = x.shape
    heads = cfg["num_attention_heads"]
    d = h // heads
    act = ACT[cfg["hidden_act"]]
    eps = cfg["layer_norm_eps"]
    additive = (1.0 - mask[:, None, None, :]) * np.finfo(np.float64).min
    states = [x]
    for i in range(cfg["num_hidden_layers"]):
        l = f"{prefix}encoder.layer.{i}."
        def shape(t):
            return t.reshape(b, s, heads, d).transpose(0, 2, 1, 3)
        q, k, v = (shape(linear(x, p, l + "attention.self." + n)) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + additive
        context = (softmax(scores) @ v).transpose(0, 2, 1, 3).reshape(b, s, h)
        attn = layer_norm(linear(context, p, l + "attention.output.dense") + x, p, l + "attention.output.LayerNorm", eps)
        inner = act(linear(attn, p, l + "intermediate.dense"))
        x = layer_norm(linear(inner, p, l + "output.dense") + attn, p, l + "output.LayerNorm", eps)
        states.append(x)
    return states


def roberta_positions(ids, pad):
    """create_position_ids_from_input_ids: cumsum(ids != pad) * (ids != pad) + pad."""
    real = (ids != pad).astype(np.int64)
    return np.cumsum(real, axis=1) * real + pad


def make_roberta():
    rng = np.random.default_rng(20261208)
    bpe = os.path.join(FIXTURES, "bpe")
    vocab = json.load(open(os.path.join(bpe, "vocab.json"), encoding="utf-8"))
    cfg = {
        "attention_probs_dropout_prob": 0.1, "bos_token_id": 0, "classifier_dropout": None, "eos_token_id": 2,
        # gelu_new in the layers, so that the LM head's fixed exact GELU (RobertaLMHead calls gelu) shows.
        "hidden_act": "gelu_new", "hidden_dropout_prob": 0.1, "hidden_size": 16, "initializer_range": 0.02, "intermediate_size": 32,
        "layer_norm_eps": 1e-05, "max_position_embeddings": 40, "model_type": "roberta", "num_attention_heads": 2, "num_hidden_layers": 2,
        "pad_token_id": 1, "position_embedding_type": "absolute", "tie_word_embeddings": True, "transformers_version": "5.17.0",
        "type_vocab_size": 1, "use_cache": True, "vocab_size": len(vocab),
    }
    h, inner, pad = cfg["hidden_size"], cfg["intermediate_size"], cfg["pad_token_id"]

    def normal(*shape, std=0.3):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    def norm(name, n):
        return {name + ".weight": (1 + normal(n, std=0.1)), name + ".bias": normal(n, std=0.1)}

    def lin(name, out, inp):
        return {name + ".weight": normal(out, inp), name + ".bias": normal(out, std=0.1)}

    body = {"embeddings.word_embeddings.weight": normal(len(vocab), h, std=0.5),
            "embeddings.position_embeddings.weight": normal(cfg["max_position_embeddings"], h, std=0.5),
            "embeddings.token_type_embeddings.weight": normal(1, h, std=0.5)}
    body.update(norm("embeddings.LayerNorm", h))
    for i in range(cfg["num_hidden_layers"]):
        l = f"encoder.layer.{i}."
        for part in ("query", "key", "value"):
            body.update(lin(l + "attention.self." + part, h, h))
        body.update(lin(l + "attention.output.dense", h, h))
        body.update(norm(l + "attention.output.LayerNorm", h))
        body.update(lin(l + "intermediate.dense", inner, h))
        body.update(lin(l + "output.dense", h, inner))
        body.update(norm(l + "output.LayerNorm", h))
    pooler = lin("pooler.dense", h, h)
    heads = {"mlm": {}, "seqcls": {}, "tokcls": {}, "qa": {}}
    heads["mlm"].update(lin("lm_head.dense", h, h))
    heads["mlm"].update(norm("lm_head.layer_norm", h))
    heads["mlm"]["lm_head.bias"] = normal(len(vocab), std=0.1)
    heads["seqcls"].update(lin("classifier.dense", h, h))
    heads["seqcls"].update(lin("classifier.out_proj", 3, h))
    heads["tokcls"].update(lin("classifier", 5, h))
    heads["qa"].update(lin("qa_outputs", 2, h))

    # <s> ... </s>, right padding (pad 1) on row 0, none on row 1, a padding token inside row 2 (masked): its position
    # id is pad, and the positions after it skip it.
    b, s = 3, 11
    ids = rng.integers(10, len(vocab) - 1, size=(b, s)).astype(np.int64)
    ids[:, 0] = vocab["<s>"]
    mask = np.ones((b, s), dtype=np.int64)
    ids[0, 7] = vocab["</s>"]
    ids[0, 8:] = pad
    mask[0, 8:] = 0
    ids[1, 10] = vocab["</s>"]
    ids[2, 4] = pad
    mask[2, 4] = 0
    ids[2, 6] = vocab["<mask>"]
    ids[2, 10] = vocab["</s>"]
    types = np.zeros((b, s), dtype=np.int64)

    labels2 = {"seqcls": ["negative", "neutral", "positive"], "tokcls": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]}
    arch = {"model": "RobertaModel", "maskedlm": "RobertaForMaskedLM", "seqcls": "RobertaForSequenceClassification",
            "tokcls": "RobertaForTokenClassification", "qa": "RobertaForQuestionAnswering"}
    head_of = {"model": None, "maskedlm": "mlm", "seqcls": "seqcls", "tokcls": "tokcls", "qa": "qa"}
    out_dir = os.path.join(FIXTURES, "roberta")
    for name, cls in arch.items():
        d = os.path.join(out_dir, name)
        os.makedirs(d, exist_ok=True)
        c = dict(cfg, architectures=[cls])
        if name in labels2:
            c["id2label"] = {str(i): l for i, l in enumerate(labels2[name])}
            c["label2id"] = {l: i for i, l in enumerate(labels2[name])}
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(dict(sorted(c.items())), f, indent=2)
            f.write("\n")
        # RobertaModel alone is saved without the prefix and with its pooler; the heads are built without a pooler.
        weights = dict(body, **pooler) if name == "model" else {"roberta." + k: v for k, v in body.items()}
        if head_of[name]:
            weights.update(heads[head_of[name]])
        write_safetensors(os.path.join(d, "model.safetensors"), weights)
        for f in ("vocab.json", "merges.txt", "tokenizer_config.json"):
            with open(os.path.join(bpe, f), "rb") as src, open(os.path.join(d, f), "wb") as dst:
                dst.write(src.read())

    p = {k: v.astype(np.float64) for k, v in dict(body, **pooler).items()}
    hp = {name: {k: v.astype(np.float64) for k, v in hd.items()} for name, hd in heads.items()}
    # RobertaEmbeddings: word + token type (zeros) + position (from the ids), LayerNorm, dropout (off).
    positions = roberta_positions(ids, pad)
    x = (p["embeddings.word_embeddings.weight"][ids] + p["embeddings.token_type_embeddings.weight"][types]
         + p["embeddings.position_embeddings.weight"][positions])
    x = layer_norm(x, p, "embeddings.LayerNorm", cfg["layer_norm_eps"])
    states = bert_layers(p, cfg, x, mask, "")
    x = states[-1]
    out = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "position_ids": positions, "last_hidden_state": x,
           "pooler_output": np.tanh(linear(x[:, 0], p, "pooler.dense"))}
    for i, st in enumerate(states):
        out[f"hidden_states.{i}"] = st
    # RobertaLMHead: dense, gelu (exact, whatever hidden_act is), layer_norm (layer_norm_eps), decoder (tied) + bias.
    t = layer_norm(gelu(linear(x, hp["mlm"], "lm_head.dense")), hp["mlm"], "lm_head.layer_norm", cfg["layer_norm_eps"])
    mlm = t @ p["embeddings.word_embeddings.weight"].T + hp["mlm"]["lm_head.bias"]
    mlm_labels = np.full((b, s), -100, dtype=np.int64)
    mlm_labels[0, 2], mlm_labels[1, 5], mlm_labels[2, 6], mlm_labels[2, 9] = 700, 1200, 1998, 17
    out.update({"maskedlm.logits": mlm, "maskedlm.labels": mlm_labels, "maskedlm.loss": np.array(cross_entropy(mlm, mlm_labels))})
    # RobertaClassificationHead on <s>: dropout (off), dense, tanh, dropout (off), out_proj.
    seq = linear(np.tanh(linear(x[:, 0], hp["seqcls"], "classifier.dense")), hp["seqcls"], "classifier.out_proj")
    seq_labels = np.array([1, 2, 0], dtype=np.int64)
    out.update({"seqcls.logits": seq, "seqcls.labels": seq_labels, "seqcls.loss": np.array(cross_entropy(seq, seq_labels))})
    tok = linear(x, hp["tokcls"], "classifier")
    tok_labels = rng.integers(0, 5, size=(b, s)).astype(np.int64)
    tok_labels[mask == 0] = -100
    tok_labels[:, 0] = -100
    out.update({"tokcls.logits": tok, "tokcls.labels": tok_labels, "tokcls.loss": np.array(cross_entropy(tok, tok_labels))})
    qa = linear(x, hp["qa"], "qa_outputs")
    start, end = qa[..., 0], qa[..., 1]
    sp, ep = np.array([1, 3, 5], dtype=np.int64), np.array([2, 30, 8], dtype=np.int64)
    qa_loss = (cross_entropy(start, np.clip(sp, 0, s), ignore=s) + cross_entropy(end, np.clip(ep, 0, s), ignore=s)) / 2
    out.update({"qa.start_logits": start, "qa.end_logits": end, "qa.start_positions": sp, "qa.end_positions": ep, "qa.loss": np.array(qa_loss)})
    write_safetensors(os.path.join(out_dir, "expected.safetensors"), out)
    print(f"roberta: {len(out)} tensors in {out_dir}")


# ---- ELECTRA (transformers/models/electra/modeling_electra.py) ----

def bce_with_logits(logits, labels):  # torch.nn.BCEWithLogitsLoss (mean): max(x, 0) - x y + log(1 + exp(-|x|))
    return float((np.maximum(logits, 0.0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))).mean())


def make_electra():
    rng = np.random.default_rng(20261209)
    vocab = [line.rstrip("\n") for line in open(VOCAB, encoding="utf-8")]
    cfg = {
        "attention_probs_dropout_prob": 0.1, "classifier_dropout": None, "embedding_size": 8,
        # gelu_new in the layers and the discriminator, so that the classification head's fixed exact GELU shows.
        "hidden_act": "gelu_new", "hidden_dropout_prob": 0.1, "hidden_size": 16, "initializer_range": 0.02, "intermediate_size": 32,
        "layer_norm_eps": 1e-12, "max_position_embeddings": 64, "model_type": "electra", "num_attention_heads": 2, "num_hidden_layers": 2,
        "pad_token_id": 0, "position_embedding_type": "absolute", "summary_activation": "gelu", "summary_last_dropout": 0.1,
        "summary_type": "first", "summary_use_proj": True, "transformers_version": "5.17.0", "type_vocab_size": 2, "use_cache": True,
        "vocab_size": len(vocab),
    }
    e, h, inner = cfg["embedding_size"], cfg["hidden_size"], cfg["intermediate_size"]

    def normal(*shape, std=0.3):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    def norm(name, n):
        return {name + ".weight": (1 + normal(n, std=0.1)), name + ".bias": normal(n, std=0.1)}

    def lin(name, out, inp):
        return {name + ".weight": normal(out, inp), name + ".bias": normal(out, std=0.1)}

    # ElectraEmbeddings are embedding_size wide; embeddings_project takes them to hidden_size (embedding_size != hidden_size).
    body = {"embeddings.word_embeddings.weight": normal(len(vocab), e, std=0.5),
            "embeddings.position_embeddings.weight": normal(cfg["max_position_embeddings"], e, std=0.5),
            "embeddings.token_type_embeddings.weight": normal(2, e, std=0.5)}
    body.update(norm("embeddings.LayerNorm", e))
    body.update(lin("embeddings_project", h, e))
    for i in range(cfg["num_hidden_layers"]):
        l = f"encoder.layer.{i}."
        for part in ("query", "key", "value"):
            body.update(lin(l + "attention.self." + part, h, h))
        body.update(lin(l + "attention.output.dense", h, h))
        body.update(norm(l + "attention.output.LayerNorm", h))
        body.update(lin(l + "intermediate.dense", inner, h))
        body.update(lin(l + "output.dense", h, inner))
        body.update(norm(l + "output.LayerNorm", h))
    heads = {"disc": {}, "mlm": {}, "seqcls": {}, "tokcls": {}, "qa": {}}
    # ElectraGeneratorPredictions: dense hidden_size -> embedding_size, LayerNorm(embedding_size); generator_lm_head
    # [vocab, embedding_size] tied to the word embeddings (so absent), its bias.
    heads["mlm"].update(lin("generator_predictions.dense", e, h))
    heads["mlm"].update(norm("generator_predictions.LayerNorm", e))
    heads["mlm"]["generator_lm_head.bias"] = normal(len(vocab), std=0.1)
    heads["disc"].update(lin("discriminator_predictions.dense", h, h))
    heads["disc"].update(lin("discriminator_predictions.dense_prediction", 1, h))
    heads["seqcls"].update(lin("classifier.dense", h, h))
    heads["seqcls"].update(lin("classifier.out_proj", 3, h))
    heads["tokcls"].update(lin("classifier", 5, h))
    heads["qa"].update(lin("qa_outputs", 2, h))

    # [CLS] A [SEP] B [SEP] with token types, right padding on row 0, none on row 1, a mask with a hole on row 2.
    b, s = 3, 10
    ids = rng.integers(1000, len(vocab), size=(b, s)).astype(np.int64)
    ids[:, 0] = vocab.index("[CLS]")
    mask = np.ones((b, s), dtype=np.int64)
    types = np.zeros((b, s), dtype=np.int64)
    ids[0, 3], ids[0, 6] = vocab.index("[SEP]"), vocab.index("[SEP]")
    types[0, 4:7] = 1
    ids[0, 7:] = 0
    mask[0, 7:] = 0
    ids[1, 5], ids[1, 9] = vocab.index("[SEP]"), vocab.index("[SEP]")
    types[1, 6:] = 1
    ids[2, 3] = vocab.index("[MASK]")
    ids[2, 9] = vocab.index("[SEP]")
    mask[2, 4] = 0

    labels2 = {"seqcls": ["negative", "neutral", "positive"], "tokcls": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]}
    arch = {"model": "ElectraModel", "pretraining": "ElectraForPreTraining", "maskedlm": "ElectraForMaskedLM",
            "seqcls": "ElectraForSequenceClassification", "tokcls": "ElectraForTokenClassification", "qa": "ElectraForQuestionAnswering"}
    head_of = {"model": None, "pretraining": "disc", "maskedlm": "mlm", "seqcls": "seqcls", "tokcls": "tokcls", "qa": "qa"}
    out_dir = os.path.join(FIXTURES, "electra")
    for name, cls in arch.items():
        d = os.path.join(out_dir, name)
        os.makedirs(d, exist_ok=True)
        c = dict(cfg, architectures=[cls])
        if name in labels2:
            c["id2label"] = {str(i): l for i, l in enumerate(labels2[name])}
            c["label2id"] = {l: i for i, l in enumerate(labels2[name])}
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(dict(sorted(c.items())), f, indent=2)
            f.write("\n")
        # ElectraModel alone is saved without the base model's prefix (and has no pooler); a head's body under "electra.".
        weights = {(k if name == "model" else "electra." + k): v for k, v in body.items()}
        if head_of[name]:
            weights.update(heads[head_of[name]])
        write_safetensors(os.path.join(d, "model.safetensors"), weights)
        with open(os.path.join(d, "vocab.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(vocab) + "\n")
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump({"cls_token": "[CLS]", "do_lower_case": True, "mask_token": "[MASK]", "model_max_length": 64, "pad_token": "[PAD]",
                       "sep_token": "[SEP]", "tokenizer_class": "ElectraTokenizer", "unk_token": "[UNK]"}, f, indent=2)
            f.write("\n")

    p = {k: v.astype(np.float64) for k, v in body.items()}
    hp = {name: {k: v.astype(np.float64) for k, v in hd.items()} for name, hd in heads.items()}
    # ElectraEmbeddings: word + token type + position (0..s-1), LayerNorm (embedding_size), dropout (off); then ElectraModel's
    # embeddings_project. hidden_states[0] is the projected embeddings (what the encoder takes).
    x = (p["embeddings.word_embeddings.weight"][ids] + p["embeddings.token_type_embeddings.weight"][types]
         + p["embeddings.position_embeddings.weight"][np.arange(s)][None])
    normed = layer_norm(x, p, "embeddings.LayerNorm", cfg["layer_norm_eps"])
    x = linear(normed, p, "embeddings_project")
    states = bert_layers(p, cfg, x, mask, "")
    x = states[-1]
    out = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "embeddings_normed": normed, "last_hidden_state": x}
    for i, st in enumerate(states):
        out[f"hidden_states.{i}"] = st
    # ElectraDiscriminatorPredictions: dense, hidden_act, dense_prediction, squeeze(-1). ElectraForPreTraining's loss:
    # BCEWithLogitsLoss over the tokens whose attention mask is 1.
    disc = linear(ACT[cfg["hidden_act"]](linear(x, hp["disc"], "discriminator_predictions.dense")), hp["disc"],
                  "discriminator_predictions.dense_prediction")[..., 0]
    disc_labels = rng.integers(0, 2, size=(b, s)).astype(np.int64)
    active = mask == 1
    out.update({"pretraining.logits": disc, "pretraining.labels": disc_labels,
                "pretraining.loss": np.array(bce_with_logits(disc[active], disc_labels[active].astype(np.float64)))})
    # ElectraForMaskedLM: generator_predictions (dense, gelu whatever hidden_act is, LayerNorm with layer_norm_eps), then
    # generator_lm_head (the word embeddings, tied) + bias; CrossEntropyLoss over labels != -100.
    t = layer_norm(gelu(linear(x, hp["mlm"], "generator_predictions.dense")), hp["mlm"], "generator_predictions.LayerNorm", cfg["layer_norm_eps"])
    mlm = t @ p["embeddings.word_embeddings.weight"].T + hp["mlm"]["generator_lm_head.bias"]
    mlm_labels = np.full((b, s), -100, dtype=np.int64)
    mlm_labels[0, 2], mlm_labels[1, 5], mlm_labels[2, 3], mlm_labels[2, 8] = 1500, 2200, 3999, 17
    out.update({"maskedlm.logits": mlm, "maskedlm.labels": mlm_labels, "maskedlm.loss": np.array(cross_entropy(mlm, mlm_labels))})
    # ElectraClassificationHead on [CLS]: dropout (off), dense, gelu (get_activation("gelu"), whatever hidden_act is),
    # dropout (off), out_proj.
    seq = linear(gelu(linear(x[:, 0], hp["seqcls"], "classifier.dense")), hp["seqcls"], "classifier.out_proj")
    seq_labels = np.array([0, 2, 1], dtype=np.int64)
    out.update({"seqcls.logits": seq, "seqcls.labels": seq_labels, "seqcls.loss": np.array(cross_entropy(seq, seq_labels))})
    # ElectraForTokenClassification: dropout (off), classifier.
    tok = linear(x, hp["tokcls"], "classifier")
    tok_labels = rng.integers(0, 5, size=(b, s)).astype(np.int64)
    tok_labels[mask == 0] = -100
    tok_labels[:, 0] = -100
    out.update({"tokcls.logits": tok, "tokcls.labels": tok_labels, "tokcls.loss": np.array(cross_entropy(tok, tok_labels))})
    # ElectraForQuestionAnswering: qa_outputs (no dropout), split; positions clamped to [0, s], ignore_index s.
    qa = linear(x, hp["qa"], "qa_outputs")
    start, end = qa[..., 0], qa[..., 1]
    sp, ep = np.array([2, 1, 5], dtype=np.int64), np.array([3, 4, 25], dtype=np.int64)
    qa_loss = (cross_entropy(start, np.clip(sp, 0, s), ignore=s) + cross_entropy(end, np.clip(ep, 0, s), ignore=s)) / 2
    out.update({"qa.start_logits": start, "qa.end_logits": end, "qa.start_positions": sp, "qa.end_positions": ep, "qa.loss": np.array(qa_loss)})
    write_safetensors(os.path.join(out_dir, "expected.safetensors"), out)
    print(f"electra: {len(out)} tensors in {out_dir}")


if __name__ == "__main__":
    print(f"numpy {np.__version__}, python {sys.version.split()[0]}")
    make_distilbert()
    make_roberta()
    make_electra()
