"""The Annex E FLOPs catalogue: hand-computed layers, the 3 × forward rule, and ptflops.

The independent counter is ptflops (named by T/CECA-G 0355 Annex E.2) on CPU torch:
torchvision's own resnet50 and RetinaNet modules, and transformer / DLRM layers written here
from the published architectures. ptflops counts multiply-accumulates (MACs); the catalogue
counts FLOPs = 2 × MACs. To compare like with like, ptflops is told to skip what the catalogue
leaves out (batch norm, ReLU, pooling, element-wise functionals) and, for the per-layer
comparison, biases are removed (Annex E.2's formulas have none).
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import re
import sys
import types
from typing import Any

import pytest

from dcmeter.collectors.evaluation.flops import (
    MODELS,
    PRECISION_TO_FP16,
    SEQUENCE_LENGTH,
    UnknownModel,
    forward_flops,
    fp16_equivalent,
    inference_flops,
    layer_breakdown,
    training_flops,
)
from dcmeter.collectors.evaluation.flops_models import BUILDERS

# Stated tolerance of the catalogue against the independent counter (total forward FLOPs).
TOLERANCE = 0.01


def _conv(h_out: int, c_in: int, c_out: int, k: int) -> int:
    """Annex E.2 convolution on a square map: 2 · H_out · W_out · C_in · C_out · K²."""
    return 2 * h_out * h_out * c_in * c_out * k * k


def _layers(model: str) -> dict[str, float]:
    return dict(layer_breakdown(model))


# --- hand calculations ----------------------------------------------------------------------


def test_resnet50_layers_by_hand() -> None:
    layers = _layers("resnet-50")
    assert layers["conv1"] == _conv(112, 3, 64, 7) == 236_027_904  # (224 + 6 − 7)//2 + 1 = 112
    assert layers["layer1.0.conv2"] == _conv(56, 64, 64, 3) == 231_211_008
    assert layers["layer1.0.downsample.0"] == _conv(56, 64, 256, 1)
    assert layers["layer2.0.conv1"] == _conv(56, 256, 128, 1)  # stride sits on the 3×3
    assert layers["layer2.0.conv2"] == _conv(28, 128, 128, 3)
    assert layers["layer4.2.conv3"] == _conv(7, 512, 2048, 1)
    assert layers["fc"] == 2 * 2048 * 1000
    assert sum(1 for name in layers if "conv" in name or "downsample" in name) == 53


def test_retinanet_layers_by_hand() -> None:
    layers = _layers("retinanet")
    # ResNeXt50-32x4d on 800×800: layer1 width 128 in 32 groups, at 200×200.
    assert layers["backbone.body.conv1"] == _conv(400, 3, 64, 7)
    assert layers["backbone.body.layer1.0.conv2"] == 2 * 200 * 200 * (128 // 32) * 128 * 9
    assert layers["backbone.fpn.inner_blocks.0"] == _conv(100, 512, 256, 1)  # C3
    assert layers["backbone.fpn.extra_blocks.p6"] == _conv(13, 256, 256, 3)  # (25+2−3)//2+1
    assert layers["backbone.fpn.extra_blocks.p7"] == _conv(7, 256, 256, 3)
    positions = 100**2 + 50**2 + 25**2 + 13**2 + 7**2  # P3 … P7
    assert layers["head.classification_head.conv.0"] == 2 * positions * 256 * 256 * 9
    assert layers["head.classification_head.cls_logits"] == 2 * positions * 256 * 9 * 264 * 9
    assert layers["head.regression_head.bbox_reg"] == 2 * positions * 256 * 9 * 4 * 9


def test_bert_large_by_hand() -> None:
    n, h, f, seq, vocab = 24, 1024, 4096, 512, 32000
    per_layer = 4 * 2 * seq * h * h + 2 * 2 * seq * seq * h + 2 * 2 * seq * h * f
    assert forward_flops("bert-large") == 2 * seq * h * vocab + n * per_layer == 368_561_881_088
    layers = _layers("bert-large")
    assert layers["encoder.layer.0.attention.self.scores"] == 2 * 512 * 512 * 1024
    assert layers["encoder.layer.23.intermediate.dense"] == 2 * 512 * 1024 * 4096
    assert layers["embedding"] == 2 * 512 * 1024 * 32000


def test_llama2_7b_by_hand() -> None:
    n, h, i, seq, vocab = 32, 4096, 11008, 2048, 32000
    per_layer = 4 * 2 * seq * h * h + 2 * 2 * seq * seq * h + 3 * 2 * seq * h * i
    assert forward_flops("llama2-7b") == 2 * seq * h * vocab + n * per_layer
    # Close to 2 × parameters × tokens plus attention: a sanity bound, not the definition.
    params = n * (4 * h * h + 3 * h * i) + h * vocab
    assert forward_flops("llama2-7b") == pytest.approx(2 * params * seq + n * 4 * seq * seq * h)


def test_llama2_70b_gqa_and_lora_by_hand() -> None:
    n, h, i, seq, vocab, kv, r = 80, 8192, 28672, 4096, 32000, 1024, 16
    lora = 2 * seq * r * (h + (h + 2 * kv)) + 2 * seq * r * (h + h)  # fused QKV and O
    per_layer = (
        2 * 2 * seq * h * h  # q, o
        + 2 * 2 * seq * h * kv  # k, v: 8 KV heads × 128
        + 2 * 2 * seq * seq * h  # scores and context over all 64 query heads
        + 3 * 2 * seq * h * i  # SwiGLU
        + lora
    )
    assert forward_flops("llama2-70b") == 2 * seq * h * vocab + n * per_layer
    layers = _layers("llama2-70b")
    assert layers["model.layers.0.self_attn.k_proj"] == 2 * 4096 * 8192 * 1024
    assert layers["model.layers.79.self_attn.qkv_proj.lora_B"] == 2 * 4096 * 16 * 10240
    adapters = sum(v for k, v in layers.items() if "lora" in k)
    assert adapters / forward_flops("llama2-70b") < 0.001  # adapters: < 0.1 % of forward


def test_dlrm_dcnv2_by_hand() -> None:
    bottom = 2 * (13 * 512 + 512 * 256 + 256 * 128)
    cross = 3 * 2 * (3456 * 512 + 512 * 3456)  # (1 + 26) × 128 = 3456 wide, rank 512
    top = 2 * (3456 * 1024 + 1024 * 1024 + 1024 * 512 + 512 * 256 + 256 * 1)
    assert forward_flops("dlrm-dcnv2") == bottom + cross + top == 32_060_928


# --- catalogue rules ------------------------------------------------------------------------


def test_interface_lists_the_annex_d_models() -> None:
    assert MODELS == ("resnet-50", "retinanet", "bert-large", "llama2-7b", "llama2-70b", "dlrm-dcnv2")
    assert set(SEQUENCE_LENGTH) == {"bert-large", "llama2-7b", "llama2-70b"}
    assert set(BUILDERS) == set(MODELS)


@pytest.mark.parametrize("model", MODELS)
def test_breakdown_sums_to_forward(model: str) -> None:
    layers = layer_breakdown(model)
    names = [name for name, _ in layers]
    assert len(names) == len(set(names))  # one entry per layer
    assert all(flops > 0 for _, flops in layers)
    assert math.fsum(flops for _, flops in layers) == forward_flops(model)


@pytest.mark.parametrize("model", MODELS)
def test_training_is_three_forward_and_inference_one(model: str) -> None:
    fwd = forward_flops(model)
    assert training_flops(model, 1) == 3 * fwd  # backward = 2 × forward (Annex E.1)
    assert training_flops(model, 1_281_167) == 3 * fwd * 1_281_167
    assert inference_flops(model, 50_000) == fwd * 50_000
    assert training_flops(model, 0) == inference_flops(model, 0) == 0


def test_transformer_layers_repeat() -> None:
    for model, prefix, n in (("bert-large", "encoder.layer", 24), ("llama2-70b", "model.layers", 80)):
        layers = _layers(model)
        per = [sum(v for k, v in layers.items() if k.startswith(f"{prefix}.{i}.")) for i in range(n)]
        assert len(set(per)) == 1
        assert forward_flops(model) == layers["embedding"] + n * per[0]


def test_unknown_model_and_bad_samples() -> None:
    with pytest.raises(UnknownModel, match="resnet-50"):  # the message lists the catalogue
        forward_flops("gpt-4")
    with pytest.raises(ValueError):  # UnknownModel is a ValueError
        training_flops("llama3-8b", 10)
    with pytest.raises(ValueError, match="samples"):
        training_flops("resnet-50", -1)
    with pytest.raises(ValueError, match="samples"):
        inference_flops("resnet-50", float("nan"))
    assert forward_flops(" ResNet-50 ") == forward_flops("resnet-50")


def test_precision_conversion() -> None:
    assert PRECISION_TO_FP16["fp16"] == PRECISION_TO_FP16["bf16"] == 1.0
    assert fp16_equivalent(1e18, "fp8") == 0.5e18
    assert fp16_equivalent(1e18, "FP32") == 2e18
    assert fp16_equivalent(1e18, "tf32") == 2e18
    with pytest.raises(ValueError, match="fp16"):
        fp16_equivalent(1.0, "fp4")


# --- independent counter: ptflops on CPU torch ----------------------------------------------

IGNORED = ("BatchNorm2d", "ReLU", "MaxPool2d", "AdaptiveAvgPool2d", "SiLU")


def _import_torchvision() -> None:
    """Import torchvision, or only its model sources where its compiled ops cannot load.

    torchvision's wheel on PyPI is linked against CUDA torch; with CPU torch from another
    index its compiled ops (nms, roi_align) do not load and `import torchvision` raises. The
    models used here need none of them, so then the package is set up without its __init__
    (which registers those ops) and the unchanged model sources are imported from it.
    ptflops imports torchvision.ops itself, so this runs before ptflops is imported.
    """
    try:
        import torchvision.models  # noqa: F401
    except (ImportError, OSError, RuntimeError):
        spec = importlib.util.find_spec("torchvision")
        if spec is None or not spec.submodule_search_locations:
            pytest.fail("torchvision is not installed (see .ci/run)")
        root = next(iter(spec.submodule_search_locations))
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        for name, sub in (("torchvision", ""), ("torchvision.models", "/models")):
            package = types.ModuleType(name)
            package.__path__ = [root + sub]
            sys.modules[name] = package


@pytest.fixture(scope="module")
def torch() -> Any:
    try:
        import torch

        _import_torchvision()
        import ptflops  # noqa: F401
    except ImportError as exc:  # CI installs them (.ci/run): a missing counter is a failure
        pytest.fail(f"the FLOPs cross-check needs CPU torch, torchvision and ptflops (see .ci/run): {exc}")
    return torch


def _torchvision_models() -> tuple[Any, Any, Any, Any]:
    """Return torchvision's resnet module, FPN extractor, LastLevelP6P7 and RetinaNetHead."""
    from torchvision.models import resnet
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.models.detection.retinanet import RetinaNetHead
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7

    return resnet, _resnet_fpn_extractor, LastLevelP6P7, RetinaNetHead


