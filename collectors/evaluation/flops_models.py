"""Layer lists of the Annex D models, with the Annex E.2 building blocks (T/CECA-G 0355—2025).

Each builder returns (layer name, forward FLOPs for one sample at batch size 1). A multiply-add
is 2 FLOPs (Annex E.2); biases, normalisation, activations, pooling, residual adds and softmax
are not counted. Layer names follow torchvision's (CNNs) and Hugging Face's (transformers)
module names, so a per-layer comparison with a counting tool (ptflops, thop) lines up.
"""

from __future__ import annotations

from collections.abc import Callable

Layer = tuple[str, float]

# Tokens per sample (one sequence) of the language models: divide a token count by this to
# get the samples `training_flops` / `inference_flops` take.
SEQUENCE_LENGTH: dict[str, int] = {"bert-large": 512, "llama2-7b": 2048, "llama2-70b": 4096}


def conv2d(
    h_in: int, w_in: int, c_in: int, c_out: int, k: int, stride: int = 1, padding: int = 0,
    groups: int = 1,
) -> tuple[float, int, int]:
    """Return (FLOPs, H_out, W_out) of a k×k convolution (Annex E.2).

    FLOPs = 2 · H_out · W_out · (C_in / groups) · C_out · K_h · K_w with
    H_out = (H_in + 2·padding − K_h) / stride + 1 (floor), the padding the model defines.
    """
    h_out = (h_in + 2 * padding - k) // stride + 1
    w_out = (w_in + 2 * padding - k) // stride + 1
    return 2.0 * h_out * w_out * (c_in // groups) * c_out * k * k, h_out, w_out


def linear(n_in: int, n_out: int, rows: int = 1) -> float:
    """Return FLOPs of a fully connected layer N → M applied to `rows` vectors: 2·N·M·rows."""
    return 2.0 * n_in * n_out * rows


# --- CNNs -----------------------------------------------------------------------------------

# torchvision ResNet-50 (v1.5: the stride sits on the 3×3 convolution): blocks per stage.
_RESNET50_STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))


def _resnet_trunk(
    size: int, groups: int = 1, width_per_group: int = 64, prefix: str = ""
) -> tuple[list[Layer], list[tuple[int, int]]]:
    """Return the ResNet/ResNeXt-50 trunk (conv1 … layer4) on a size×size×3 image.

    The second item gives (channels, spatial size) after each of layer1 … layer4.
    """
    layers: list[Layer] = []
    flops, h, w = conv2d(size, size, 3, 64, 7, stride=2, padding=3)
    layers.append((f"{prefix}conv1", flops))
    h = (h + 2 - 3) // 2 + 1  # 3×3 max pool, stride 2, padding 1: no FLOPs counted
    w = (w + 2 - 3) // 2 + 1
    inplanes = 64
    outputs: list[tuple[int, int]] = []
    for stage, (planes, blocks, stage_stride) in enumerate(_RESNET50_STAGES, 1):
        width = planes * width_per_group // 64 * groups
        for block in range(blocks):
            stride = stage_stride if block == 0 else 1
            name = f"{prefix}layer{stage}.{block}"
            f1, _, _ = conv2d(h, w, inplanes, width, 1)
            f2, h2, w2 = conv2d(h, w, width, width, 3, stride=stride, padding=1, groups=groups)
            f3, _, _ = conv2d(h2, w2, width, planes * 4, 1)
            layers += [(f"{name}.conv1", f1), (f"{name}.conv2", f2), (f"{name}.conv3", f3)]
            if block == 0:  # projection shortcut: channels (and, from layer2, size) change
                fd, _, _ = conv2d(h, w, inplanes, planes * 4, 1, stride=stride)
                layers.append((f"{name}.downsample.0", fd))
            inplanes, h, w = planes * 4, h2, w2
        outputs.append((inplanes, h))
    return layers, outputs


def resnet50() -> list[Layer]:
    """torchvision resnet50 on 224×224×3 (Annex E.1): 53 convolutions and the 2048→1000 fc."""
    layers, _ = _resnet_trunk(224)
    layers.append(("fc", linear(2048, 1000)))
    return layers


# RetinaNet as MLPerf trains and serves it (the 34.0 % / 37.5 % mAP targets of Annex D are
# MLPerf's): ResNeXt50-32x4d trunk, FPN on C3–C5 with P6/P7 from P5 (256 channels), heads of
# 4 × 3×3 conv + a 3×3 predictor on each of P3–P7, 9 anchors, 264 OpenImages classes, 800×800.
RETINANET_CLASSES = 264
RETINANET_ANCHORS = 9
_FPN = 256