def _ignored(torch: Any) -> list[Any]:
    return [getattr(torch.nn, name) for name in IGNORED]


def _ptflops_macs(torch: Any, model: Any, shape: tuple[int, ...], functional: bool) -> int:
    """Return ptflops' MACs for one forward at batch 1, element-wise modules ignored."""
    from ptflops import get_model_complexity_info

    device = next(model.parameters()).device

    def make_input(_: Any) -> Any:
        return torch.zeros((1, *shape), device=device)

    with torch.no_grad():
        macs, _ = get_model_complexity_info(
            model, shape, input_constructor=make_input, as_strings=False,
            print_per_layer_stat=False, ignore_modules=_ignored(torch),
            backend_specific_config={"count_functional": functional},
        )
    assert macs is not None, "ptflops failed on the model (its message is printed above)"
    return int(macs)


def _ptflops_per_module(torch: Any, model: Any, shape: tuple[int, ...]) -> dict[str, float]:
    """Return ptflops' FLOPs (2 × MACs) of every Conv2d / Linear module, by module name."""
    from ptflops.pytorch_engine import add_flops_counting_methods

    device = next(model.parameters()).device
    counted = add_flops_counting_methods(model)
    counted.eval()
    counted.start_flops_count(ost=sys.stdout, verbose=False, ignore_list=_ignored(torch))
    try:
        with torch.no_grad():
            counted(torch.zeros((1, *shape), device=device))
        return {
            name: 2.0 * module.__flops__
            for name, module in counted.named_modules()
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear))
        }
    finally:
        counted.stop_flops_count()


def _drop_biases(torch: Any, model: Any) -> None:
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)) and module.bias is not None:
            module.bias = None


def test_resnet50_agrees_with_ptflops_on_torchvision(torch: Any) -> None:
    resnet, *_ = _torchvision_models()
    model = resnet.resnet50()  # random weights: FLOPs do not depend on them
    assert sum(p.numel() for p in model.parameters()) == 25_557_032  # torchvision's resnet50
    ours = forward_flops("resnet-50")

    conv_fc = 2 * _ptflops_macs(torch, model, (3, 224, 224), functional=False)  # on CPU tensors
    assert abs(ours - conv_fc) / conv_fc < TOLERANCE
    assert conv_fc - ours == 2 * 1000  # the only difference: the fc bias, 1000 adds

    # ptflops' own full count also charges BN, ReLU, pooling and the residual adds: ours is
    # below it by what Annex E.2 leaves out (about 1 %).
    from ptflops import get_model_complexity_info

    full, _ = get_model_complexity_info(model, (3, 224, 224), as_strings=False,
                                        print_per_layer_stat=False)
    assert full is not None
    assert 0 < (2 * full - ours) / (2 * full) < 0.02

    _drop_biases(torch, model)
    theirs = _ptflops_per_module(torch, model, (3, 224, 224))
    assert theirs == _layers("resnet-50")  # every convolution and the fc, layer by layer