def retinanet() -> list[Layer]:
    """RetinaNet ResNeXt50-32x4d-FPN on 800×800×3 (MLPerf reference; Annex E.1 input size)."""
    layers, outputs = _resnet_trunk(800, groups=32, width_per_group=4, prefix="backbone.body.")
    levels: list[int] = []
    for i, (channels, size) in enumerate(outputs[1:]):  # C3, C4, C5
        flops, _, _ = conv2d(size, size, channels, _FPN, 1)
        layers.append((f"backbone.fpn.inner_blocks.{i}", flops))
    for i, (_, size) in enumerate(outputs[1:]):
        flops, _, _ = conv2d(size, size, _FPN, _FPN, 3, padding=1)
        layers.append((f"backbone.fpn.layer_blocks.{i}", flops))
        levels.append(size)
    size = levels[-1]
    for name in ("backbone.fpn.extra_blocks.p6", "backbone.fpn.extra_blocks.p7"):
        flops, size, _ = conv2d(size, size, _FPN, _FPN, 3, stride=2, padding=1)
        layers.append((name, flops))
        levels.append(size)
    # A head module runs on every pyramid level: one entry per module, summed over P3–P7.
    heads = (("classification_head", "cls_logits", RETINANET_ANCHORS * RETINANET_CLASSES),
             ("regression_head", "bbox_reg", RETINANET_ANCHORS * 4))
    for head, predictor, outputs_per_position in heads:
        tower = sum(conv2d(size, size, _FPN, _FPN, 3, padding=1)[0] for size in levels)
        layers += [(f"head.{head}.conv.{i}", tower) for i in range(4)]
        last = sum(
            conv2d(size, size, _FPN, outputs_per_position, 3, padding=1)[0] for size in levels
        )
        layers.append((f"head.{head}.{predictor}", last))
    return layers


# --- transformers ---------------------------------------------------------------------------

# Module names per family (Hugging Face's), so a per-layer comparison lines up.
_BERT_NAMES = {
    "layer": "encoder.layer.{}.", "q": "attention.self.query", "k": "attention.self.key",
    "v": "attention.self.value", "scores": "attention.self.scores",
    "context": "attention.self.context", "o": "attention.output.dense",
}
_LLAMA_NAMES = {
    "layer": "model.layers.{}.", "q": "self_attn.q_proj", "k": "self_attn.k_proj",
    "v": "self_attn.v_proj", "scores": "self_attn.scores", "context": "self_attn.context",
    "o": "self_attn.o_proj",
}


def _transformer(
    names: dict[str, str], n_layers: int, hidden: int, ffn: int, seq: int, vocab: int,
    kv_dim: int | None = None, gated: bool = False,
    adapters: Callable[[str], list[Layer]] | None = None,
) -> list[Layer]:
    """Return the Annex E.2 transformer blocks for one sequence of `seq` tokens.

    Embedding: 2·L·h·V (Annex E.2 counts it as a matmul; it equals the vocabulary projection
    the model really multiplies: the LM head, or BERT's MLM decoder tied to the embedding).
    Attention per layer: Q and O projections 2·L·h² each, K and V 2·L·h·kv_dim each
    (kv_dim < h under grouped-query attention), scores QKᵀ 2·L²·h and context AV 2·L²·h, the
    full L×L (no causal halving). Feed-forward: 2 matrices (4·L·h·f) or 3 when gated (SwiGLU).
    """
    kv = hidden if kv_dim is None else kv_dim
    layers: list[Layer] = [("embedding", linear(hidden, vocab, seq))]
    for i in range(n_layers):
        p = names["layer"].format(i)
        layers += [
            (p + names["q"], linear(hidden, hidden, seq)),
            (p + names["k"], linear(hidden, kv, seq)),
            (p + names["v"], linear(hidden, kv, seq)),
            (p + names["scores"], 2.0 * seq * seq * hidden),
            (p + names["context"], 2.0 * seq * seq * hidden),
            (p + names["o"], linear(hidden, hidden, seq)),
        ]
        if adapters is not None:
            layers += adapters(p)
        if gated:
            layers += [
                (p + "mlp.gate_proj", linear(hidden, ffn, seq)),
                (p + "mlp.up_proj", linear(hidden, ffn, seq)),
                (p + "mlp.down_proj", linear(ffn, hidden, seq)),
            ]
        else:
            layers += [
                (p + "intermediate.dense", linear(hidden, ffn, seq)),
                (p + "output.dense", linear(ffn, hidden, seq)),
            ]
    return layers


# Table E.1 writes V = 32000 for bert-large; the released BERT vocabulary is 30522.
BERT_VOCAB = 32000


def bert_large() -> list[Layer]:
    """bert-large: 24 layers, hidden 1024, FFN 4096, 16 heads, sequence 512, V 32000."""
    return _transformer(_BERT_NAMES, 24, 1024, 4096, SEQUENCE_LENGTH["bert-large"], BERT_VOCAB)


LLAMA2_VOCAB = 32000


def llama2_7b() -> list[Layer]:
    """llama2-7b: 32 layers, hidden 4096, SwiGLU 11008, 32 heads (MHA), sequence 2048."""
    return _transformer(
        _LLAMA_NAMES, 32, 4096, 11008, SEQUENCE_LENGTH["llama2-7b"], LLAMA2_VOCAB, gated=True
    )


# llama2-70b as released: intermediate 28672 (not Table E.1's 4·h) and grouped-query attention
# with 8 key/value heads of 128. LoRA as MLPerf's fine-tuning reference
# (run_llama_70B_scrolls_r16.sh): rank 16 on the fused QKV projection and on O.
LLAMA2_70B_KV_DIM = 8 * 128
LORA_RANK = 16


def llama2_70b() -> list[Layer]:
    """llama2-70b with LoRA adapters: 80 layers, hidden 8192, 28672, 64 heads, GQA 8, seq 4096.

    An adapter on a d_in → d_out projection adds A (d_in → r) and B (r → d_out):
    2·L·r·(d_in + d_out); the frozen base is counted in full.
    """
    hidden, seq = 8192, SEQUENCE_LENGTH["llama2-70b"]
    qkv_out = hidden + 2 * LLAMA2_70B_KV_DIM

    def adapters(p: str) -> list[Layer]:
        return [
            (p + "self_attn.qkv_proj.lora_A", linear(hidden, LORA_RANK, seq)),
            (p + "self_attn.qkv_proj.lora_B", linear(LORA_RANK, qkv_out, seq)),
            (p + "self_attn.o_proj.lora_A", linear(hidden, LORA_RANK, seq)),
            (p + "self_attn.o_proj.lora_B", linear(LORA_RANK, hidden, seq)),
        ]

    return _transformer(
        _LLAMA_NAMES, 80, hidden, 28672, seq, LLAMA2_VOCAB, kv_dim=LLAMA2_70B_KV_DIM,
        gated=True, adapters=adapters,
    )


# --- recommendation -------------------------------------------------------------------------

DLRM_DENSE_FEATURES = 13
DLRM_SPARSE_FEATURES = 26
DLRM_EMBEDDING_DIM = 128
DLRM_BOTTOM_MLP = (512, 256, 128)
DLRM_TOP_MLP = (1024, 1024, 512, 256, 1)
DLRM_CROSS_LAYERS = 3
DLRM_LOW_RANK = 512


def dlrm_dcnv2() -> list[Layer]:
    """DLRM-dcnv2 per sample: bottom MLP, 3 low-rank cross layers, top MLP.

    Embedding lookups and their sum pooling are gathers and adds, not multiply-adds: not
    counted. The cross network runs on the concatenation of the dense output and the 26
    pooled embeddings, (1 + 26) × 128 = 3456 wide; a low-rank layer x₀ ⊙ (U (Vᵀ x) + b) + x
    counts its two matmuls, 3456 → 512 → 3456.
    """
    layers: list[Layer] = []
    width = DLRM_DENSE_FEATURES
    for i, out in enumerate(DLRM_BOTTOM_MLP):
        layers.append((f"dense_arch.{i}", linear(width, out)))
        width = out
    cross = (1 + DLRM_SPARSE_FEATURES) * DLRM_EMBEDDING_DIM
    for i in range(DLRM_CROSS_LAYERS):
        layers.append((f"interaction.cross.{i}.V", linear(cross, DLRM_LOW_RANK)))
        layers.append((f"interaction.cross.{i}.U", linear(DLRM_LOW_RANK, cross)))
    width = cross
    for i, out in enumerate(DLRM_TOP_MLP):
        layers.append((f"over_arch.{i}", linear(width, out)))
        width = out
    return layers


BUILDERS: dict[str, Callable[[], list[Layer]]] = {
    "resnet-50": resnet50,
    "retinanet": retinanet,
    "bert-large": bert_large,
    "llama2-7b": llama2_7b,
    "llama2-70b": llama2_70b,
    "dlrm-dcnv2": dlrm_dcnv2,
}