def test_retinanet_agrees_with_ptflops_on_torchvision(torch: Any) -> None:
    resnet, fpn_extractor, p6p7, head_class = _torchvision_models()

    class Detector(torch.nn.Module):  # type: ignore[misc]
        """Backbone, FPN and heads of torchvision's RetinaNet, without pre/post-processing."""

        def __init__(self) -> None:
            super().__init__()
            self.backbone = fpn_extractor(
                resnet.resnext50_32x4d(), 5, returned_layers=[2, 3, 4],
                extra_blocks=p6p7(256, 256),
            )
            self.head = head_class(256, 9, 264)

        def forward(self, x: Any) -> Any:
            return self.head(list(self.backbone(x).values()))

    # The meta device runs shapes only: no arithmetic on 800×800 images in the test.
    with torch.device("meta"):
        model = Detector()
    ours = forward_flops("retinanet")
    with_biases = 2 * _ptflops_macs(torch, model, (3, 800, 800), functional=False)
    assert abs(ours - with_biases) / with_biases < TOLERANCE

    _drop_biases(torch, model)
    theirs = _ptflops_per_module(torch, model, (3, 800, 800))
    # torchvision wraps FPN and head convolutions in Conv2dNormActivation: "....0.0" → "....0".
    theirs = {
        re.sub(r"\.(inner_blocks|layer_blocks|conv)\.(\d+)\.0$", r".\1.\2", name): flops
        for name, flops in theirs.items()
    }
    assert theirs == _layers("retinanet")


def _transformer_layer(torch: Any, h: int, heads: int, kv_heads: int, ffn: int, gated: bool,
                       vocab: int, lora_rank: int = 0) -> Any:
    """One pre-LN-free transformer layer plus the vocabulary projection, as ptflops sees it.

    Bias-free linears; attention with torch.matmul over all query heads (KV heads repeated
    for grouped-query attention); softmax and activations through methods ptflops does not
    count, as the catalogue does not.
    """
    nn = torch.nn
    d = h // heads

    class Attention(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.q_proj = nn.Linear(h, h, bias=False)
            self.k_proj = nn.Linear(h, kv_heads * d, bias=False)
            self.v_proj = nn.Linear(h, kv_heads * d, bias=False)
            self.o_proj = nn.Linear(h, h, bias=False)
            if lora_rank:
                self.qkv_lora_A = nn.Linear(h, lora_rank, bias=False)
                self.qkv_lora_B = nn.Linear(lora_rank, h + 2 * kv_heads * d, bias=False)
                self.o_lora_A = nn.Linear(h, lora_rank, bias=False)
                self.o_lora_B = nn.Linear(lora_rank, h, bias=False)

        def forward(self, x: Any) -> Any:
            seq = x.shape[1]
            q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
            if lora_rank:
                dq, dk, dv = self.qkv_lora_B(self.qkv_lora_A(x)).split(
                    [h, kv_heads * d, kv_heads * d], dim=-1)
                q, k, v = q + dq, k + dk, v + dv
            q = q.view(1, seq, heads, d).transpose(1, 2)
            k = k.view(1, seq, kv_heads, d).transpose(1, 2).repeat_interleave(heads // kv_heads, 1)
            v = v.view(1, seq, kv_heads, d).transpose(1, 2).repeat_interleave(heads // kv_heads, 1)
            probs = (torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d)).softmax(-1)
            context = torch.matmul(probs, v).transpose(1, 2).reshape(1, seq, h)
            out = self.o_proj(context)
            if lora_rank:
                out = out + self.o_lora_B(self.o_lora_A(context))
            return out

    class Mlp(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            if gated:
                self.gate_proj = nn.Linear(h, ffn, bias=False)
            self.up_proj = nn.Linear(h, ffn, bias=False)
            self.down_proj = nn.Linear(ffn, h, bias=False)

        def forward(self, x: Any) -> Any:
            up = self.up_proj(x)
            if gated:
                gate = self.gate_proj(x)
                return self.down_proj(gate * gate.sigmoid() * up)  # SwiGLU
            return self.down_proj(up.tanh())

    class Layer(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.self_attn = Attention()
            self.mlp = Mlp()
            self.lm_head = nn.Linear(h, vocab, bias=False)

        def forward(self, x: Any) -> Any:
            x = x + self.self_attn(x)
            x = x + self.mlp(x)
            return self.lm_head(x)

    with torch.device("meta"):
        return Layer()


BERT_NAMES = {
    "self_attn.q_proj": "attention.self.query", "self_attn.k_proj": "attention.self.key",
    "self_attn.v_proj": "attention.self.value", "self_attn.o_proj": "attention.output.dense",
    "mlp.up_proj": "intermediate.dense", "mlp.down_proj": "output.dense",
}
LORA_NAMES = {
    "self_attn.qkv_lora_A": "self_attn.qkv_proj.lora_A",
    "self_attn.qkv_lora_B": "self_attn.qkv_proj.lora_B",
    "self_attn.o_lora_A": "self_attn.o_proj.lora_A", "self_attn.o_lora_B": "self_attn.o_proj.lora_B",
}


@pytest.mark.parametrize(
    ("model", "prefix", "h", "heads", "kv_heads", "ffn", "gated", "lora", "names"),
    [
        ("bert-large", "encoder.layer.0.", 1024, 16, 16, 4096, False, 0, BERT_NAMES),
        ("llama2-7b", "model.layers.0.", 4096, 32, 32, 11008, True, 0, {}),
        ("llama2-70b", "model.layers.0.", 8192, 64, 8, 28672, True, 16, LORA_NAMES),
    ],
)
def test_transformer_layer_agrees_with_ptflops(
    torch: Any, model: str, prefix: str, h: int, heads: int, kv_heads: int, ffn: int,
    gated: bool, lora: int, names: dict[str, str],
) -> None:
    seq = SEQUENCE_LENGTH[model]
    net = _transformer_layer(torch, h, heads, kv_heads, ffn, gated, 32000, lora)
    layers = _layers(model)
    ours = {k[len(prefix):]: v for k, v in layers.items() if k.startswith(prefix)}

    theirs = _ptflops_per_module(torch, net, (seq, h))
    theirs = {names.get(k, k): v for k, v in theirs.items()}
    assert theirs.pop("lm_head") == layers["embedding"]  # the 2·L·h·V vocabulary term
    attention = {k: ours.pop(k) for k in list(ours) if k.endswith((".scores", ".context"))}
    assert theirs == ours  # every projection, feed-forward matrix and adapter

    # torch.matmul for QKᵀ and AV is counted by ptflops' functional hooks only.
    linear = 2 * _ptflops_macs(torch, net, (seq, h), functional=False)
    everything = 2 * _ptflops_macs(torch, net, (seq, h), functional=True)
    assert everything - linear == sum(attention.values()) == 4 * seq * seq * h


def test_dlrm_dcnv2_agrees_with_ptflops(torch: Any) -> None:
    nn = torch.nn
    width = 27 * 128

    class Cross(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.V = nn.Linear(width, 512, bias=False)
            self.U = nn.Linear(512, width, bias=False)

    class Dlrm(nn.Module):  # type: ignore[misc]
        """Dense arch, low-rank DCNv2 interaction, over arch; pooled embeddings given as input."""

        def __init__(self) -> None:
            super().__init__()
            sizes = [13, 512, 256, 128]
            self.dense_arch = nn.ModuleList(
                nn.Linear(a, b, bias=False) for a, b in itertools.pairwise(sizes))
            self.interaction = nn.Module()
            self.interaction.cross = nn.ModuleList(Cross() for _ in range(3))
            top = [width, 1024, 1024, 512, 256, 1]
            self.over_arch = nn.ModuleList(
                nn.Linear(a, b, bias=False) for a, b in itertools.pairwise(top))

        def forward(self, x: Any) -> Any:
            dense, pooled = x[:, :13], x[:, 13:]  # 13 dense features, 26 × 128 pooled
            for layer in self.dense_arch:
                dense = layer(dense).relu()
            x0 = torch.cat([dense, pooled], dim=1)
            xl = x0
            for cross in self.interaction.cross:
                xl = x0 * cross.U(cross.V(xl)) + xl
            for layer in self.over_arch:
                xl = layer(xl)
            return xl

    with torch.device("meta"):
        net = Dlrm()
    theirs = _ptflops_per_module(torch, net, (13 + 26 * 128,))
    assert theirs == _layers("dlrm-dcnv2")
